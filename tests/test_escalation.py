"""Escalation policies end to end over real HTTP, Redis and apprise: step 1 at once, step 2 after
its delay without an ack, never after an ack through the page's own link, and the same when the
notify replica that paged step 1 is killed and others take over."""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import eventually

FAST = {"schedule_poll_s": 0.1}


def alert(fingerprint: str = "db1", **labels: str) -> dict:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Down", "severity": "critical", "team": "db", **labels},
                "annotations": {"summary": "Primary database down"},
                "startsAt": "2026-11-26T08:00:00Z",
                "fingerprint": fingerprint,
            }
        ],
    }


POLICY = {
    "name": "db-oncall",
    "matchers": ['team="db"'],
    "steps": [
        {"after": "0s", "notify": ["person:alice"]},
        {"after": "3s", "notify": ["person:bob"]},
    ],
}


async def _setup(http: httpx.AsyncClient, make_sink) -> tuple:
    alice, bob = make_sink(), make_sink()
    for name, sink in (("alice", alice), ("bob", bob)):
        r = await http.post("/v1/people", json={"name": name, "contacts": [sink.url]})
        assert r.status_code == 201, r.text
    r = await http.post("/v1/escalation-policies", json=POLICY)
    assert r.status_code == 201, r.text
    return alice, bob


async def _incident(http: httpx.AsyncClient) -> dict:
    found: list[dict] = []

    async def one() -> bool:
        found[:] = (await http.get("/v1/incidents")).json()
        return len(found) == 1

    await eventually(one)
    return found[0]


def _timeline(detail: dict) -> list[tuple[str, str]]:
    return [(t["kind"], t["reason"]) for t in detail["timeline"]]


@pytest.fixture
async def api(make_settings, redis, run_services):
    settings = make_settings(**FAST)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base) as http:
        http.settings = settings
        yield http


async def test_step_two_is_paged_after_its_delay_when_nobody_acknowledges(api, make_sink):
    alice, bob = await _setup(api, make_sink)
    assert (await api.post("/v1/webhooks/alertmanager", json=alert())).status_code == 202
    await eventually(lambda: len(alice.messages()) == 1)
    paged_alice = time.monotonic()
    (page,) = alice.messages()
    assert page["title"] == "[PAGE] [RED ALERT] Primary database down"
    assert "Acknowledge as alice: http://redalert.test/v1/incidents/" in page["message"]
    assert bob.messages() == []
    await eventually(lambda: len(bob.messages()) == 1, timeout=15)
    assert time.monotonic() - paged_alice >= 2.0  # not before its `after` (3 s from the start)
    assert "Acknowledge as bob:" in bob.messages()[0]["message"]
    incident = await _incident(api)
    await asyncio.sleep(1.0)  # nothing more comes: each step once
    assert (len(alice.messages()), len(bob.messages())) == (1, 1)
    detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
    assert _timeline(detail) == [
        ("opened", "opened at red alert"),
        ("escalation_started", "policy db-oncall started"),
        ("page", "db-oncall step 1: paged alice"),
        ("page", "db-oncall step 2: paged bob"),
    ]
    assert {t["severity"] for t in detail["timeline"]} == {"red_alert"}
    env = {**os.environ, "REDALERT_API_URL": f"http://127.0.0.1:{api.settings.http_port}"}
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "incidents", "show", incident["id"]],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "page               red_alert  db-oncall step 2: paged bob" in shown.stdout


