"""Structure beats text, text still counts: source hints through the rules file's tables, and
subject-scoped all-clears in the incident state machine. Pure: the shipped rules, no Redis."""

from datetime import UTC, datetime, timedelta

import pytest

from services.classify.incidents import apply_post
from services.classify.rules import ConfigError, compile_rules, load_rules
from services.classify.rules.explain import explain
from services.classify.rules.hints import match
from services.classify.rules.schema import DEFAULT_HINTS
from shared.models import Classification, EventKind, Hit, IncidentStatus, Post, SourceHint
from shared.severity import Severity
from tests.rules_helpers import SHIPPED

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
ENGINE = compile_rules(SHIPPED, "config/rules.yaml")


def hinted(text: str, scheme: str, labels: dict[str, str] | None = None, **values: str) -> Post:
    return Post(
        text=text,
        source="status",
        hint=SourceHint(scheme=scheme, values=values),
        labels=labels or {},
    )


# --- the tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "severity", "effect"),
    [
        ({"status": "investigating", "impact": "major"}, "red_alert", None),
        ({"status": "identified", "impact": "critical"}, "red_alert", None),
        ({"status": "investigating", "impact": "minor"}, "assessing", None),
        ({"status": "investigating", "impact": "none"}, "assessing", None),
        ({"status": "monitoring", "impact": "major"}, "no_danger", "all_clear"),
        ({"status": "resolved", "impact": "major"}, "no_danger", "resolve"),
        ({"status": "postmortem", "impact": "minor"}, "no_danger", "resolve"),
    ],
)
def test_statuspage_defaults(values, severity, effect):
    c = ENGINE.classify(hinted("An update.", "statuspage", **values))
    assert (c.severity, c.hint.effect) == (Severity(severity), effect)
    assert c.all_clear is (effect is not None)
    assert c.stand_down is (effect == "resolve")


@pytest.mark.parametrize(
    ("values", "severity", "effect"),
    [
        ({"msg_type": "Alert", "status": "Actual", "severity": "Extreme",
          "certainty": "Observed", "urgency": "Immediate"}, "red_alert", None),
        ({"msg_type": "Update", "status": "Actual", "severity": "Severe",
          "certainty": "Likely", "urgency": "Expected"}, "red_alert", None),
        ({"msg_type": "Alert", "status": "Actual", "severity": "Severe",
          "certainty": "Possible", "urgency": "Expected"}, "assessing", None),
        ({"msg_type": "Alert", "status": "Actual", "severity": "Extreme",
          "certainty": "Observed", "urgency": "Future"}, "assessing", None),
        ({"msg_type": "Alert", "status": "Actual", "severity": "Minor",
          "certainty": "Unlikely", "urgency": "Future"}, "no_danger", None),
        ({"msg_type": "Cancel", "status": "Actual", "severity": "Extreme",
          "certainty": "Observed", "urgency": "Immediate"}, "no_danger", "resolve"),
        ({"msg_type": "Update", "status": "Actual", "severity": "Severe", "certainty": "Observed",
          "urgency": "Immediate", "expires": "past"}, "no_danger", "resolve"),
        ({"msg_type": "Update", "status": "Actual", "response_type": "AllClear",
          "severity": "Minor", "certainty": "Observed", "urgency": "Past"}, "no_danger", "resolve"),
        ({"msg_type": "Alert", "status": "Exercise", "severity": "Extreme",
          "certainty": "Observed", "urgency": "Immediate"}, "no_danger", None),
    ],
)  # fmt: skip
def test_cap_defaults(values, severity, effect):
    c = ENGINE.classify(hinted("A warning.", "cap", **values))
    assert (c.severity, c.hint.effect) == (Severity(severity), effect)


def test_values_compare_without_case_and_every_when_field_must_match():
    rows = DEFAULT_HINTS["cap"]
    red = {"severity": "EXTREME", "certainty": "observed", "urgency": "Immediate"}
    assert rows[match(rows, red)].severity is Severity.RED_ALERT
    # A field the hint does not carry never matches a row that asks for it.
    assert rows[match(rows, {"severity": "Extreme"})].severity is Severity.ASSESSING


def test_the_rules_file_replaces_a_schemes_table_and_keeps_the_others():
    engine = compile_rules(
        "hints:\n  statuspage:\n    - {when: {impact: [minor]}, severity: red_alert}\n"
        "    - {severity: no_danger}\n"
    )
    minor = engine.classify(hinted("x", "statuspage", status="investigating", impact="minor"))
    assert (minor.severity, minor.hint.rule) == (Severity.RED_ALERT, "hints.statuspage[0]")
    cancel = engine.classify(hinted("x", "cap", msg_type="Cancel"))
    assert cancel.stand_down  # cap: still the default table


