"""Delivery over time: quiet hours, silences, rate-limit digests and reminders, end to end.

Windows here are seconds long so the tests are quick; nothing asserts how fast anything is,
only what arrives, in what order, and that nothing extra does.
"""

from datetime import UTC, datetime, timedelta

from shared import keys
from shared.models import IncidentCommand, Subscription
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually
from tests.delivery_helpers import cli, live, post_thread, quiet_for, subscribe

LEAK = "Gas leak reported at plant 3"
MAYBE = "Possible gas leak at plant 4, still assessing"
STAND_DOWN = "I'm going to secure from red alert unless circumstances change."


def titles(sink) -> list[str]:
    return [m["title"] for m in sink.messages()]


def clock_range(start: datetime, end: datetime) -> str:
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}"


async def test_quiet_hours_hold_an_assessing_alert_and_a_red_alert_bypasses_them(
    make_settings, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1, correlation_window_s=0)  # a thread each
    sink = make_sink()
    async with live(run_services, settings) as api:
        await subscribe(
            api,
            urls=[sink.url],
            quiet_hours={
                "timezone": "Europe/Paris",
                "ranges": ["00:00-24:00"],
                "urgent_bypass": True,
            },
        )
        await post_thread(api, "plant-4", MAYBE)
        await quiet_for(1.0)
        assert sink.messages() == []  # held
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) == 1)
        await quiet_for(0.5)
    assert titles(sink) == [f"[RED ALERT] {LEAK}"]


async def test_what_quiet_hours_held_back_is_told_when_they_end(
    make_settings, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1)
    sink = make_sink()
    async with live(run_services, settings) as api:
        # From when the services are up, with room for a busy machine to subscribe and post
        # well inside the quiet hours (ranges count in whole seconds).
        now = datetime.now(UTC)
        ends = (now + timedelta(seconds=6)).replace(microsecond=0)
        await subscribe(
            api,
            urls=[sink.url],
            quiet_hours={"ranges": [clock_range(now - timedelta(hours=1), ends)]},
        )
        await post_thread(api, "plant-4", MAYBE)
        await quiet_for(1.0)
        assert sink.messages() == []  # held
        await eventually(lambda: len(sink.messages()) == 1, timeout=20)
        assert datetime.now(UTC) >= ends
        await quiet_for(0.5)
    [message] = sink.messages()
    assert message["title"] == f"[ASSESSING] {MAYBE}"
    assert "Held back earlier by a silence or quiet hours." in message["message"]


async def test_a_silence_holds_back_and_its_end_notifies(make_settings, run_services, make_sink):
    settings = make_settings(schedule_poll_s=0.1)
    sink, other = make_sink(), make_sink()
    async with live(run_services, settings) as api:
        await subscribe(api, name="silenced", urls=[sink.url])
        await subscribe(api, name="not silenced", urls=[other.url])
        r = await api.post(
            "/v1/silences",
            json={
                "matchers": {"source": "test", "subscription": "silenced"},
                "duration": "3s",
                "author": "ops",
                "comment": "maintenance at plant 3",
            },
        )
        assert r.status_code == 201, r.text
        silence = r.json()
        assert silence["state"] == "active"
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(other.messages()) == 1)
        await quiet_for(1.0)
        assert sink.messages() == []  # held by the silence
        await eventually(lambda: len(sink.messages()) == 1, timeout=20)
        listed = (await api.get("/v1/silences", params={"state": "expired"})).json()
        await quiet_for(0.5)
    assert titles(sink) == [f"[RED ALERT] {LEAK}"]
    assert [s["id"] for s in listed] == [silence["id"]]


