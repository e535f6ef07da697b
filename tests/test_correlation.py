"""Which incident a post joins, without Redis."""

from datetime import UTC, datetime, timedelta

from services.classify.correlation import Policy, choose
from services.classify.terms import merge_terms, salient_terms, similarity
from shared.models import Classification, Hit, Incident, IncidentStatus, Post
from shared.severity import Severity

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = Policy(correlation_window_s=3600, similarity=0.25, reopen_window_s=7200)


def incident(text: str, *, topics=("wildfire",), status="open", idle_s=60, resolved_s=None):
    last = NOW - timedelta(seconds=idle_s)
    return Incident(
        id="inc1",
        title=text,
        severity=Severity.RED_ALERT,
        peak_severity=Severity.RED_ALERT,
        status=IncidentStatus(status),
        topics=list(topics),
        opened_at=last,
        updated_at=last,
        last_post_at=last,
        resolved_at=NOW - timedelta(seconds=resolved_s) if resolved_s is not None else None,
        terms=merge_terms([], salient_terms(text)),
    )


def post(text: str, severity="red_alert", topics=("wildfire",)) -> Classification:
    alarm = Severity(severity) >= Severity.ASSESSING
    cue = [Hit(rule="fire", kind="cue", text="fire", start=0, end=4)] if alarm else []
    return Classification(
        post=Post(text=text, source="t"), severity=Severity(severity), topics=list(topics), hits=cue
    )


FIRE = incident("Wildfire burning near Paradise Ridge, evacuation of Paradise ordered")


def test_salient_terms_drop_stop_words_and_fold_plurals():
    assert salient_terms("The leaks are coming from the radiators on MLM!") == {
        "leak", "coming", "radiator", "mlm",
    }  # fmt: skip
    assert salient_terms("It's still there, you know") == set()


def test_similarity_needs_two_shared_words():
    assert similarity({"paradise", "ridge", "smoke", "wind"}, FIRE.terms) == 0.5
    assert similarity({"paradise", "flood"}, FIRE.terms) == 0.0  # one shared word is chance


def test_a_similar_post_on_the_same_topic_joins():
    choice = choose(
        post("Smoke over Paradise Ridge, fire spreading"),
        by_key=None, candidates=[FIRE], now=NOW, policy=POLICY,
    )  # fmt: skip
    assert choice.incident_id == "inc1"
    assert not choice.new


def test_a_different_event_on_the_same_topic_opens_its_own():
    choice = choose(
        post("New wildfire reported in Oak Valley, crews responding"),
        by_key=None, candidates=[FIRE], now=NOW, policy=POLICY,
    )  # fmt: skip
    assert choice.incident_id is None
    assert choice.new


def test_similar_words_on_another_topic_do_not_join():
    choice = choose(
        post("Paradise Ridge evacuation roads flooded", topics=("weather",)),
        by_key=None, candidates=[FIRE], now=NOW, policy=POLICY,
    )  # fmt: skip
    assert choice.new


def test_an_incident_quiet_longer_than_the_window_is_not_joined():
    stale = incident(FIRE.title, idle_s=7200)
    choice = choose(
        post("Paradise Ridge fire spreading"), by_key=None, candidates=[stale], now=NOW,
        policy=POLICY,
    )  # fmt: skip
    assert choice.new


def test_the_thread_wins_over_wording():
    choice = choose(
        post("They even have ham radio!", severity="no_danger", topics=()),
        by_key=FIRE, candidates=[], now=NOW, policy=POLICY,
    )  # fmt: skip
    assert choice.incident_id == "inc1"


def test_a_thread_resolved_long_ago_starts_a_new_incident_on_a_new_alarm():
    old = incident(FIRE.title, status="resolved", resolved_s=10_000)
    alarm = choose(
        post("Fire again at Paradise Ridge"), by_key=old, candidates=[], now=NOW, policy=POLICY
    )
    assert alarm.new
    chatter = choose(
        post("thanks all", "no_danger", ()), by_key=old, candidates=[], now=NOW, policy=POLICY
    )
    assert chatter.incident_id is None
    assert not chatter.new
    recent = incident(FIRE.title, status="resolved", resolved_s=60)
    again = choose(post("Fire again"), by_key=recent, candidates=[], now=NOW, policy=POLICY)
    assert again.incident_id == "inc1"  # within the reopen window: it reopens


def test_chatter_with_no_match_joins_nothing():
    choice = choose(
        post("Lovely sunset tonight", severity="no_danger", topics=()),
        by_key=None, candidates=[FIRE], now=NOW, policy=POLICY,
    )  # fmt: skip
    assert choice.incident_id is None
    assert not choice.new
