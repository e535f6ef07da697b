"""Incidents end to end: correlation, hysteresis, people acting through the API, signed links and
the CLI, webhooks from PagerDuty and Alertmanager, quiet periods — over real HTTP and Redis."""

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from shared import keys, signing
from shared.links import action_link, link_secret
from shared.settings import Settings
from tests.conftest import eventually

THREADS = Path(__file__).parent / "threads"
ROOT = Path(__file__).parent.parent


def read(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (THREADS / name).read_text().splitlines() if line]
    return [{k: v for k, v in r.items() if k != "label"} for r in rows]


@pytest.fixture
def trusting_rules(tmp_path: Path) -> Path:
    """The shipped rules, plus one official author (CAL FIRE) trusted twice as much."""
    rules = yaml.safe_load((ROOT / "config" / "rules.yaml").read_text())
    rules.setdefault("trust", {}).setdefault("authors", {})["calfire"] = 2.0
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


class Api:
    def __init__(self, settings, redis):
        self.settings = settings
        self.redis = redis
        self.base = f"http://127.0.0.1:{settings.http_port}"
        self.http = httpx.AsyncClient(base_url=self.base)

    async def post(self, *posts: dict) -> None:
        r = await self.http.post("/v1/posts", json=list(posts))
        assert r.status_code == 202, r.text

    async def incidents(self) -> list[dict]:
        return (await self.http.get("/v1/incidents")).json()

    async def detail(self, incident_id: str) -> dict:
        return (await self.http.get(f"/v1/incidents/{incident_id}")).json()

    async def classified(self) -> int:
        return await self.redis.xlen(f"{self.settings.namespace}:{keys.CLASSIFIED}")

    async def timeline_kinds(self, incident_id: str) -> list[str]:
        return [t["kind"] for t in (await self.detail(incident_id))["timeline"]]

    async def subscribe(self, url: str, min_severity: str = "assessing") -> None:
        r = await self.http.post(
            "/v1/subscriptions", json={"name": "sink", "urls": [url], "min_severity": min_severity}
        )
        assert r.status_code == 201


@pytest.fixture
async def running(make_settings, redis, run_services, request):
    settings = make_settings(**getattr(request, "param", {}))
    async with run_services(settings):
        api = Api(settings, redis)
        yield api
        await api.http.aclose()


async def _only_incident(api: Api) -> dict:
    await eventually(lambda: _count(api, 1))
    return (await api.incidents())[0]


async def _count(api: Api, n: int) -> bool:
    return len(await api.incidents()) == n


# --- severity over time ------------------------------------------------------------------------


async def test_a_new_thread_follows_its_posts_with_hysteresis(
    make_settings, redis, run_services, trusting_rules, sink
):
    settings = make_settings(rules_file=trusting_rules)
    fire, chatter = read("paradise-ridge-fire.jsonl"), read("chatter.jsonl")
    async with run_services(settings):
        api = Api(settings, redis)
        await api.subscribe(sink.url)
        severities = []
        for post in [*fire[:2], chatter[0], fire[2], chatter[1], fire[3], chatter[2], *fire[4:]]:
            expected = await api.classified() + 1
            await api.post(post)
            await eventually(lambda n=expected: _at_least(api.classified(), n))
            incidents = await api.incidents()
            if incidents and post in fire:
                severities.append((post["id"], incidents[0]["severity"], incidents[0]["status"]))
        incidents = await api.incidents()
        detail = await api.detail(incidents[0]["id"])
        await eventually(lambda: len(sink.messages()) >= 2)
        await asyncio.sleep(0.3)
        await api.http.aclose()

    assert len(incidents) == 1  # chatter opened nothing; the thread-less post joined by topic
    assert [p["id"] for p in detail["posts"]] == [p["id"] for p in fire]
    assert severities == [
        ("pr-1", "red_alert", "open"),
        ("pr-2", "red_alert", "open"),  # "still assessing" does not lower a red alert
        ("pr-3", "red_alert", "open"),  # no thread: joined by topic and wording
        ("pr-4", "red_alert", "open"),  # a bystander's "not in any danger" does not stand it down
        ("pr-5", "no_danger", "open"),  # the official all-clear does
        ("pr-6", "no_danger", "resolved"),  # and the lifted evacuation order resolves it
    ]
    assert [t["kind"] for t in detail["timeline"]] == ["opened", "de_escalated", "resolved"]
    assert [m["title"].split("]")[0] + "]" for m in sink.messages()] == [
        "[RED ALERT]",
        "[ALL CLEAR]",
    ]


async def _at_least(awaitable, n: int) -> bool:
    return (await awaitable) >= n


@pytest.mark.parametrize("running", [{"quiet_period_s": 1}], indirect=True)
async def test_an_incident_nobody_posts_about_resolves_on_its_own_and_says_why(running):
    await running.post({"text": "Gas leak reported on Elm Street", "thread_id": "elm"})
    incident = await _only_incident(running)
    await eventually(lambda: _status(running, incident["id"], "resolved"), timeout=15)
    timeline = (await running.detail(incident["id"]))["timeline"]
    assert timeline[-1]["kind"] == "resolved"
    assert timeline[-1]["reason"].startswith("resolved on its own: no posts for")


