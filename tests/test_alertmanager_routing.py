"""Alertmanager alerts routed by their labels, end to end over real HTTP, Redis and apprise:
subscriptions matching `team="db"`, a silence on `service=~"api|web"`, an unknown severity's
warning, and alerts grouped into incidents by configured labels."""

import asyncio

import httpx
import pytest

from tests.conftest import eventually


def alert(fingerprint: str, status: str = "firing", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "severity": "critical", **labels},
        "annotations": {"summary": f"{labels.get('service', 'x')} latency above 2s"},
        "startsAt": "2026-11-26T08:00:00Z",
        "fingerprint": fingerprint,
    }


def webhook(*alerts: dict) -> dict:
    return {"version": "4", "status": alerts[0]["status"], "receiver": "redalert", "alerts": alerts}


@pytest.fixture
async def api(make_settings, redis, run_services, request):
    settings = make_settings(**getattr(request, "param", {}))
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base) as client:
        yield client


async def _subscribe(api: httpx.AsyncClient, name: str, url: str, **fields) -> None:
    r = await api.post("/v1/subscriptions", json={"name": name, "urls": [url], **fields})
    assert r.status_code == 201, r.text


async def _incidents(api: httpx.AsyncClient, n: int) -> list[dict]:
    found: list[dict] = []

    async def enough() -> bool:
        found[:] = (await api.get("/v1/incidents")).json()
        return len(found) >= n

    await eventually(enough)
    return found


async def test_labels_route_silence_and_warn(api, make_sink):
    db, web, everyone = make_sink(), make_sink(), make_sink()
    await _subscribe(api, "db on-call", db.url, matchers=['team="db"'])
    await _subscribe(api, "web chat", web.url, matchers='{team="web"}')
    await _subscribe(api, "everyone", everyone.url)
    bad = await api.post(
        "/v1/subscriptions",
        json={"name": "bad", "urls": [db.url], "matchers": ['team="db"', 'team=~"(db"']},
    )
    assert bad.status_code == 422
    assert "matchers[1]: matcher 'team=~\"(db\"': bad regex" in bad.json()["error"]
    r = await api.post(
        "/v1/silences",
        json={"matchers": ['service=~"api|web"'], "duration": "1h", "author": "jane"},
    )
    assert r.status_code == 201, r.text
    bad_silence = await api.post(
        "/v1/silences", json={"matchers": ["service=~(api"], "duration": "1h", "author": "j"}
    )
    assert bad_silence.status_code == 422
    assert "matcher 'service=~(api': bad regex" in bad_silence.json()["error"]

    hook = webhook(
        alert("db1", team="db", service="postgres"),
        alert("api1", team="db", service="api"),  # silenced: service=~"api|web"
        alert("web1", team="web", service="frontend", severity="crit"),  # unknown severity
    )
    assert (await api.post("/v1/webhooks/alertmanager", json=hook)).json()["posts"] == 3
    incidents = {i["labels"]["service"]: i for i in await _incidents(api, 3)}
    assert incidents["frontend"]["severity"] == "assessing"
    assert incidents["frontend"]["warnings"] == [
        "unknown severity label 'crit': kept as assessing (map it with "
        "REDALERT_ALERTMANAGER_SEVERITIES, e.g. crit=red_alert)"
    ]
    assert incidents["postgres"]["warnings"] == []

    await eventually(lambda: len(db.messages()) >= 1 and len(web.messages()) >= 1)
    await eventually(lambda: len(everyone.messages()) >= 2)
    await asyncio.sleep(0.5)  # anything else would have arrived by now
    assert [m["title"] for m in db.messages()] == ["[RED ALERT] postgres latency above 2s"]
    assert [m["title"] for m in web.messages()] == ["[ASSESSING] frontend latency above 2s"]
    assert sorted(m["title"] for m in everyone.messages()) == [
        "[ASSESSING] frontend latency above 2s",
        "[RED ALERT] postgres latency above 2s",
    ]


@pytest.mark.parametrize(
    "api",
    [{"alertmanager_group_by": "alertname,team", "alertmanager_severities": "p1=red_alert"}],
    indirect=True,
)
async def test_alerts_group_by_labels_and_the_group_resolves_with_its_last_alert(api):
    first = alert("db1", team="db", instance="db-1", severity="P1")
    second = alert("db2", team="db", instance="db-2", severity="P1")
    other = alert("web1", team="web", instance="web-1")
    await api.post("/v1/webhooks/alertmanager", json=webhook(first, second, other))
    await _incidents(api, 2)
    await asyncio.sleep(0.3)  # a third incident would have opened by now
    incidents = (await api.get("/v1/incidents")).json()
    assert len(incidents) == 2  # db-1 and db-2 are one incident
    db = next(i for i in incidents if i["labels"]["team"] == "db")
    assert db["severity"] == "red_alert"  # P1, mapped by REDALERT_ALERTMANAGER_SEVERITIES
    assert db["warnings"] == []

    async def posts(n: int) -> bool:
        detail = (await api.get(f"/v1/incidents/{db['id']}")).json()
        return detail["incident"]["post_count"] == n

    await eventually(lambda: posts(2))
    r = await api.post("/v1/webhooks/alertmanager", json=webhook({**first, "status": "resolved"}))
    assert r.json()["resolved"] == 0  # db-2 still fires
    r = await api.post("/v1/webhooks/alertmanager", json=webhook({**second, "status": "resolved"}))
    assert r.json()["resolved"] == 1

    async def resolved() -> bool:
        detail = (await api.get(f"/v1/incidents/{db['id']}")).json()
        return detail["incident"]["status"] == "resolved"

    await eventually(resolved)
