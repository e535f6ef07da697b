"""The delivery pipeline's pure core: each step, quiet hours, silences, circuits, rendering."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notify import webhook
from services.notify.circuit import after_delivery
from services.notify.firing import FiringState, NoticeKind, decide
from services.notify.pipeline import (
    STEPS,
    Candidate,
    Env,
    Trigger,
    dedup,
    match,
    mute,
    next_repeat,
    rate_limit,
    render_step,
    run,
)
from services.notify.quiet_hours import quiet_until
from services.notify.render import render, render_digest
from shared.models import EventKind, IncidentStatus, QuietHours, RateLimit
from shared.secrets import MASK
from shared.severity import Severity
from shared.silences import Matchers, Silence, SilenceSpec, SilenceState, silencing
from shared.subscriptions import SubscriptionSpec, keep_masked_secrets, public
from tests.delivery_helpers import T0, event, incident, sub

RED, ASSESSING, NO_DANGER = Severity.RED_ALERT, Severity.ASSESSING, Severity.NO_DANGER
SIGNED = {"ack": "http://r/ack", "resolve": "http://r/res"}


def env(now: datetime = T0, **kw) -> Env:
    return Env(now, public_url="http://r/", signed=lambda _incident: dict(SIGNED), **kw)


def through(c: Candidate, e: Env) -> Candidate:
    return run(c, e)


# --- the chain --------------------------------------------------------------------------------


def test_the_chain_is_listed_in_one_place_in_order():
    names = [s.__name__ for s in STEPS]
    assert names == ["match", "mute", "dedup", "rate_limit", "render_step"]


def test_a_firing_incident_goes_all_the_way_through():
    c = through(Candidate(event(incident(RED)), sub()), env())
    assert c.stopped is None
    assert c.kind is NoticeKind.FIRING
    assert c.notification is not None
    assert c.notification.title.startswith("[RED ALERT] ")


# --- match ------------------------------------------------------------------------------------


def test_match_filters_on_topics_and_sources():
    e = event(incident(topics=("ISS",), sources=("mastodon",)))
    assert match(Candidate(e, sub(topics=["iss"])), env()) is None
    assert match(Candidate(e, sub(topics=["wildfire"])), env()) == "not one of its topics"
    assert match(Candidate(e, sub(sources=["rss"])), env()) == "not one of its sources"
    assert match(Candidate(e, sub(topics=["wildfire", "iss"], sources=["mastodon"])), env()) is None


def test_a_webhook_hears_every_event_of_incidents_that_reached_its_severity():
    hook = sub(urls=[], webhook={"url": "http://h/", "secret": "x" * 16}, min_severity=RED)
    later = incident(NO_DANGER, peak=RED, version=3)
    assert match(Candidate(event(later, EventKind.DE_ESCALATED), hook), env()) is None
    never = incident(ASSESSING)
    assert match(Candidate(event(never), hook), env()) == "never reached red alert"


# --- mute -------------------------------------------------------------------------------------


def silence(ends: datetime, **matchers) -> Silence:
    return Silence(
        matchers=Matchers(**matchers), starts_at=T0 - timedelta(hours=1), ends_at=ends, author="me"
    )


def test_a_silence_holds_firing_news_until_it_ends():
    s = silence(T0 + timedelta(hours=2), topic="iss")
    c = Candidate(event(incident(RED)), sub())
    assert mute(c, env(silences=[s])) is not None
    assert c.held_until == s.ends_at
    assert c.held_by == s


def test_a_silence_lets_resolved_news_through_when_the_subscription_wants_it():
    s = silence(T0 + timedelta(hours=2), topic="iss")
    resolved = incident(NO_DANGER, status=IncidentStatus.RESOLVED, version=2)
    c = Candidate(event(resolved, EventKind.RESOLVED), sub(send_resolved=True))
    assert mute(c, env(silences=[s])) is None
    told = FiringState(version=1, firing=True, severity=RED, told_at=T0)
    c = through(c, env(silences=[s], told={c.told_key: told}))
    assert c.kind is NoticeKind.RESOLVED
    assert c.notification is not None


def test_a_silence_matches_on_incident_and_subscription_too():
    s = silence(T0 + timedelta(hours=1), incident_id="inc1", subscription="ops")
    assert mute(Candidate(event(incident()), sub(name="ops")), env(silences=[s])) is not None
    assert mute(Candidate(event(incident()), sub(name="other")), env(silences=[s])) is None
    other = incident(id="inc2")
    assert mute(Candidate(event(other), sub(name="ops")), env(silences=[s])) is None


def test_expired_and_pending_silences_do_not_hold():
    past = silence(T0 - timedelta(minutes=1), topic="iss")
    future = Silence(
        matchers=Matchers(topic="iss"),
        starts_at=T0 + timedelta(hours=1),
        ends_at=T0 + timedelta(hours=2),
        author="me",
    )
    assert past.state(T0) is SilenceState.EXPIRED
    assert future.state(T0) is SilenceState.PENDING
    assert mute(Candidate(event(incident()), sub()), env(silences=[past, future])) is None


def test_silencing_picks_the_silence_that_holds_longest():
    short, long = (
        silence(T0 + timedelta(hours=1), topic="iss"),
        silence(T0 + timedelta(hours=3), source="mastodon"),
    )
    assert silencing([short, long], incident(), sub(), T0) == long


QUIET_ALL_DAY = {"timezone": "UTC", "ranges": ["00:00-24:00"]}


def test_quiet_hours_hold_an_assessing_alert_and_a_red_alert_with_urgent_bypass_goes_through():
    quiet = sub(quiet_hours={**QUIET_ALL_DAY, "urgent_bypass": True})
    assert mute(Candidate(event(incident(ASSESSING)), quiet), env()) is not None
    assert mute(Candidate(event(incident(RED)), quiet), env()) is None
    strict = sub(quiet_hours=QUIET_ALL_DAY)
    assert mute(Candidate(event(incident(RED)), strict), env()) is not None


def test_quiet_hours_hold_resolved_news_too_even_with_urgent_bypass():
    quiet = sub(quiet_hours={**QUIET_ALL_DAY, "urgent_bypass": True})
    resolved = incident(NO_DANGER, status=IncidentStatus.RESOLVED, version=2)
    assert mute(Candidate(event(resolved, EventKind.RESOLVED), quiet), env()) is not None


def test_webhooks_are_never_muted():
    hook = sub(urls=[], webhook={"url": "http://h/", "secret": "x" * 16}, quiet_hours=QUIET_ALL_DAY)
    s = silence(T0 + timedelta(hours=1), topic="iss")
    assert mute(Candidate(event(incident()), hook), env(silences=[s])) is None


# --- quiet hours ------------------------------------------------------------------------------


def test_quiet_until_handles_overnight_ranges_in_the_subscriptions_time_zone():
    qh = QuietHours(timezone="Europe/Paris", ranges=["22:00-07:00"])
    # 08:00 UTC is 09:00 in Paris in November: not quiet.
    assert quiet_until(qh, T0) is None
    # 23:30 Paris (22:30 UTC): quiet until 07:00 Paris (06:00 UTC) the next morning.
    late = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)
    assert quiet_until(qh, late) == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    # 03:00 Paris: in the range that started the evening before.
    early = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    assert quiet_until(qh, early) == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def test_quiet_hours_days_name_the_day_a_range_starts_and_adjacent_ranges_join():
    weekend = QuietHours(ranges=["00:00-24:00"], days=["sat", "sun"])
    friday = datetime(2026, 11, 27, 12, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert quiet_until(weekend, friday) is None
    assert quiet_until(weekend, saturday) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_quiet_hours_with_seconds_and_a_dst_change():
    qh = QuietHours(timezone="Europe/Paris", ranges=["01:00:00-04:00:30"])
    # 29 March 2026: clocks go from 02:00 to 03:00 in Paris; 04:00:30 CEST is 02:00:30 UTC.
    inside = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert quiet_until(qh, inside) == datetime(2026, 3, 29, 2, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("ranges", ["25:00-07:00"], "hours run 00-23"),
        ("ranges", ["10:00-10:00"], "is empty"),
        ("ranges", ["ten to seven"], "is not a time range"),
        ("days", ["funday"], "unknown day"),
    ],
)
def test_bad_quiet_hours_say_what_is_wrong(field, value, message):
    data = {"timezone": "UTC", "ranges": ["22:00-07:00"], field: value}
    with pytest.raises(ValidationError, match=message):
        QuietHours(**data)


# --- dedup and reminders ----------------------------------------------------------------------


def test_dedup_tells_once_then_only_changes():
    e, s = env(), sub()
    c1 = through(Candidate(event(incident(ASSESSING, version=1)), s), e)
    c2 = through(Candidate(event(incident(ASSESSING, version=2)), s), e)
    c3 = through(Candidate(event(incident(RED, version=3), EventKind.ESCALATED), s), e)
    assert (c1.kind, c2.stopped, c3.kind) == (
        NoticeKind.FIRING,
        "dedup: nothing new to tell",
        NoticeKind.CHANGED,
    )


def reminded(told: FiringState, inc, s, now) -> Candidate:
    c = Candidate(event(inc), s, Trigger.REPEAT)
    return through(c, env(now, told={c.told_key: told}))


def test_reminders_come_after_the_interval_while_red_and_unacknowledged():
    s = sub(repeat_interval="30m")
    told = FiringState(version=1, firing=True, severity=RED, told_at=T0)
    early = reminded(told, incident(RED), s, T0 + timedelta(minutes=10))
    assert early.kind is None
    assert next_repeat(early, T0 + timedelta(minutes=10)) == T0 + timedelta(minutes=30)
    due = reminded(told, incident(RED), s, T0 + timedelta(minutes=31))
    assert due.kind is NoticeKind.REPEAT
    assert due.state is not None
    assert due.state.repeats == 1
    assert due.notification is not None
    assert due.notification.title.startswith("[RED ALERT] (reminder) ")
    assert due.notification.event_id == "inc1:1:repeat1"
    assert next_repeat(due, T0 + timedelta(minutes=31)) == T0 + timedelta(minutes=61)


def test_an_acknowledged_incident_gets_no_reminders_until_it_escalates():
    s = sub(repeat_interval="30m", min_severity="assessing")
    later = T0 + timedelta(hours=2)
    acked = incident(RED, status=IncidentStatus.ACKNOWLEDGED, version=2)
    told = FiringState(version=1, firing=True, severity=RED, told_at=T0)
    assert reminded(told, acked, s, later).kind is None

    # Acknowledged at assessing, then it escalates to red: reminders start again.
    e = env(T0)
    at_assessing = incident(ASSESSING, status=IncidentStatus.ACKNOWLEDGED, version=2)
    c = Candidate(event(at_assessing, EventKind.ACKNOWLEDGED), s)
    e.told[c.told_key] = FiringState(version=1, firing=True, severity=ASSESSING, told_at=T0)
    through(c, e)
    escalated = incident(RED, status=IncidentStatus.ACKNOWLEDGED, version=3)
    c = through(Candidate(event(escalated, EventKind.ESCALATED), s), e)
    assert c.kind is NoticeKind.CHANGED
    assert c.state is not None
    assert c.state.escalated_since_ack
    assert reminded(c.state, escalated, s, later).kind is NoticeKind.REPEAT


def test_decide_ignores_events_older_than_what_was_told():
    told = FiringState(version=5, firing=True, severity=RED)
    state, kind = decide(told, event(incident(NO_DANGER, version=4)), sub(), T0)
    assert (state, kind) == (told, None)


# --- rate limit -------------------------------------------------------------------------------


def test_a_burst_over_the_rate_limit_goes_to_the_windows_digest():
    s = sub(rate_limit={"count": 3, "window": "10m"})
    e = env()
    cands = [through(Candidate(event(incident(RED, id=f"i{n}")), s), e) for n in range(20)]
    sent = [c for c in cands if c.digest_window is None]
    digested = [c for c in cands if c.digest_window is not None]
    assert (len(sent), len(digested)) == (3, 17)
    assert all(c.notification is not None for c in cands)  # digested ones are rendered too
    # A new window starts with the first message after the last one ended.
    after = env(T0 + timedelta(minutes=11), rate=dict(e.rate))
    assert rate_limit(Candidate(event(incident(id="late")), s), after) is None
    assert after.rate[s.id] is not None
    assert after.rate[s.id].count == 1


def test_the_digest_lists_the_held_messages_and_takes_the_most_urgent_type():
    s = sub(rate_limit=RateLimit(count=1, window=60))
    e = env()
    items = []
    for n, sev in enumerate((ASSESSING, RED, ASSESSING)):
        c = through(Candidate(event(incident(sev, id=f"i{n}")), s), e)
        assert c.notification is not None
        items.append(c.notification)
    d = render_digest(s, items, T0 + timedelta(minutes=1), "digest:1")
    assert d.title == "[DIGEST] 3 more notification(s) until 08:01:00 UTC"
    assert d.notify_type == "failure"
    assert "held back by the rate limit (1 per 1m)" in d.body
    assert d.body.count("[ASSESSING]") == 2
    assert d.body.count("[RED ALERT]") == 1
    assert d.related == ["i0", "i1", "i2"]


# --- render -----------------------------------------------------------------------------------


def rendered(s, inc=None, kind=EventKind.OPENED, text="leak!"):
    c = Candidate(event(inc or incident(RED), kind, text), s)
    through(c, env())
    assert c.notification is not None
    return c.notification


def test_every_message_about_an_open_incident_carries_ack_and_resolve_links():
    n = rendered(sub())
    assert "Acknowledge: http://r/ack" in n.body
    assert "Resolve: http://r/res" in n.body
    assert "Incident: http://r/v1/incidents/inc1" in n.body
    assert "watcher: leak!" in n.body


def test_markdown_and_html_formats():
    md = rendered(sub(format="markdown"))
    assert md.format == "markdown"
    assert "[Acknowledge](http://r/ack)" in md.body
    html = rendered(sub(format="html"), text="<script>x</script> & co")
    assert html.format == "html"
    assert '<a href="http://r/ack">Acknowledge</a>' in html.body
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in html.body


def test_templates_and_a_broken_one_falls_back_to_the_default():
    own = sub(
        templates={
            "title": "{{ tag }} / {{ incident.topics | join(',') }}",
            "body": "{{ post.author }} said {{ post.text }}; ack at {{ links.ack }}",
        }
    )
    n = rendered(own)
    assert n.title == "RED ALERT / iss"
    assert n.body == "watcher said leak!; ack at http://r/ack"
    broken = sub(templates={"body": "{{ post.missing_field }}"})
    assert "Severity: red alert" in rendered(broken).body


def test_resolved_messages_have_no_ack_link_and_say_resolved():
    from services.notify.render import actions
    from shared.settings import Settings

    settings = Settings(_env_file=None, public_url="http://r")
    inc = incident(NO_DANGER, status=IncidentStatus.RESOLVED, version=2)
    shown = actions(settings, inc)
    assert shown["ack"] is None
    assert shown["resolve"] is None
    acked = actions(settings, incident(status=IncidentStatus.ACKNOWLEDGED))
    assert acked["ack"] is None
    assert acked["resolve"] is not None
    # Unsigned: the sender signs links as a message goes out (shared/links.py).
    assert str(acked["resolve"]).startswith("http://r/v1/incidents/inc1/resolve/link?v=")


# --- webhooks ---------------------------------------------------------------------------------


def test_a_webhook_body_is_signed_with_the_secret_and_carries_event_incident_and_post():
    secret = "s" * 32
    hook = sub(urls=[], webhook={"url": "http://h/", "secret": secret})
    c = Candidate(event(incident(RED), EventKind.ESCALATED), hook)
    dedup(c, env())
    render_step(c, env())
    assert c.notification is not None
    raw, headers = webhook.request(c.notification, secret, T0)
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Redalert-Signature"] == f"sha256={expected}"
    body = json.loads(raw)
    assert body["type"] == "incident.escalated"
    assert body["event"]["kind"] == "escalated"
    assert body["incident"]["id"] == "inc1"
    assert body["incident"]["links"]["ack"] == "http://r/ack"
    assert body["post"]["text"] == "leak!"
    assert body["sent_at"] == headers["X-Redalert-Timestamp"] == str(int(T0.timestamp()))
    assert secret not in raw.decode()


# --- circuit breaker --------------------------------------------------------------------------


def test_a_circuit_opens_after_failures_in_a_row_then_half_opens_and_closes_on_success():
    args = {"subscription_id": "s", "index": 0, "url": "json://h/", "threshold": 3, "open_s": 60}
    c = None
    for _ in range(2):
        c = after_delivery(c, ok=False, error="HTTP 500", now=T0, **args)
    assert c is not None
    assert c.state(T0) == "closed"
    assert c.failures == 2
    c = after_delivery(c, ok=False, error="HTTP 500", now=T0, **args)
    assert c is not None
    assert c.state(T0) == "open"
    assert c.state(T0 + timedelta(seconds=61)) == "half_open"
    again = after_delivery(c, ok=False, error="HTTP 500", now=T0 + timedelta(seconds=61), **args)
    assert again is not None
    assert again.state(T0 + timedelta(seconds=62)) == "open"
    assert after_delivery(c, ok=True, error=None, now=T0, **args) is None


# --- what users declare -----------------------------------------------------------------------


def spec(**fields):
    return SubscriptionSpec(**{"name": "ops", "urls": ["json://127.0.0.1:9/hook"], **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"webhook": {"url": "http://h/", "secret": "x" * 16}}, "not both or neither"),
        ({"urls": []}, "not both or neither"),
        ({"urls": ["nonsense://x"]}, "urls[0]"),
        ({"repeat_interval": "soon"}, "is not a duration"),
        ({"rate_limit": {"count": 0, "window": "1m"}}, "greater than or equal to 1"),
        ({"templates": {"body": "{{ incident.titel }}"}}, "templates.body: 'dict object'"),
        ({"templates": {"title": "{% if %}"}}, "templates.title: line 1"),
        ({"format": "pdf"}, "format"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_subscription_is_refused_naming_what_is_wrong(fields, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        spec(**fields)


def test_a_webhook_subscription_refuses_settings_meant_for_people():
    with pytest.raises(ValidationError, match="quiet_hours: only for `urls` subscriptions"):
        SubscriptionSpec(
            name="hook",
            webhook={"url": "http://h/", "secret": "x" * 16},
            quiet_hours=QUIET_ALL_DAY,
        )
    with pytest.raises(ValidationError, match="at least 16 characters"):
        SubscriptionSpec(name="hook", webhook={"url": "http://h/", "secret": "short"})


def test_durations_read_like_people_write_them():
    assert spec(repeat_interval="15m").repeat_interval == 900
    assert spec(repeat_interval=90).repeat_interval == 90
    assert spec(rate_limit={"count": 5, "window": "1h"}).rate_limit.window == 3600


def test_what_get_shows_can_be_sent_back_without_losing_secrets():
    old = spec(
        urls=["json://user:hunter2-pass@127.0.0.1:9/hook", "gotify://127.0.0.1:9/AbCdEfGhIjKlMn"]
    ).to_subscription()
    shown = public(old)
    assert "hunter2-pass" not in json.dumps(shown)
    assert "AbCdEfGhIjKlMn" not in json.dumps(shown)
    back = keep_masked_secrets({**shown, "min_severity": "red_alert"}, old)
    assert back["urls"] == old.urls
    hook = SubscriptionSpec(
        name="hook", webhook={"url": "https://h.example/x/tok", "secret": "y" * 20}
    ).to_subscription()
    shown = public(hook)
    assert shown["webhook"] == {"url": "https://h.example/****", "secret": MASK}
    assert keep_masked_secrets(shown, hook)["webhook"] == {
        "url": "https://h.example/x/tok",
        "secret": "y" * 20,
    }


def test_a_silence_needs_a_matcher_an_end_and_an_author():
    with pytest.raises(ValidationError, match="give at least one of topic"):
        SilenceSpec(matchers={}, duration="1h", author="me")
    with pytest.raises(ValidationError, match="either ends_at or duration"):
        SilenceSpec(matchers={"topic": "iss"}, author="me")
    with pytest.raises(ValidationError, match="give a time zone"):
        SilenceSpec(matchers={"topic": "iss"}, ends_at="2026-11-26T10:00:00", author="me")
    s = SilenceSpec(matchers={"topic": "iss"}, duration="2h", author="me").to_silence(T0)
    assert s.ends_at - s.starts_at == timedelta(hours=2)
    with pytest.raises(ValueError, match="ends_at: must be after starts_at"):
        SilenceSpec(
            matchers={"topic": "iss"}, ends_at=T0 - timedelta(hours=1), author="me"
        ).to_silence(T0)
    with pytest.raises(ValueError, match="ends_at: already in the past"):
        SilenceSpec(
            matchers={"topic": "iss"},
            starts_at=T0 - timedelta(hours=2),
            ends_at=T0 - timedelta(hours=1),
            author="me",
        ).to_silence(T0)


def test_default_messages_are_the_same_for_every_subscription():
    """render() renders them once per event for a whole fan-out: they must not name anyone."""
    from services.notify.render import DEFAULT_BODY, DEFAULT_TITLE

    assert not any("subscription" in t for t in (DEFAULT_TITLE, *DEFAULT_BODY.values()))
    e = event(incident())
    a = render(e, sub(name="a"), NoticeKind.FIRING, "http://h")
    b = render(e, sub(name="b", format="markdown"), NoticeKind.FIRING, "http://h")
    c = render(e, sub(name="c"), NoticeKind.FIRING, "http://h")
    assert (a.title, a.body) == (c.title, c.body) != (b.title, b.body)
    assert a.subscription_id != c.subscription_id