async def test_an_ack_through_the_page_link_stops_the_policy_and_names_the_person(api, make_sink):
    alice, bob = await _setup(api, make_sink)
    await api.post("/v1/webhooks/alertmanager", json=alert())
    await eventually(lambda: len(alice.messages()) == 1)
    started = time.monotonic()
    link = re.search(r"Acknowledge as alice: (\S+)", alice.messages()[0]["message"]).group(1)
    path = urlsplit(link)._replace(scheme="", netloc="").geturl()
    preview = await api.get(path)  # a chat client's preview changes nothing
    assert preview.status_code == 200
    assert "Acknowledge as alice" in preview.text
    forged = path.replace("/as/alice", "/as/mallory")
    assert (await api.post(forged)).status_code == 403  # the name is signed into the link
    assert (await api.post(path)).status_code == 202
    assert (await api.post(path)).status_code == 410  # a link works once
    incident = await _incident(api)

    async def acked() -> bool:
        detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
        return detail["incident"]["acknowledged_by"] == "alice"

    await eventually(acked)
    assert time.monotonic() - started < 3  # acknowledged before step 2 was due
    await asyncio.sleep(4.0)  # past step 2's time
    assert bob.messages() == []
    detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
    assert _timeline(detail) == [
        ("opened", "opened at red alert"),
        ("escalation_started", "policy db-oncall started"),
        ("page", "db-oncall step 1: paged alice"),
        ("acknowledged", "acknowledged by alice via page"),
        ("escalation_stopped", "policy db-oncall stopped: acknowledged by alice"),
    ]


async def test_a_bad_policy_is_refused_naming_the_field(api, make_sink):
    await _setup(api, make_sink)
    for body, expected in [
        ({**POLICY, "steps": [{"after": "0s", "notify": ["person:zed"]}]},
         "body.steps.0.notify.0: no person 'zed'"),
        ({**POLICY, "steps": [{"after": "0s", "notify": ["pager:alice"]}]},
         "notify[0]: 'pager:alice': write person:NAME"),
        ({**POLICY, "matchers": ['team=="db"']}, "matchers[0]: matcher 'team==\"db\"'"),
        ({**POLICY, "steps": [{"after": "5m", "notify": ["person:alice"]},
                              {"after": "1m", "notify": ["person:bob"]}]},
         "steps[1].after: 60s comes before step 1's 300s"),
        ({**POLICY, "steps": []}, "body.steps"),
    ]:  # fmt: skip
        r = await api.post("/v1/escalation-policies", json=body)
        assert r.status_code == 422, body
        assert expected in r.json()["error"]
    listed = (await api.get("/v1/escalation-policies")).json()
    assert [p["name"] for p in listed] == ["db-oncall"]
    assert listed[0]["continue"] is True


