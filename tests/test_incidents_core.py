"""The incident state machine, without Redis: hysteresis, trust, stand-down, commands."""

from datetime import UTC, datetime, timedelta

import pytest

from services.classify.incidents import apply_command, apply_post, opens_incident
from shared.models import (
    Classification,
    CommandAction,
    EventKind,
    Hit,
    IncidentCommand,
    IncidentStatus,
    Post,
)
from shared.severity import Severity

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def c(
    severity: str, *, all_clear=False, stand_down=False, trust=1.0, text="x", topics=("iss",)
) -> Classification:
    """A classification; at assessing or above it carries a danger cue, as the rules' would."""
    alarm = Severity(severity) >= Severity.ASSESSING
    return Classification(
        post=Post(text=text, source="t"),
        severity=Severity(severity),
        all_clear=all_clear,
        stand_down=stand_down,
        trust=trust,
        topics=list(topics),
        hits=[Hit(rule="leak", kind="cue", text="leak", start=0, end=4)] if alarm else [],
    )


def run(*classifications: Classification):
    incident, events = None, []
    for n, cl in enumerate(classifications):
        t = apply_post(incident, cl, new_id="inc1", now=T0 + timedelta(minutes=n))
        incident = t.incident or incident
        events += t.events
    return incident, events


def test_chatter_opens_nothing():
    incident, events = run(c("no_danger"))
    assert incident is None
    assert events == []
    assert not opens_incident(c("no_danger"))
    # Assessing from a hedge alone, about nothing: no topic, no danger cue ("investigating").
    hedge_only = c("assessing", topics=())
    hedge_only.hits = [Hit(rule="hedge", kind="uncertainty", text="still", start=0, end=5)]
    assert not opens_incident(hedge_only)
    negated = c("assessing", topics=())
    negated.hits[0].effect = "negated"
    assert not opens_incident(negated)
    # About a topic ("ISS: still assessing with Moscow"), or with a cue, even hedged: it opens.
    hedge_only.topics = ["iss"]
    assert opens_incident(hedge_only)
    hedged_cue = c("assessing", topics=())
    hedged_cue.hits[0].effect = "hedged"
    assert opens_incident(hedged_cue)  # "possible gas leak"
    decided = c("red_alert", topics=())
    decided.hits, decided.post.severity = [], Severity.RED_ALERT  # PagerDuty said so
    assert opens_incident(decided)


def test_red_alert_opens_at_once_and_assessing_does_not_lower_it():
    incident, events = run(c("red_alert"), c("assessing"), c("no_danger"), c("assessing"))
    assert incident.severity is Severity.RED_ALERT
    assert [e.kind for e in events] == [EventKind.OPENED]
    assert incident.post_count == 4
    assert incident.version == 4


def test_escalation_is_immediate():
    _incident, events = run(c("assessing"), c("red_alert"))
    assert [(e.kind, e.incident.severity) for e in events] == [
        (EventKind.OPENED, Severity.ASSESSING),
        (EventKind.ESCALATED, Severity.RED_ALERT),
    ]
    assert events[1].previous_severity is Severity.ASSESSING


def test_an_all_clear_de_escalates_and_a_stand_down_resolves():
    incident, events = run(
        c("red_alert"),
        c("no_danger", all_clear=True),
        c("no_danger", all_clear=True, stand_down=True),
    )
    assert [e.kind for e in events] == [
        EventKind.OPENED,
        EventKind.DE_ESCALATED,
        EventKind.RESOLVED,
    ]
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.peak_severity is Severity.RED_ALERT


def test_a_less_trusted_all_clear_does_not_stand_down_an_official_alert():
    incident, events = run(c("red_alert", trust=2.0), c("no_danger", all_clear=True, trust=1.0))
    assert incident.severity is Severity.RED_ALERT
    assert [e.kind for e in events] == [EventKind.OPENED]
    incident, events = run(c("red_alert", trust=2.0), c("no_danger", all_clear=True, trust=2.0))
    assert incident.severity is Severity.NO_DANGER


