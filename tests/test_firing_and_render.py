"""Who hears what: the firing decision and the message, without Redis."""

from datetime import UTC, datetime

import pytest

from services.notify.firing import FiringState, NoticeKind, decide
from services.notify.render import render
from shared.models import EventKind, Incident, IncidentEvent, IncidentStatus, Post, Subscription
from shared.severity import Severity

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def event(version: int, severity: str, status: str = "open") -> IncidentEvent:
    incident = Incident(
        id="inc1",
        title="Leak on the ISS",
        severity=Severity(severity),
        peak_severity=Severity.RED_ALERT,
        status=IncidentStatus(status),
        opened_at=NOW,
        updated_at=NOW,
        version=version,
    )
    return IncidentEvent(
        id=f"inc1:{version}",
        kind=EventKind.ESCALATED,
        incident=incident,
        reason="because",
        post=Post(text="there's a leak", source="t", author="harwood", url="https://x/1"),
    )


def story(sub: Subscription, *steps: tuple[str, str]) -> list[NoticeKind | None]:
    state, out = None, []
    for version, (severity, status) in enumerate(steps, 1):
        state, notice = decide(state, event(version, severity, status), sub)
        out.append(notice)
    return out


SEED = [("red_alert", "open"), ("no_danger", "open"), ("no_danger", "resolved")]


def test_the_seed_story_for_a_red_alert_subscriber():
    sub = Subscription(name="s", min_severity="red_alert")
    assert story(sub, *SEED) == [NoticeKind.FIRING, NoticeKind.ALL_CLEAR, None]


def test_the_seed_story_for_a_subscriber_to_everything():
    sub = Subscription(name="s", min_severity="no_danger")
    assert story(sub, *SEED) == [NoticeKind.FIRING, NoticeKind.CHANGED, NoticeKind.RESOLVED]


def test_no_resolved_message_without_send_resolved():
    sub = Subscription(name="s", min_severity="red_alert", send_resolved=False)
    assert story(sub, *SEED) == [NoticeKind.FIRING, None, None]


def test_staying_at_the_same_severity_is_silent():
    sub = Subscription(name="s", min_severity="assessing")
    steps = [("red_alert", "open"), ("red_alert", "open"), ("red_alert", "acknowledged")]
    assert story(sub, *steps) == [NoticeKind.FIRING, None, None]


def test_below_threshold_is_silent():
    sub = Subscription(name="s", min_severity="red_alert")
    assert story(sub, ("assessing", "open"), ("assessing", "resolved")) == [None, None]


def test_an_old_or_repeated_event_changes_nothing():
    sub = Subscription(name="s", min_severity="assessing")
    state, first = decide(None, event(2, "red_alert"), sub)
    assert first is NoticeKind.FIRING
    assert decide(state, event(2, "red_alert"), sub) == (state, None)
    assert decide(state, event(1, "assessing"), sub) == (state, None)
    assert state == FiringState(version=2, firing=True, severity=Severity.RED_ALERT)


@pytest.mark.parametrize(
    ("kind", "severity", "title", "notify_type"),
    [
        (NoticeKind.FIRING, "red_alert", "[RED ALERT] Leak on the ISS", "failure"),
        (NoticeKind.FIRING, "assessing", "[ASSESSING] Leak on the ISS", "warning"),
        (NoticeKind.CHANGED, "no_danger", "[ALL CLEAR] Leak on the ISS", "success"),
        (NoticeKind.ALL_CLEAR, "assessing", "[ALL CLEAR] Leak on the ISS", "success"),
        (NoticeKind.RESOLVED, "no_danger", "[RESOLVED] Leak on the ISS", "success"),
    ],
)
def test_titles_and_apprise_types(kind, severity, title, notify_type):
    n = render(event(1, severity), Subscription(name="s"), kind, "https://ra.example/")
    assert n.title == title
    assert n.notify_type == notify_type
    assert "harwood: there's a leak" in n.body
    assert "https://ra.example/v1/incidents/inc1" in n.body


def test_an_ack_is_never_a_first_page_but_a_later_escalation_is():
    sub = Subscription(name="made after it opened", min_severity="assessing")
    ack = event(2, "assessing", "acknowledged").model_copy(update={"kind": EventKind.ACKNOWLEDGED})
    state, notice = decide(None, ack, sub, NOW)
    assert notice is None
    assert not state.firing  # never told: the next change is its first page
    escalated = event(3, "red_alert", "acknowledged")
    assert decide(state, escalated, sub, NOW)[1] is NoticeKind.FIRING