async def test_a_killed_notify_replica_between_steps_changes_nothing(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(**FAST)
    base = f"http://127.0.0.1:{settings.http_port}"
    env = {
        **os.environ,
        "REDALERT_REDIS_URL": settings.effective_redis_url,
        "REDALERT_NAMESPACE": settings.namespace,
        "REDALERT_SCHEDULE_POLL_S": "0.1",
        "REDALERT_PUBLIC_URL": settings.public_url,
    }
    async with (
        run_services(settings, "ingest", "classify"),
        httpx.AsyncClient(base_url=base) as http,
    ):
        alice, bob = await _setup(http, make_sink)
        replica = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "notify"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await http.post("/v1/webhooks/alertmanager", json=alert())
            await eventually(lambda: len(alice.messages()) == 1, timeout=30)
        finally:
            replica.send_signal(signal.SIGKILL)  # between the steps: no clean shutdown
            replica.wait()
        assert bob.messages() == []  # killed well before step 2 (3 s after the start)
        # Two other replicas take over: step 2 is paged once, by one of them.
        async with (
            run_services(make_settings(**FAST), "notify"),
            run_services(make_settings(**FAST), "notify"),
        ):
            # A ceiling, not a measure: two fresh replicas start on a busy machine.
            await eventually(lambda: len(bob.messages()) == 1, timeout=60)
            await asyncio.sleep(1.5)
        assert (len(alice.messages()), len(bob.messages())) == (1, 1)
        incident = await _incident(http)
        detail = (await http.get(f"/v1/incidents/{incident['id']}")).json()
        assert [t["kind"] for t in detail["timeline"]] == [
            "opened",
            "escalation_started",
            "page",
            "page",
        ]


async def test_a_page_link_needs_no_token_once_tokens_exist(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(api_token="admin-s3cr3t", **FAST)
    base = f"http://127.0.0.1:{settings.http_port}"
    admin = {"authorization": "Bearer admin-s3cr3t"}
    async with run_services(settings), httpx.AsyncClient(base_url=base) as anyone:
        assert (await anyone.post("/v1/escalation-policies", json=POLICY)).status_code == 401
        async with httpx.AsyncClient(base_url=base, headers=admin) as http:
            alice, _bob = await _setup(http, make_sink)
            await http.post("/v1/webhooks/alertmanager", json=alert())
            await eventually(lambda: len(alice.messages()) == 1)
            link = re.search(r"Acknowledge as alice: (\S+)", alice.messages()[0]["message"])
            path = urlsplit(link.group(1))._replace(scheme="", netloc="").geturl()
            assert (await anyone.post(path)).status_code == 202  # the signature is the credential
            incident = await _incident(http)

            async def acked() -> bool:
                r = await http.get(f"/v1/incidents/{incident['id']}")
                return r.json()["incident"]["acknowledged_by"] == "alice"

            await eventually(acked)
            audit = (await http.get("/v1/audit")).json()
            assert any(e.get("actor") == "alice" for e in audit), audit


async def test_a_silence_holds_the_pages_until_it_ends(api, make_sink):
    alice, bob = await _setup(api, make_sink)
    r = await api.post(
        "/v1/silences",
        json={"matchers": ['service=~"api|web"'], "duration": "3s", "author": "jane"},
    )
    assert r.status_code == 201, r.text
    silence_id = r.json()["id"]
    await api.post("/v1/webhooks/alertmanager", json=alert(service="api"))
    incident = await _incident(api)

    async def held() -> bool:
        detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
        return "escalation_held" in [t["kind"] for t in detail["timeline"]]

    await eventually(held)
    assert alice.messages() == []  # silenced: nobody is paged
    await eventually(lambda: len(alice.messages()) == 1, timeout=15)  # paged once it ends
    detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
    reasons = [t["reason"] for t in detail["timeline"]]
    assert any(
        r.startswith(f"policy db-oncall held by silence {silence_id} until ") for r in reasons
    )
    assert "db-oncall step 1: paged alice" in reasons
    assert bob.messages() == []  # step 2 keeps its 3 s after the (moved) start


async def test_a_hanging_pager_holds_only_its_own_page(
    make_settings, redis, run_services, make_sink
):
    # One policy pages a target that answers after 12 s; another incident's policy, due while
    # that page is in flight, pages its person at once, not after the hanging one gives up.
    settings = make_settings(**FAST, send_timeout_s=30, send_attempts=1)
    hanging, carol = make_sink(delay=12), make_sink()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base) as http:
        for name, sink in (("slow", hanging), ("carol", carol)):
            r = await http.post("/v1/people", json={"name": name, "contacts": [sink.url]})
            assert r.status_code == 201, r.text
        for team, person in (("db", "slow"), ("web", "carol")):
            policy = {
                "name": f"{team}-oncall",
                "matchers": [f'team="{team}"'],
                "steps": [{"after": "0s", "notify": [f"person:{person}"]}],
            }
            r = await http.post("/v1/escalation-policies", json=policy)
            assert r.status_code == 201, r.text
        r = await http.post("/v1/webhooks/alertmanager", json=alert("db1", team="db"))
        assert r.status_code == 202
        await asyncio.sleep(2.0)  # the db page is sent and hanging
        r = await http.post("/v1/webhooks/alertmanager", json=alert("web1", team="web"))
        assert r.status_code == 202
        await eventually(lambda: len(carol.messages()) == 1, timeout=8)
        assert hanging.messages() == []  # still unanswered: carol did not wait for it
        await eventually(lambda: len(hanging.messages()) == 1, timeout=20)