def test_the_shipped_rules_file_spells_out_the_defaults():
    def meaning(tables):
        return {k: [(r.when, r.severity, r.effect) for r in rows] for k, rows in tables.items()}

    assert meaning(load_rules(SHIPPED).hints) == meaning(DEFAULT_HINTS)


def test_bad_hint_rows_are_refused_naming_the_line():
    with pytest.raises(ConfigError, match=r":3: .*exactly one of `severity` or `effect`"):
        load_rules("hints:\n  cap:\n    - {when: {status: [Test]}}\n")
    with pytest.raises(ConfigError, match=r"quotes"):
        load_rules("hints:\n  json:\n    - {when: {status: [yes]}, severity: red_alert}\n")


def test_a_scheme_without_a_row_for_the_hint_leaves_the_text_to_decide():
    c = ENGINE.classify(hinted("Gas leak at the plant, evacuate now", "nowhere", level="x"))
    assert c.severity is Severity.RED_ALERT
    assert "so the text decides" in "\n".join(explain(c))


# --- structure beats text, text still counts -----------------------------------------------------


def test_the_hint_outranks_cue_words_and_a_disagreement_is_shown_not_dropped():
    text = "Fire and explosion reported, evacuate the building now"
    assert ENGINE.classify(Post(text=text)).severity is Severity.RED_ALERT
    c = ENGINE.classify(
        hinted(text, "cap", msg_type="Alert", status="Actual", severity="Minor",
               certainty="Possible", urgency="Future")
    )  # fmt: skip
    assert c.severity is Severity.ASSESSING  # the source's own word won
    assert c.hint.text_severity is Severity.RED_ALERT  # the text's is kept beside it
    assert c.hint.disagreement == "the text reads red alert; the source says assessing"
    lines = explain(c)
    assert lines[0].startswith("assessing (the source's hint)")
    assert "the hint wins" in lines[1]
    assert "the text alone: red alert" in lines[1]
    assert lines[2].startswith("disagreement: the text reads red alert")
    assert any("explosion" in line for line in lines)  # the cues that fired are still listed


def test_an_all_clear_text_under_an_alarm_hint_is_a_disagreement():
    c = ENGINE.classify(
        hinted("All clear, no danger to anyone.", "statuspage", status="identified",
               impact="major")
    )  # fmt: skip
    assert c.severity is Severity.RED_ALERT
    assert not c.all_clear
    assert c.hint.disagreement == "the text reads as an all-clear; the source says red alert"


def test_a_quiet_text_under_a_hint_is_no_disagreement():
    c = ENGINE.classify(
        hinted("We are investigating reports of degraded performance.", "statuspage",
               status="investigating", impact="major")
    )  # fmt: skip
    assert c.severity is Severity.RED_ALERT
    assert c.hint.disagreement is None


# --- subject-scoped all-clears -------------------------------------------------------------------

ACTIONS, PAGES = "component:Actions", "component:Pages"


def run(*posts: Post):
    incident, events = None, []
    for n, post in enumerate(posts):
        cl = ENGINE.classify(post)
        t = apply_post(incident, cl, new_id="inc1", now=T0 + timedelta(minutes=n))
        incident = t.incident or incident
        events += t.events
    return incident, events


def sp(text: str, status: str, **components: str) -> Post:
    labels = {f"component:{k}": v for k, v in components.items()}
    return hinted(text, "statuspage", labels, status=status, impact="major")


def test_a_status_page_all_clear_for_some_components_does_not_clear_the_incident():
    incident, events = run(
        sp("Degraded performance for Actions and Pages", "investigating",
           Actions="degraded_performance", Pages="degraded_performance"),
        sp("Pages is operating normally.", "monitoring", Pages="operational"),
    )  # fmt: skip
    assert [e.kind for e in events] == [EventKind.OPENED]
    assert incident.severity is Severity.RED_ALERT
    assert incident.subjects == {ACTIONS: "degraded_performance", PAGES: "operational"}
    # `monitoring` without components says nothing about Actions: still not clear.
    _incident2, events2 = run(
        sp("Degraded performance for Actions and Pages", "investigating",
           Actions="degraded_performance", Pages="degraded_performance"),
        sp("Pages is operating normally.", "monitoring", Pages="operational"),
        sp("A fix is rolling out; we are monitoring.", "monitoring"),
    )  # fmt: skip
    assert [e.kind for e in events2] == [EventKind.OPENED]


