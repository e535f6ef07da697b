"""Labels over real HTTP and Redis: posts, plain-XADD producers and inbound webhooks carry them;
incidents keep the union; a bad label is a 422 naming it."""

import json

import httpx
import pytest

from shared import keys
from tests.conftest import eventually


@pytest.fixture
async def api(make_settings, redis, run_services):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with (
        run_services(settings, "ingest", "classify"),
        httpx.AsyncClient(base_url=base) as client,
    ):
        client.settings = settings
        yield client


async def _incidents(api: httpx.AsyncClient, n: int) -> list[dict]:
    found: list[dict] = []

    async def enough() -> bool:
        found[:] = (await api.get("/v1/incidents")).json()
        return len(found) >= n

    await eventually(enough)
    return found


async def test_posted_labels_reach_the_incident_as_a_union(api):
    r = await api.post(
        "/v1/posts",
        json=[
            {"id": "1", "text": "Explosion at the refinery", "thread_id": "r",
             "labels": {"team": "ops"}},
            {"id": "2", "text": "Fire at the refinery spreads", "thread_id": "r",
             "in_reply_to": "1", "labels": {"site": "north", "team": "other"}},
        ],
    )  # fmt: skip
    assert r.status_code == 202, r.text
    (incident,) = await _incidents(api, 1)

    async def both() -> bool:
        detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
        return detail["incident"]["post_count"] == 2

    await eventually(both)
    detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
    assert detail["incident"]["labels"] == {"team": "ops", "site": "north"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"bad name": "x"}, "body.labels: label name 'bad name'"),
        ({"team": "x" * 1_025}, "body.labels: label 'team': value longer than 1024"),
        ({"team": 5}, "body.labels.team: Input should be a valid string"),
        ("team", "body.labels: 'team': write labels as name=value"),
    ],
)
async def test_a_bad_label_is_a_422_naming_it(api, labels, expected):
    r = await api.post("/v1/posts", json={"text": "x", "labels": labels})
    assert r.status_code == 422
    assert expected in r.json()["error"]


async def test_a_plain_xadd_producer_can_send_labels(api, redis):
    stream = f"{api.settings.namespace}:{keys.POSTS}"
    await redis.xadd(
        stream,
        {"id": "x1", "source": "shell", "text": "Explosion at the depot", "labels": "team=db"},
    )
    await redis.xadd(
        stream,
        {"id": "x2", "source": "shell", "text": "Flood at the dam", "labels": '{"team": "w"}'},
    )
    classified = f"{api.settings.namespace}:{keys.CLASSIFIED}"
    await eventually(lambda: _xlen_is(redis, classified, 2))
    posts = [json.loads(f[b"data"])["post"] for _, f in await redis.xrange(classified)]
    assert {p["id"]: p["labels"] for p in posts} == {"x1": {"team": "db"}, "x2": {"team": "w"}}


async def _xlen_is(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def test_alertmanager_and_pagerduty_labels_reach_their_incidents(api):
    alert = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "severity": "critical", "team": "db",
                           "service": "api", "bad name": "dropped"},
                "annotations": {"summary": "Disk full"},
                "startsAt": "2026-11-26T08:00:00Z",
                "fingerprint": "f1",
            }
        ],
    }  # fmt: skip
    assert (await api.post("/v1/webhooks/alertmanager", json=alert)).status_code == 202
    page = {
        "routing_key": "R",
        "event_action": "trigger",
        "dedup_key": "pd1",
        "payload": {"summary": "Checkout down", "severity": "critical", "source": "web-3",
                    "component": "checkout", "group": "shop", "class": "http"},
    }  # fmt: skip
    assert (await api.post("/v1/webhooks/pagerduty", json=page)).status_code == 202
    by_source = {i["sources"][0]: i["labels"] for i in await _incidents(api, 2)}
    assert by_source["alertmanager"] == {
        "alertname": "DiskFull",
        "severity": "critical",
        "team": "db",
        "service": "api",
    }
    assert by_source["pagerduty"] == {
        "source": "web-3",
        "component": "checkout",
        "group": "shop",
        "class": "http",
        "severity": "critical",
    }
