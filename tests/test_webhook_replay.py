"""Replay-proof inbound webhooks: a timestamp within a window, and each signed request once."""

import json
import time

import httpx
import pytest

from shared import keys, signing

SECRET = "relay-secret-0123456789"


@pytest.fixture
async def relay(make_settings, redis, run_services):
    settings = make_settings(
        webhook_window_s=60, pagerduty_secret="pd-secret-0123456789", poll_tick_s=0.1
    )
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as api:
        hook = {"name": "relay", "kind": "webhook", "secret": SECRET}
        r = await api.post("/v1/sources", json=hook)
        assert r.status_code == 201, r.text
        api.settings = settings
        yield api


async def published(redis, settings) -> list[dict]:
    entries = await redis.xrange(f"{settings.namespace}:{keys.POSTS}")
    return [json.loads(f[b"data"]) for _, f in entries]


def timed(body: bytes, at: int, secret: str = SECRET) -> dict[str, str]:
    return {signing.HEADER: signing.sign(secret, body, at), signing.TIMESTAMP_HEADER: str(at)}


async def test_a_timed_signature_works_once_and_only_within_its_window(relay, redis):
    body = json.dumps([{"text": "Smoke on the ridge"}]).encode()  # no id: a new post each time
    now = int(time.time())
    path = "/v1/sources/relay/posts"
    first = await relay.post(path, content=body, headers=timed(body, now))
    assert first.status_code == 202, first.text
    again = await relay.post(path, content=body, headers=timed(body, now))
    assert again.status_code == 200
    assert again.json() == {"replayed": True, "accepted": []}
    stale = await relay.post(path, content=body, headers=timed(body, now - 3600))
    assert stale.status_code == 401
    assert "outside the 60 s window" in stale.json()["detail"]
    ahead = await relay.post(path, content=body, headers=timed(body, now + 3600))
    assert ahead.status_code == 401
    moved = {**timed(body, now), signing.TIMESTAMP_HEADER: str(now + 1)}  # time changed
    assert (await relay.post(path, content=body, headers=moved)).status_code == 401
    later = await relay.post(path, content=body, headers=timed(body, now + 1))  # re-signed
    assert later.status_code == 202
    assert len(await published(redis, relay.settings)) == 2  # the two real sends, no replay


async def test_an_untimed_signature_without_ids_is_acted_on_once(relay, redis):
    body = json.dumps({"text": "Flooding on Main St"}).encode()
    signed = {signing.HEADER: signing.sign(SECRET, body)}
    path = "/v1/sources/relay/posts"
    assert (await relay.post(path, content=body, headers=signed)).status_code == 202
    for _ in range(3):
        replay = await relay.post(path, content=body, headers=signed)
        assert replay.json() == {"replayed": True, "accepted": []}
    assert len(await published(redis, relay.settings)) == 1


async def test_pagerduty_keeps_its_format_and_its_signature_is_replay_proof(relay, redis):
    event = {
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "payload": {"summary": "Disk full on db-7", "severity": "critical", "source": "db-7"},
    }  # no dedup_key: PagerDuty makes one per event
    body = json.dumps(event).encode()
    now = int(time.time())
    path = "/v1/webhooks/pagerduty"
    headers = timed(body, now, "pd-secret-0123456789")
    assert (await relay.post(path, content=body, headers=headers)).status_code == 202
    assert (await relay.post(path, content=body, headers=headers)).json()["replayed"] is True
    assert len(await published(redis, relay.settings)) == 1
