"""Escalation policies without Redis: when each step is due (with repeats), which policies apply
(severity, labels, status, priority and continue), and the page's own ack link."""

from datetime import timedelta

import pytest

from shared.escalation import (
    EscalationState,
    Policy,
    ack_link,
    due_at,
    page_text,
    step_of,
    verify_ack,
    why_not,
)
from shared.models import IncidentStatus
from shared.severity import Severity
from tests.delivery_helpers import T0, incident


def policy(name: str = "p", **fields) -> Policy:
    fields.setdefault("steps", [{"after": 0, "notify": ["person:a"]},
                                {"after": "3s", "notify": ["person:b"]}])  # fmt: skip
    return Policy.model_validate({"name": name, **fields})


def db(severity: Severity = Severity.RED_ALERT, **labels: str):
    inc = incident(severity)
    inc.labels = {"team": "db", **labels}
    return inc


def test_steps_are_due_after_their_delay_from_the_start_and_repeats_follow():
    p = policy(repeat=1, repeat_after="10s")
    state = EscalationState(policy="p", incident_id="i", started_at=T0)
    times = []
    while (at := due_at(p, state)) is not None:
        times.append((step_of(p, state.next), (at - T0).total_seconds()))
        state = state.model_copy(update={"next": state.next + 1})
    # Cycle 0: 0 s, 3 s; cycle 1 starts 3 + 10 s later: 13 s, 16 s; then it is done.
    assert times == [((0, 0), 0), ((0, 1), 3), ((1, 0), 13), ((1, 1), 16)]


def test_a_policy_applies_to_open_incidents_at_its_severity_with_matching_labels():
    p = policy(matchers=['team="db"'], min_severity="red_alert")
    assert why_not(p, db()) is None
    assert why_not(p, db(Severity.ASSESSING)) == "assessing is below red alert"
    assert why_not(p, db(team="web")) == 'labels: team="db" does not match'
    acked = db()
    acked.status = IncidentStatus.ACKNOWLEDGED
    assert why_not(p, acked) == "the incident is acknowledged"


def test_the_ack_link_names_its_recipient_and_cannot_be_changed_to_another():
    secret = b"k" * 32
    link = ack_link("http://r/", 3600, secret, "inc1", "alice smith", 7, now=1_000)
    assert link.startswith("http://r/v1/incidents/inc1/ack/as/alice%20smith?v=7&expires=4600&sig=")
    sig = link.rsplit("sig=", 1)[1]
    assert verify_ack(secret, "inc1", "alice smith", 7, 4600, sig, now=2_000) is None
    for who, incident_id, version in [("mallory", "inc1", 7), ("alice smith", "inc2", 7),
                                      ("alice smith", "inc1", 8)]:  # fmt: skip
        refused = verify_ack(secret, incident_id, who, version, 4600, sig, now=2_000)
        assert refused is not None
        assert refused[0] == 403
    assert verify_ack(secret, "inc1", "alice smith", 7, 4600, sig, now=5_000) == (
        410,
        "it has expired",
    )


def test_a_page_says_who_is_paged_why_and_what_comes_next():
    title, body = page_text(db(), policy(), 0, 0, "alice", "http://ack", "http://page")
    assert title == "[PAGE] [RED ALERT] ISS: there is a leak coming from the radiator on MLM"
    assert "You are paged (alice): escalation policy p, step 1 of 2." in body
    assert "Labels: team=db" in body
    assert "Acknowledge as alice: http://ack" in body
    assert "step 2 is paged 3s after the start" in body


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": [{"after": "-1s", "notify": ["person:a"]}]}, "is not a duration"),
        ({"steps": [{"notify": ["team:a"]}]}, "'team:a': write person:NAME"),
        ({"repeat": 11}, "less than or equal to 10"),
    ],
)
def test_bad_policies_say_what_is_wrong(fields, message):
    with pytest.raises(ValueError, match=message):
        policy(**fields)


def test_durations_and_the_continue_alias():
    p = policy(steps=[{"after": "5m", "notify": ["schedule:db"]}], **{"continue": False})
    assert p.steps[0].after == 300
    assert p.public()["continue"] is False
    assert due_at(p, EscalationState(policy="p", incident_id="i", started_at=T0)) == T0 + timedelta(
        minutes=5
    )