def test_a_resolved_incident_reopens_on_a_new_alarm_but_not_on_chatter():
    incident, events = run(
        c("red_alert"), c("no_danger", all_clear=True, stand_down=True), c("no_danger")
    )
    assert incident.status is IncidentStatus.RESOLVED
    incident, events = run(
        c("red_alert"), c("no_danger", all_clear=True, stand_down=True), c("assessing")
    )
    assert events[-1].kind is EventKind.REOPENED
    assert incident.status is IncidentStatus.OPEN
    assert incident.severity is Severity.ASSESSING


def test_event_ids_are_the_incident_and_its_version():
    _, events = run(c("assessing"), c("red_alert"))
    assert [e.id for e in events] == ["inc1:1", "inc1:2"]


@pytest.mark.parametrize(
    ("action", "start", "expected"),
    [
        (CommandAction.ACK, IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
        (CommandAction.RESOLVE, IncidentStatus.OPEN, IncidentStatus.RESOLVED),
        (CommandAction.RESOLVE, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED),
        (CommandAction.REOPEN, IncidentStatus.RESOLVED, IncidentStatus.OPEN),
    ],
)
def test_commands_move_the_lifecycle(action, start, expected):
    incident, _ = run(c("red_alert"))
    incident.status = start
    cmd = IncidentCommand(incident_id="inc1", action=action, actor="ana", note="on it")
    t = apply_command(incident, cmd, now=T0)
    assert t.incident.status is expected
    assert [e.kind.value for e in t.events] == [
        {"ack": "acknowledged", "resolve": "resolved", "reopen": "reopened"}[action.value]
    ]
    assert "ana" in t.events[0].reason
    assert "on it" in t.events[0].reason
    assert t.events[0].command == cmd


@pytest.mark.parametrize(
    ("action", "start"),
    [
        (CommandAction.ACK, IncidentStatus.ACKNOWLEDGED),
        (CommandAction.ACK, IncidentStatus.RESOLVED),
        (CommandAction.RESOLVE, IncidentStatus.RESOLVED),
        (CommandAction.REOPEN, IncidentStatus.OPEN),
    ],
)
def test_a_command_that_changes_nothing_emits_nothing(action, start):
    incident, _ = run(c("red_alert"))
    incident.status = start
    t = apply_command(incident, IncidentCommand(incident_id="inc1", action=action), now=T0)
    assert t.events == []
    assert not t.changed


def test_an_alarm_received_before_the_resolution_does_not_reopen_it():
    """Posts and commands are separate streams: a resolve may be applied before an older post."""
    incident, _ = run(c("red_alert"))
    resolve = IncidentCommand(
        incident_id="inc1", action=CommandAction.RESOLVE, at=T0 + timedelta(minutes=5)
    )
    incident = apply_command(incident, resolve, now=T0 + timedelta(minutes=9)).incident
    late = c("red_alert")
    late.post.received_at = T0 + timedelta(minutes=4)  # sent before the resolve, applied after
    t = apply_post(incident, late, new_id="x", now=T0 + timedelta(minutes=10))
    assert t.events == []
    assert t.incident.status is IncidentStatus.RESOLVED
    assert t.incident.post_count == 2
    fresh = c("red_alert")
    fresh.post.received_at = T0 + timedelta(minutes=6)
    t = apply_post(t.incident, fresh, new_id="x", now=T0 + timedelta(minutes=11))
    assert [e.kind for e in t.events] == [EventKind.REOPENED]


def test_a_joining_post_that_adds_a_source_or_topic_is_an_event():
    first = c("red_alert")
    from_usgs = c("red_alert", topics=("iss", "station"))
    from_usgs.post.source = "usgs"
    incident, events = run(first, from_usgs, c("red_alert"))
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.WIDENED]
    assert events[1].reason == "now also source usgs; topic station"
    assert incident.sources == ["t", "usgs"]
    assert incident.post_count == 3  # the third added nothing anyone filters on: no event


def test_a_post_joining_a_resolved_incident_is_not_a_widening():
    resolved, _ = run(c("red_alert"), c("no_danger", stand_down=True))
    late = c("no_danger", topics=("station",))
    t = apply_post(resolved, late, new_id="inc1", now=T0 + timedelta(hours=1))
    assert t.events == []
