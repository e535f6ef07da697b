"""Routing by labels, without Redis: subscriptions' and silences' matchers, Alertmanager's
severity table and group_by, and the settings that configure them."""

import pytest
from pydantic import ValidationError

from services.ingest import alertmanager as am
from services.notify.pipeline import Candidate, Env, match
from shared.settings import Settings
from shared.severity import Severity
from shared.silences import Matchers, Silence, SilenceSpec, silencing
from shared.subscriptions import SubscriptionSpec
from tests.delivery_helpers import T0, event, incident, sub


def labelled(**labels: str):
    inc = incident()
    inc.labels = labels
    return event(inc)


def test_a_subscription_matches_incidents_by_their_labels_and_says_which_matcher_did_not():
    db = sub(matchers=['team="db"', 'env!="dev"'])
    assert match(Candidate(labelled(team="db", env="prod"), db), Env(T0)) is None
    assert match(Candidate(labelled(team="db"), db), Env(T0)) is None  # no env: not "dev"
    assert match(Candidate(labelled(team="web"), db), Env(T0)) == 'labels: team="db" does not match'
    assert (
        match(Candidate(labelled(team="db", env="dev"), db), Env(T0))
        == 'labels: env!="dev" does not match'
    )
    assert match(Candidate(labelled(), sub()), Env(T0)) is None  # no matchers: everything


def test_a_subscription_with_a_bad_matcher_is_refused_naming_it():
    with pytest.raises(ValidationError) as e:
        SubscriptionSpec(name="x", urls=["json://127.0.0.1/"], matchers=['team=="db"'])
    assert "matchers[0]: matcher 'team==\"db\"': '==' is not an operator" in str(e.value)
    ok = SubscriptionSpec(name="x", urls=["json://127.0.0.1/"], matchers='{team = "db"}')
    assert ok.matchers == ['team="db"']


def _silence(matchers: object) -> Silence:
    spec = SilenceSpec.model_validate({"matchers": matchers, "duration": "1h", "author": "jane"})
    return spec.to_silence(T0)


def test_a_silence_matches_labels_in_alertmanager_syntax():
    s = _silence(['service=~"api|web"'])  # the Alertmanager way: a list of matchers
    assert s.matchers.labels == ['service=~"api|web"']
    for service, held in [("api", True), ("web", True), ("api-2", False), ("db", False)]:
        inc = labelled(service=service).incident
        assert (silencing([s], inc, sub(), T0) is not None) is held, service
    assert silencing([s], labelled().incident, sub(), T0) is None  # no service label
    # One string in braces, and labels beside the other matchers (all must match).
    assert _silence('{service=~"api|web"}').matchers.labels == ['service=~"api|web"']
    both = _silence({"labels": ['team="db"'], "topic": "iss"})
    assert silencing([both], labelled(team="db").incident, sub(), T0) is not None
    assert silencing([both], labelled(team="web").incident, sub(), T0) is None


def test_a_silence_with_a_bad_matcher_or_none_is_refused_naming_it():
    with pytest.raises(ValidationError) as e:
        _silence(['service=~"api|web"', "service=~(api"])
    assert "matchers[1]: matcher 'service=~(api': bad regex" in str(e.value)
    with pytest.raises(ValidationError, match="at least one of topic, source"):
        Matchers(labels=[])


@pytest.mark.parametrize(
    ("label", "table", "expected", "warned"),
    [
        ("critical", {}, Severity.RED_ALERT, False),
        ("Warning", {}, Severity.ASSESSING, False),
        ("info", {}, Severity.NO_DANGER, False),
        ("", {}, Severity.ASSESSING, False),  # nothing said: nothing to warn about
        ("crit", {}, Severity.ASSESSING, True),
        ("crit", {"crit": Severity.RED_ALERT}, Severity.RED_ALERT, False),
        ("warning", {"warning": Severity.RED_ALERT}, Severity.RED_ALERT, False),  # overrides
    ],
)
def test_the_severity_label_is_mapped_and_an_unknown_one_is_never_silent(
    label, table, expected, warned
):
    severity, warning = am.severity({"severity": label} if label else {}, table)
    assert severity is expected
    assert (warning is not None) is warned
    if warned:
        assert "unknown severity label 'crit': kept as assessing" in warning
        assert "REDALERT_ALERTMANAGER_SEVERITIES" in warning


def test_alerts_group_by_their_fingerprint_or_by_the_configured_labels():
    labels = {"alertname": "DiskFull", "team": "db", "instance": "db-7"}
    assert am.group_key(labels, "f1", []) == "f1"
    key = am.group_key(labels, "f1", ["alertname", "team"])
    assert key == "group:{alertname=DiskFull,team=db}"
    assert am.group_key({**labels, "instance": "db-8"}, "f2", ["alertname", "team"]) == key
    assert am.group_key({**labels, "team": "web"}, "f3", ["alertname", "team"]) != key
    long = am.group_key({"a": "x" * 300}, "f", ["a"])
    assert long.startswith("group:")
    assert len(long) <= am.MAX_KEY


def test_settings_for_alertmanager_are_checked():
    s = Settings(
        _env_file=None,
        alertmanager_group_by="alertname, team",
        alertmanager_severities="crit=red_alert, p3=assessing",
    )
    assert s.alertmanager_group_labels == ["alertname", "team"]
    assert s.alertmanager_severity_table == {"crit": Severity.RED_ALERT, "p3": Severity.ASSESSING}
    with pytest.raises(ValidationError, match="label name 'bad name'"):
        Settings(_env_file=None, alertmanager_group_by="bad name")
    with pytest.raises(ValidationError, match="'crit=urgent': write label=severity"):
        Settings(_env_file=None, alertmanager_severities="crit=urgent")