def test_the_all_clear_comes_when_every_component_is_operational():
    incident, events = run(
        sp("Degraded performance for Actions and Pages", "investigating",
           Actions="degraded_performance", Pages="degraded_performance"),
        sp("Pages is operating normally.", "monitoring", Pages="operational"),
        sp("Actions is operating normally.", "monitoring", Actions="operational"),
    )  # fmt: skip
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.DE_ESCALATED]
    assert "statuspage says status=monitoring" in events[1].reason
    assert incident.severity is Severity.NO_DANGER


def test_an_explicit_resolution_resolves_whatever_is_still_affected():
    incident, events = run(
        sp("Degraded performance for Actions and Pages", "investigating",
           Actions="degraded_performance", Pages="degraded_performance"),
        sp("This incident has been resolved.", "resolved", Pages="operational"),
    )  # fmt: skip
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.RESOLVED]
    assert incident.status is IncidentStatus.RESOLVED


def text_all_clear(text: str) -> Classification:
    """A text all-clear as the rules give it (an all-clear hit, no structure)."""
    return Classification(
        post=Post(text=text, source="status"),
        severity=Severity.NO_DANGER,
        all_clear=True,
        hits=[Hit(rule="normal", kind="all_clear", text="operating normally", start=0, end=1)],
    )


def test_a_text_all_clear_naming_some_subjects_leaves_the_incident_up():
    opened = apply_post(
        None,
        ENGINE.classify(sp("Actions and Pages degraded", "investigating",
                           Actions="major_outage", Pages="partial_outage")),
        new_id="inc1",
        now=T0,
    ).incident  # fmt: skip
    assert opened is not None
    partial = apply_post(opened, text_all_clear("Pages is operating normally."), new_id="x", now=T0)
    assert partial.events == []
    assert partial.incident.subjects[PAGES] == "clear"
    assert partial.incident.subjects[ACTIONS] == "major_outage"
    # Naming the last one clears it; so does an all-clear naming none ("all systems normal").
    last = apply_post(
        partial.incident, text_all_clear("Actions is operating normally."), new_id="x", now=T0
    )
    assert [e.kind for e in last.events] == [EventKind.DE_ESCALATED]
    general = apply_post(opened, text_all_clear("All systems normal."), new_id="x", now=T0)
    assert [e.kind for e in general.events] == [EventKind.DE_ESCALATED]
    # A name inside another word is not a mention ("Pages" is not in "Webpages").
    inside = apply_post(opened, text_all_clear("Webpages load normally."), new_id="x", now=T0)
    assert [e.kind for e in inside.events] == [EventKind.DE_ESCALATED]  # names none: general


def test_places_are_subjects_too():
    def cap(text: str, msg_type: str, **areas: str) -> Post:
        labels = {f"area:{k}": v for k, v in areas.items()}
        return hinted(text, "cap", labels, msg_type=msg_type, status="Actual",
                      severity="Severe", certainty="Observed", urgency="Immediate")  # fmt: skip

    incident, events = run(
        cap("Flood warning", "Alert", North="affected", South="affected"),
        cap("Flood warning", "Update", North="affected", South="affected"),
    )
    assert [e.kind for e in events] == [EventKind.OPENED]
    assert incident.subjects == {"area:North": "affected", "area:South": "affected"}


# --- where an operator sees it --------------------------------------------------------------------


def test_rules_test_takes_a_hint_and_shows_the_disagreement(capsys):
    from services.cli.main import main

    hint = "cap:msg_type=Alert,status=Actual,severity=Minor,certainty=Possible,urgency=Future"
    code = main(["rules", "test", "Fire and explosion reported, evacuate now", "--hint", hint])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("assessing (the source's hint)")
    assert lines[1].startswith("source hint (cap): msg_type=Alert status=Actual severity=Minor")
    assert "-> assessing by hints.cap[8]; the text alone: red alert; the hint wins" in lines[1]
    assert lines[2].startswith("disagreement: the text reads red alert; the source says assessing")
    with pytest.raises(SystemExit):
        main(["rules", "test", "x", "--hint", "no-pairs"])


def test_a_matched_hint_opens_an_incident_even_without_a_cue_or_a_topic():
    from services.classify.incidents import opens_incident

    text = "An update on the checkout service will follow."
    quiet = ENGINE.classify(hinted(text, "statuspage", status="investigating", impact="minor"))
    assert quiet.severity is Severity.ASSESSING
    assert not any(h.kind == "cue" for h in quiet.hits)
    assert quiet.topics == []
    assert opens_incident(quiet)
    unmatched = quiet.model_copy(update={"hint": quiet.hint.model_copy(update={"matched": False})})
    assert not opens_incident(unmatched)  # the text decided, and it is about nothing