async def _status(api: Api, incident_id: str, status: str) -> bool:
    return (await api.detail(incident_id))["incident"]["status"] == status


@pytest.mark.parametrize(
    ("running", "incidents"),
    [({"reopen_window_s": 3600}, 1), ({"reopen_window_s": 0}, 2)],
    indirect=["running"],
)
async def test_a_new_alarm_reopens_within_the_window_and_opens_anew_after(running, incidents):
    await running.post({"id": "a", "text": "Chemical leak at the plant", "thread_id": "plant"})
    first = await _only_incident(running)
    await running.post({"id": "b", "text": "All clear, false alarm", "thread_id": "plant"})
    await eventually(lambda: _status(running, first["id"], "resolved"))
    await asyncio.sleep(0.05)
    await running.post({"id": "c", "text": "Explosion at the plant", "thread_id": "plant"})
    await eventually(lambda: _at_least(running.classified(), 3))
    await eventually(lambda: _count(running, incidents))
    if incidents == 1:
        assert await running.timeline_kinds(first["id"]) == ["opened", "resolved", "reopened"]
    else:
        newest = (await running.incidents())[0]
        assert newest["id"] != first["id"]
        assert newest["status"] == "open"


# --- people -------------------------------------------------------------------------------


async def test_ack_resolve_and_reopen_through_api_signed_links_and_cli(running, sink):
    await running.subscribe(sink.url)
    await running.post({"text": "Tornado touching down near Hill Rd", "thread_id": "t1"})
    incident_id = (await _only_incident(running))["id"]
    await eventually(lambda: len(sink.messages()) == 1)

    # The API.
    r = await running.http.post(
        f"/v1/incidents/{incident_id}/ack", json={"actor": "ana", "note": "on my way"}
    )
    assert r.status_code == 202
    await eventually(lambda: _status(running, incident_id, "acknowledged"))

    # The signed resolve link the notification carried: GET only shows a page; POST acts.
    body = sink.messages()[0]["message"]
    link = re.search(r"Resolve: (\S+)", body).group(1)
    secret = await link_secret(running.redis, running.settings)
    version = int(re.search(r"\?v=(\d+)", link).group(1))
    assert link == action_link(
        running.settings, secret, incident_id, "resolve", version, now=_issued(link)
    )
    path = urlsplit(link)._replace(scheme="", netloc="").geturl()
    page = await running.http.get(path)
    assert page.status_code == 200
    assert "Resolve" in page.text
    assert (await running.detail(incident_id))["incident"]["status"] == "acknowledged"
    done = await running.http.post(path, content="actor=bo&note=fixed", headers=_form())
    assert done.status_code == 202
    await eventually(lambda: _status(running, incident_id, "resolved"))
    forged = path.replace("sig=", "sig=0")
    assert (await running.http.post(forged, content="actor=x", headers=_form())).status_code == 403

    # The CLI.
    env = {**os.environ, "REDALERT_API_URL": running.base}
    cli = [sys.executable, "-m", "services.cli", "incidents"]
    out = await asyncio.to_thread(
        subprocess.run,
        [*cli, "reopen", incident_id, "--actor", "cy"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    await eventually(lambda: _status(running, incident_id, "open"))
    shown = await asyncio.to_thread(
        subprocess.run, [*cli, "show", incident_id], env=env, capture_output=True, text=True
    )
    assert "reopened" in shown.stdout

    timeline = (await running.detail(incident_id))["timeline"]
    assert [(t["kind"], t.get("command", {}).get("via")) for t in timeline] == [
        ("opened", None),
        ("acknowledged", "api"),
        ("resolved", "link"),
        ("reopened", "api"),  # the CLI speaks to the API
    ]
    assert timeline[1]["command"]["actor"] == "ana"  # no token in use: the name given
    # A link is the credential, not a person: the name typed is kept beside it.
    assert (timeline[2]["command"]["actor"], timeline[2]["command"]["claimed"]) == ("link", "bo")
    assert timeline[3]["command"]["actor"] == "cy"
    # The ack told nobody; the resolution and the reopening did.
    await eventually(lambda: len(sink.messages()) == 3)
    assert [m["title"][:10] for m in sink.messages()] == ["[RED ALERT", "[RESOLVED]", "[RED ALERT"]


def _issued(link: str) -> float:
    expires = int(re.search(r"expires=(\d+)", link).group(1))
    return expires - Settings(_env_file=None).link_ttl_s


def _form() -> dict[str, str]:
    return {"content-type": "application/x-www-form-urlencoded"}


async def test_acting_on_an_unknown_incident_is_a_404(running):
    r = await running.http.post("/v1/incidents/nope/ack", json={"actor": "x"})
    assert r.status_code == 404
    r = await running.http.post("/v1/incidents/x/explode", json={})
    assert r.status_code == 422


# --- webhooks from other tools ---------------------------------------------------------------


def pagerduty(action: str, **payload) -> dict:
    body = {"routing_key": "R0UT1NG", "event_action": action, "dedup_key": "db-disk-full"}
    if payload:
        body["payload"] = {"source": "db-7", **payload}
    return body


async def test_a_pagerduty_trigger_acknowledge_resolve_round_trip(running):
    http = running.http
    r = await http.post(
        "/v1/webhooks/pagerduty",
        json=pagerduty("trigger", summary="Disk full on db-7", severity="critical"),
    )
    assert r.status_code == 202
    assert r.json()["dedup_key"] == "db-disk-full"
    incident = await _only_incident(running)
    assert incident["severity"] == "red_alert"
    await http.post("/v1/webhooks/pagerduty", json=pagerduty("acknowledge"))
    await eventually(lambda: _status(running, incident["id"], "acknowledged"))
    r = await http.post(
        "/v1/webhooks/pagerduty",
        json=pagerduty("trigger", summary="Disk 99% full on db-7", severity="warning"),
    )
    await http.post("/v1/webhooks/pagerduty", json=pagerduty("resolve"))
    await eventually(lambda: _status(running, incident["id"], "resolved"))
    await eventually(lambda: _at_least(running.classified(), 2))
    await asyncio.sleep(0.2)  # whichever came first, the update does not reopen it
    assert (await running.detail(incident["id"]))["incident"]["status"] == "resolved"
    assert len(await running.incidents()) == 1
    detail = await running.detail(incident["id"])
    assert [p["text"] for p in detail["posts"]] == ["Disk full on db-7", "Disk 99% full on db-7"]
    assert [t["kind"] for t in detail["timeline"]] == ["opened", "acknowledged", "resolved"]


async def test_a_bad_pagerduty_event_names_the_field(running):
    r = await running.http.post("/v1/webhooks/pagerduty", json=pagerduty("trigger", summary="x"))
    assert r.status_code == 422
    assert "body.payload.severity" in r.json()["error"]
    r = await running.http.post(
        "/v1/webhooks/pagerduty", json={**pagerduty("resolve"), "dedup_key": None}
    )
    assert r.status_code == 422
    assert "dedup_key is required" in r.json()["error"]


def alertmanager(status: str, severity: str = "critical", fingerprint: str = "f00d") -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": status,
        "receiver": "redalert",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "HighLatency", "severity": severity, "job": "api"},
                "annotations": {"summary": "API latency above 2s", "description": "p99 is 2.4s"},
                "startsAt": "2026-11-26T08:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


async def test_an_alertmanager_firing_resolved_round_trip(running):
    http = running.http
    assert (await http.post("/v1/webhooks/alertmanager", json=alertmanager("firing"))).json() == {
        "posts": 1, "duplicates": 0, "resolved": 0, "skipped": 0,
    }  # fmt: skip
    incident = await _only_incident(running)
    assert incident["severity"] == "red_alert"
    repeat = (await http.post("/v1/webhooks/alertmanager", json=alertmanager("firing"))).json()
    assert repeat["duplicates"] == 1  # Alertmanager's repeat_interval re-sends: one post
    await http.post("/v1/webhooks/alertmanager", json=alertmanager("resolved"))
    await eventually(lambda: _status(running, incident["id"], "resolved"))
    detail = await running.detail(incident["id"])
    assert detail["posts"][0]["text"] == "API latency above 2s: p99 is 2.4s"
    # An informational alert opens nothing, and its resolution has nothing to resolve.
    await http.post("/v1/webhooks/alertmanager", json=alertmanager("firing", "info", "beef"))
    await eventually(lambda: _at_least(running.classified(), 2))
    info_resolved = await http.post(
        "/v1/webhooks/alertmanager", json=alertmanager("resolved", "info", "beef")
    )
    assert info_resolved.json()["skipped"] == 1
    assert len(await running.incidents()) == 1


@pytest.mark.parametrize(
    "running", [{"pagerduty_secret": "pd-shh", "alertmanager_secret": "am-shh"}], indirect=True
)
async def test_webhooks_with_a_secret_need_a_valid_signature(running, redis):
    posts = f"{running.settings.namespace}:{keys.POSTS}"
    for path, secret, body in (
        ("/v1/webhooks/pagerduty", "pd-shh", pagerduty("trigger", summary="x", severity="error")),
        ("/v1/webhooks/alertmanager", "am-shh", alertmanager("firing")),
    ):
        raw = json.dumps(body).encode()
        before = await redis.xlen(posts)
        missing = await running.http.post(path, content=raw)
        wrong = await running.http.post(
            path, content=raw, headers={signing.HEADER: signing.sign("guess", raw)}
        )
        assert (missing.status_code, wrong.status_code) == (401, 401)
        assert await redis.xlen(posts) == before  # nothing published
        good = await running.http.post(
            path, content=raw, headers={signing.HEADER: signing.sign(secret, raw)}
        )
        assert good.status_code == 202
    assert await redis.xlen(posts) == 2