async def test_expiring_a_silence_tells_what_it_held_at_once(
    make_settings, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1)
    sink = make_sink()
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[sink.url])
        code, out = await cli(
            settings, "silences", "add", "--source", "test", "--duration", "2h", "--author", "me"
        )
        assert code == 0, out
        silence_id = out.split()[0]
        await post_thread(api, "plant-3", LEAK)
        await quiet_for(1.0)
        assert sink.messages() == []
        code, out = await cli(settings, "silences", "expire", silence_id, "--by", "me")
        assert code == 0, out
        assert "expired" in out
        await eventually(lambda: len(sink.messages()) == 1, timeout=10)
    assert titles(sink) == [f"[RED ALERT] {LEAK}"]


async def test_resolved_news_goes_out_during_a_silence_when_asked_for(
    make_settings, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1)
    sink = make_sink()
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[sink.url], min_severity="red_alert", send_resolved=True)
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) == 1)
        r = await api.post(
            "/v1/silences",
            json={"matchers": {"source": "test"}, "duration": "1h", "author": "ops"},
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/v1/posts",
            json={"id": "plant-3-9", "source": "test", "thread_id": "plant-3", "text": STAND_DOWN},
        )
        assert r.status_code == 202
        await eventually(lambda: len(sink.messages()) == 2)
    assert titles(sink) == [f"[RED ALERT] {LEAK}", f"[RESOLVED] {LEAK}"]


async def test_a_burst_of_twenty_becomes_n_messages_and_one_digest(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1, correlation_window_s=0)  # a thread each
    sink = make_sink()
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[sink.url], rate_limit={"count": 3, "window": "8s"})
        burst = [
            {
                "id": f"b{n}",
                "source": "test",
                "thread_id": f"plant-{n}",
                "text": f"Gas leak at plant {n}",
            }
            for n in range(20)
        ]
        r = await api.post("/v1/posts", json=burst)
        assert r.status_code == 202, r.text
        await eventually(lambda: len(sink.messages()) == 3)
        await quiet_for(1.0)
        assert len(sink.messages()) == 3  # the rest waits for the window's end
        await eventually(lambda: len(sink.messages()) == 4, timeout=30)
        await quiet_for(1.0)
    messages = sink.messages()
    assert len(messages) == 4
    assert all(t.startswith("[RED ALERT] ") for t in titles(sink)[:3])
    digest = messages[3]
    assert digest["title"].startswith("[DIGEST] 17 more notification(s)")
    assert digest["type"] == "failure"
    assert digest["message"].count("[RED ALERT] Gas leak at plant") == 17
    told = {t for t in titles(sink)[:3]} | {
        line.split("UTC  ", 1)[1] for line in digest["message"].splitlines() if "UTC  " in line
    }
    assert told == {f"[RED ALERT] Gas leak at plant {n}" for n in range(20)}  # none lost


async def test_reminders_repeat_until_someone_acknowledges(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(schedule_poll_s=0.1)
    sink = make_sink()
    async with live(run_services, settings) as api:
        # 1 s is below the API's floor (30 s): stored directly, to keep the test short.
        await SubscriptionStore(redis, keys.Keys(settings.namespace)).put(
            Subscription(name="ops", urls=[sink.url], min_severity="red_alert", repeat_interval=1)
        )
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) >= 3, timeout=20)  # the alert, 2 reminders
        incident = (await api.get("/v1/incidents")).json()[0]
        ack = IncidentCommand(incident_id=incident["id"], action="ack", actor="oncall")
        await redis.xadd(f"{settings.namespace}:{keys.COMMANDS}", {"data": ack.model_dump_json()})
        await eventually(lambda: _status(api, incident["id"], "acknowledged"))
        await quiet_for(0.5)
        count = len(sink.messages())
        await quiet_for(2.5)  # 2 more intervals: nothing
        assert len(sink.messages()) == count
    assert titles(sink)[0] == f"[RED ALERT] {LEAK}"
    assert all(t == f"[RED ALERT] (reminder) {LEAK}" for t in titles(sink)[1:])


async def _status(api, incident_id: str, status: str) -> bool:
    r = await api.get(f"/v1/incidents/{incident_id}")
    return r.json()["incident"]["status"] == status
