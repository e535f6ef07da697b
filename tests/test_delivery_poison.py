"""Poison stays with its subscription: a bad template or bad settings never cost anyone else.

Each test runs a poisoned subscription beside a healthy one and shows the healthy one served.
"""

import json

from shared import keys
from shared.models import Subscription
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually
from tests.delivery_helpers import deadletters, live, post_thread, quiet_for, subscribe

LEAK = "Gas leak reported at plant 3"
# Both render fine on the save-time sample (an ISS leak) and fail only on other incidents. The
# loop (36 million empty turns, seconds of work) outputs nothing, so only the time limit stops it.
FAILS_ON_REAL = (
    '{% if incident.title.startswith("ISS") %}{{ incident.title }}{% else %}{{ 1 // 0 }}{% endif %}'
)
LOOPS_ON_REAL = (
    '{% if incident.title.startswith("ISS") %}{{ incident.title }}{% else %}'
    '{% set s = "x" * 6000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}{% endif %}'
)


async def _poisoned_beside_a_healthy_one(api, make_sink, template: str):
    poisoned, healthy = make_sink(), make_sink()
    bad = await subscribe(api, name="poisoned", urls=[poisoned.url], templates={"body": template})
    await subscribe(api, name="healthy", urls=[healthy.url])
    await post_thread(api, "plant-3", LEAK)
    await eventually(lambda: len(healthy.messages()) == 1, timeout=10)
    await eventually(lambda: len(poisoned.messages()) == 1, timeout=10)
    shown = (await api.get(f"/v1/subscriptions/{bad['id']}")).json()
    return poisoned, healthy, shown


async def test_a_template_failing_only_on_real_incidents_sends_the_default(
    make_settings, run_services, make_sink
):
    async with live(run_services, make_settings()) as api:
        poisoned, healthy, shown = await _poisoned_beside_a_healthy_one(
            api, make_sink, FAILS_ON_REAL
        )
    assert healthy.messages()[0]["title"] == f"[RED ALERT] {LEAK}"
    [message] = poisoned.messages()
    assert message["title"] == f"[RED ALERT] {LEAK}"
    assert message["message"].startswith("Severity: red alert")  # the default body
    assert "templates.body" in shown["last_error"]["error"]
    assert "ZeroDivisionError" in shown["last_error"]["error"]


async def test_a_template_looping_almost_forever_is_cut_off_and_the_default_sent(
    make_settings, run_services, make_sink
):
    settings = make_settings(render_timeout_s=0.2)
    async with live(run_services, settings) as api:
        poisoned, healthy, shown = await _poisoned_beside_a_healthy_one(
            api, make_sink, LOOPS_ON_REAL
        )
        assert (await api.get("/healthz")).status_code == 200  # the event loop was never held
    assert healthy.messages()[0]["title"] == f"[RED ALERT] {LEAK}"
    assert poisoned.messages()[0]["message"].startswith("Severity: red alert")
    assert "templates.body: took longer than 0.2s" in shown["last_error"]["error"]


async def test_huge_durations_are_refused_naming_the_field(settings, run_services):
    async with live(run_services, settings) as api:
        for field, value, named in [
            ("repeat_interval", 1e300, "repeat_interval"),
            ("repeat_interval", "5s", "repeat_interval"),
            ("rate_limit", {"count": 1, "window": 1e300}, "rate_limit.window"),
        ]:
            r = await api.post(
                "/v1/subscriptions",
                json={"name": "huge", "urls": ["json://127.0.0.1:9/"], field: value},
            )
            assert r.status_code == 422, r.text
            [error] = r.json()["detail"]
            assert error["loc"][:2] == ["body", field]
            assert named in error["msg"]
        r = await api.post(
            "/v1/subscriptions",
            json={"name": "ok", "urls": ["json://127.0.0.1:9/"], "repeat_interval": "30d"},
        )
        assert r.status_code == 201, r.text


async def test_a_stored_subscription_with_unusable_settings_dead_letters_only_its_own(
    make_settings, redis, run_services, make_sink
):
    """Saved before the bounds existed: notify cannot use it, and everyone else is told."""
    settings = make_settings()
    poisoned, healthy = make_sink(), make_sink()
    store = SubscriptionStore(redis, keys.Keys(settings.namespace))
    legacy = Subscription.model_validate(
        {
            "name": "legacy",
            "urls": [poisoned.url],
            "repeat_interval": 1e300,
            "rate_limit": {"count": 5, "window": 1e300},
        }
    )
    await store.put(legacy)
    await store.put(Subscription(name="healthy", urls=[healthy.url]))
    async with live(run_services, settings) as api:
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(healthy.messages()) == 1, timeout=10)
        await eventually(lambda: _letters(redis, settings), timeout=10)
        shown = (await api.get(f"/v1/subscriptions/{legacy.id}")).json()
        await quiet_for(0.5)
    assert poisoned.messages() == []
    [letter] = await deadletters(redis, settings)
    assert letter["stream"] == keys.INCIDENT_EVENTS
    assert letter["extra"]["subscription_id"] == legacy.id
    assert letter["error"].startswith("subscription legacy: ")
    assert json.loads(letter["fields"]["data"])["incident"]["title"] == LEAK
    assert shown["last_error"]["error"] in letter["error"]


async def _letters(redis, settings) -> bool:
    return bool(await deadletters(redis, settings))


async def test_a_template_that_renders_nothing_sends_the_default(
    make_settings, run_services, make_sink
):
    empty = '{% if incident.title.startswith("ISS") %}{{ incident.title }}{% endif %}'
    async with live(run_services, make_settings()) as api:
        poisoned, healthy, shown = await _poisoned_beside_a_healthy_one(api, make_sink, empty)
    assert healthy.messages()[0]["title"] == f"[RED ALERT] {LEAK}"
    assert poisoned.messages()[0]["message"].startswith("Severity: red alert")
    assert shown["last_error"]["error"] == "templates.body: rendered nothing"
