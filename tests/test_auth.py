"""People and roles: named tokens, who may do what on every route, actors, the audit trail."""

import asyncio
import os
import re
import subprocess
import sys

import httpx
import pytest

from services.ingest.app import create_app
from shared.auth import Principal, Role, authenticate, digest
from shared.settings import Settings
from tests.conftest import eventually

ADMIN_ENV = "env-admin-t0ken"
RANK = {"anonymous": -1, "viewer": 0, "responder": 1, "admin": 2}

# Every route of the API and the least role it needs: None is open to anyone (health, signed
# links, signed pushes); "signed" routes check their own credentials. A route missing here
# fails test_the_matrix_covers_every_route, so a new route must say who may call it.
ROUTES: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,  # its own optional token: test_metrics_has_its_own_token
    ("POST", "/v1/posts"): "responder",
    ("GET", "/v1/incidents"): "viewer",
    ("GET", "/v1/incidents/archive"): "viewer",
    ("GET", "/v1/incidents/{incident_id}"): "viewer",
    ("POST", "/v1/incidents/{incident_id}/{action}"): "responder",
    ("GET", "/v1/incidents/{incident_id}/{action}/link"): None,
    ("POST", "/v1/incidents/{incident_id}/{action}/link"): None,
    ("POST", "/v1/silences"): "responder",
    ("GET", "/v1/silences"): "viewer",
    ("GET", "/v1/silences/{silence_id}"): "viewer",
    ("POST", "/v1/silences/{silence_id}/expire"): "responder",
    ("POST", "/v1/webhooks/pagerduty"): "responder",
    ("POST", "/v1/webhooks/alertmanager"): "responder",
    ("POST", "/v1/webhooks/grafana"): "responder",  # or REDALERT_GRAFANA_SECRET's signature
    ("POST", "/v1/webhooks/json/{name}"): None,  # the json source's own signature
    ("GET", "/v1/rules"): "viewer",
    ("PUT", "/v1/rules"): "admin",
    ("GET", "/v1/rules/history"): "viewer",
    ("GET", "/v1/rules/{revision}"): "viewer",
    ("POST", "/v1/rules/test"): "viewer",
    ("GET", "/v1/subscriptions"): "viewer",
    ("POST", "/v1/subscriptions"): "admin",
    ("GET", "/v1/subscriptions/{sub_id}"): "viewer",
    ("PUT", "/v1/subscriptions/{sub_id}"): "admin",
    ("PATCH", "/v1/subscriptions/{sub_id}"): "admin",
    ("DELETE", "/v1/subscriptions/{sub_id}"): "admin",
    ("POST", "/v1/subscriptions/{sub_id}/test"): "admin",
    ("POST", "/v1/subscriptions/apply"): "admin",
    ("GET", "/v1/sources"): "viewer",
    ("POST", "/v1/sources"): "admin",
    ("GET", "/v1/sources/{name}"): "viewer",
    ("DELETE", "/v1/sources/{name}"): "admin",
    ("POST", "/v1/sources/{name}/poll"): "admin",
    ("POST", "/v1/sources/{name}/posts"): None,
    ("GET", "/v1/deadletter"): "viewer",
    ("GET", "/v1/deadletter/{letter_id}"): "viewer",
    ("POST", "/v1/deadletter/{letter_id}/replay"): "admin",
    ("GET", "/v1/tokens"): "admin",
    ("POST", "/v1/tokens"): "admin",
    ("DELETE", "/v1/tokens/{name}"): "admin",
    ("GET", "/v1/whoami"): "viewer",
    ("GET", "/v1/audit"): "admin",
    ("POST", "/v1/posts/{source}/{post_id}/label"): "responder",
    ("GET", "/v1/corrections"): "viewer",
    ("GET", "/v1/corrections.jsonl"): "viewer",
    ("GET", "/v1/people"): "viewer",
    ("POST", "/v1/people"): "admin",
    ("GET", "/v1/people/{name}"): "viewer",
    ("DELETE", "/v1/people/{name}"): "admin",
    ("GET", "/v1/people/{name}/oncall.ics"): "viewer",
    ("GET", "/v1/schedules"): "viewer",
    ("POST", "/v1/schedules"): "admin",
    ("GET", "/v1/schedules/{name}"): "viewer",
    ("DELETE", "/v1/schedules/{name}"): "admin",
    ("GET", "/v1/schedules/{name}/oncall"): "viewer",
    ("GET", "/v1/schedules/{name}/oncall.ics"): "viewer",
    ("GET", "/v1/escalation-policies"): "viewer",
    ("POST", "/v1/escalation-policies"): "admin",
    ("GET", "/v1/escalation-policies/{name}"): "viewer",
    ("DELETE", "/v1/escalation-policies/{name}"): "admin",
    ("GET", "/v1/incidents/{incident_id}/ack/as/{who}"): None,  # a page's own signed link
    ("POST", "/v1/incidents/{incident_id}/ack/as/{who}"): None,
    ("POST", "/v1/routes/test"): "viewer",
}


def api_routes() -> set[tuple[str, str]]:
    schema = create_app(Settings(_env_file=None)).openapi()
    return {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_the_matrix_covers_every_route():
    assert api_routes() == set(ROUTES)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class People:
    """A running API with REDALERT_API_TOKEN set and one named token per role."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings
        self.tokens: dict[str, str | None] = {"anonymous": None}

    async def add(self, name: str, role: str) -> str:
        r = await self.http.post(
            "/v1/tokens", json={"name": name, "role": role}, headers=bearer(ADMIN_ENV)
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def as_(self, who: str) -> dict[str, str]:
        return bearer(self.tokens[who])


@pytest.fixture
async def people(make_settings, redis, run_services):
    settings = make_settings(api_token=ADMIN_ENV)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as http:
        p = People(http, settings)
        for role in ("viewer", "responder", "admin"):
            p.tokens[role] = await p.add(f"{role}-1", role)
        yield p


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nope", path).replace("/nope/link", "/ack/link")


async def test_each_role_can_do_exactly_its_part(people):
    """Every route by anonymous/viewer/responder/admin: 401 without a token, 403 below the role
    the route needs, neither at or above it (what follows — 404, 422… — is the route's own)."""
    wrong = []
    for (method, path), needed in ROUTES.items():
        for who in ("anonymous", "viewer", "responder", "admin"):
            r = await people.http.request(method, concrete(path), headers=people.as_(who))
            if needed is None:
                expected_denial = None
            elif who == "anonymous":
                expected_denial = 401
            elif RANK[who] < RANK[needed]:
                expected_denial = 403
            else:
                expected_denial = None
            denied = r.status_code if r.status_code in (401, 403) else None
            if path.endswith("/link") or path.endswith("/{name}/posts"):
                denied = None if r.status_code != 401 else 401  # their 403 is a bad signature
            if denied != expected_denial:
                wrong.append(f"{method} {path} as {who}: {r.status_code} {r.text[:120]}")
    assert wrong == []


async def test_anonymous_reads_of_every_collection_are_refused_once_a_token_exists(
    make_settings, redis, run_services
):
    settings = make_settings()  # no REDALERT_API_TOKEN: open until a token is made
    base = f"http://127.0.0.1:{settings.http_port}"
    collections = ["/v1/incidents", "/v1/subscriptions", "/v1/silences", "/v1/sources"]
    collections += ["/v1/rules", "/v1/rules/history", "/v1/deadletter", "/v1/tokens", "/v1/audit"]
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as http:
        for path in collections:
            assert (await http.get(path)).status_code == 200, path
        r = await http.post("/v1/tokens", json={"name": "ops", "role": "admin"})
        assert r.status_code == 201
        token = r.json()["token"]
        for path in collections:
            assert (await http.get(path)).status_code == 401, path
            assert (await http.get(path, headers=bearer(token))).status_code == 200, path
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        # Revoked, it stops working at once; with no token left, the API is open again.
        assert (await http.delete("/v1/tokens/ops", headers=bearer(token))).status_code == 204
        assert (await http.get("/v1/incidents", headers=bearer(token))).status_code == 200
        assert (await http.get("/v1/whoami", headers=bearer(token))).json()["name"] == "anonymous"


async def test_a_token_is_shown_once_and_stored_as_a_digest(people, redis):
    token = await people.add("carol", "viewer")
    assert token.startswith("ra_")
    assert len(token) > 40
    listed = await people.http.get("/v1/tokens", headers=people.as_("admin"))
    assert token not in listed.text
    assert {t["name"]: t["role"] for t in listed.json()}["carol"] == "viewer"
    ns = people.settings.namespace
    stored = b""
    async for key in redis.scan_iter(match=f"{ns}:token*"):
        for field, value in (await redis.hgetall(key)).items():
            stored += field + b"=" + value + b";"
    assert token.encode() not in stored
    assert digest(token).encode() in stored
    me = await people.http.get("/v1/whoami", headers=bearer(token))
    assert me.json() == {"name": "carol", "role": "viewer", "authenticated": True}
    again = await people.http.post(
        "/v1/tokens", json={"name": "carol", "role": "admin"}, headers=people.as_("admin")
    )
    assert again.status_code == 409
    reserved = await people.http.post(
        "/v1/tokens", json={"name": "api-token", "role": "admin"}, headers=people.as_("admin")
    )
    assert reserved.status_code == 422
    assert "name" in reserved.json()["error"]


async def test_authenticate(make_settings, redis):
    settings = make_settings(api_token=ADMIN_ENV)
    assert await authenticate(redis, settings, ADMIN_ENV) == Principal("api-token", Role.ADMIN)
    assert await authenticate(redis, settings, "wrong") is None
    assert await authenticate(redis, settings, None) is None
    open_settings = make_settings()
    opened = await authenticate(redis, open_settings, None)
    assert opened is not None
    assert not opened.authenticated


async def test_metrics_has_its_own_token(make_settings, redis, run_services):
    settings = make_settings(api_token=ADMIN_ENV, metrics_token="scrape-me")
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer("nope"))).status_code == 401
        assert (await http.get("/metrics", headers=bearer("scrape-me"))).status_code == 200
        assert (await http.get("/metrics", headers=bearer(ADMIN_ENV))).status_code == 200
        # The metrics token opens nothing else.
        assert (await http.get("/v1/incidents", headers=bearer("scrape-me"))).status_code == 401


async def test_actors_come_from_the_token_and_changes_are_audited(
    make_settings, redis, run_services
):
    settings = make_settings(api_token=ADMIN_ENV)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with (
        run_services(settings, "ingest", "classify"),
        httpx.AsyncClient(base_url=base) as http,
    ):
        people = People(http, settings)
        dana = await people.add("dana", "responder")
        r = await http.post(
            "/v1/posts", json={"text": "Explosion at the chemical plant"}, headers=bearer(dana)
        )
        assert r.status_code == 202

        async def one_incident() -> bool:
            return bool((await http.get("/v1/incidents", headers=bearer(dana))).json())

        await eventually(one_incident)
        incident_id = (await http.get("/v1/incidents", headers=bearer(dana))).json()[0]["id"]
        r = await http.post(
            f"/v1/incidents/{incident_id}/ack",
            json={"actor": "the-boss", "note": "on it"},
            headers=bearer(dana),
        )
        assert r.status_code == 202

        async def acked() -> bool:
            detail = (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(dana))).json()
            return len(detail["timeline"]) == 2

        await eventually(acked)
        detail = (await http.get(f"/v1/incidents/{incident_id}", headers=bearer(dana))).json()
        command = detail["timeline"][1]["command"]
        assert command["actor"] == "dana"  # the token's name, not the claim…
        assert command["claimed"] == "the-boss"  # …which is kept beside it

        silence = {"matchers": {"topic": "fire"}, "duration": "1h", "author": "someone-else"}
        made = await http.post("/v1/silences", json=silence, headers=bearer(dana))
        assert made.status_code == 201
        assert made.json()["author"] == "dana"
        sub = {"name": "ops", "urls": ["json://u:hunter2pw@127.0.0.1:9/x?token=tok-zz9"]}
        refused = await http.post("/v1/subscriptions", json=sub, headers=bearer(dana))
        assert refused.status_code == 403
        assert (
            await http.post("/v1/subscriptions", json=sub, headers=bearer(ADMIN_ENV))
        ).status_code == 201

        trail = await http.get("/v1/audit", headers=bearer(ADMIN_ENV))
        assert trail.status_code == 200
        entries = trail.json()
        assert "hunter2pw" not in trail.text
        assert "tok-zz9" not in trail.text
        assert [e["action"] for e in entries] == [
            "POST /v1/subscriptions",
            "POST /v1/silences",
            "POST /v1/incidents/{incident_id}/{action}",
            "POST /v1/tokens",
        ]
        sub_entry, silence_entry, ack_entry, token_entry = entries
        assert sub_entry["actor"] == "api-token"
        assert sub_entry["changes"]["name"] == "ops"
        assert silence_entry["actor"] == "dana"
        assert ack_entry == {
            **ack_entry,
            "actor": "dana",
            "role": "responder",
            "claimed": "the-boss",
            "target": incident_id,
            "status": 202,
            "source_ip": "127.0.0.1",
        }
        assert ack_entry["changes"] == {"action": "ack", "note": "on it"}
        assert token_entry["changes"] == {"name": "dana", "role": "responder"}
        # Filters.
        mine = await http.get("/v1/audit", params={"actor": "dana"}, headers=bearer(ADMIN_ENV))
        assert [e["action"] for e in mine.json()] == [
            "POST /v1/silences",
            "POST /v1/incidents/{incident_id}/{action}",
        ]
        subs = await http.get(
            "/v1/audit", params={"action": "subscriptions", "limit": 5}, headers=bearer(ADMIN_ENV)
        )
        assert len(subs.json()) == 1
        later = await http.get(
            "/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=bearer(ADMIN_ENV)
        )
        assert later.json() == []
        assert (await http.get("/v1/audit", headers=bearer(dana))).status_code == 403


async def test_cli_tokens_and_audit(make_settings, redis, run_services):
    settings = make_settings(api_token=ADMIN_ENV)
    base = f"http://127.0.0.1:{settings.http_port}"
    env = {**os.environ, "REDALERT_API_URL": base, "REDALERT_API_TOKEN": ADMIN_ENV}
    cli = [sys.executable, "-m", "services.cli"]

    def run(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
        e = env if token is None else {**env, "REDALERT_API_TOKEN": token}
        return subprocess.run([*cli, *args], env=e, capture_output=True, text=True, check=False)

    async with run_services(settings, "ingest"):
        made = await asyncio.to_thread(run, "tokens", "add", "erin", "--role", "viewer")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("ra_")
        assert "shown this once" in made.stderr
        listed = await asyncio.to_thread(run, "tokens", "list")
        assert "erin" in listed.stdout
        assert "viewer" in listed.stdout
        assert token not in listed.stdout
        # A viewer may read but not make tokens.
        refused = await asyncio.to_thread(run, "tokens", "add", "x", "--role", "admin", token=token)
        assert refused.returncode != 0
        assert "403" in refused.stderr
        trail = await asyncio.to_thread(run, "audit", "--action", "tokens")
        assert trail.returncode == 0, trail.stderr
        assert "api-token" in trail.stdout
        assert "erin" in trail.stdout
        gone = await asyncio.to_thread(run, "tokens", "revoke", "erin")
        assert gone.returncode == 0, gone.stderr
        after = await asyncio.to_thread(run, "incidents", "list", token=token)
        assert after.returncode != 0
        assert "401" in after.stderr


async def test_each_replica_answers_from_its_copy_of_the_tokens_for_a_bounded_time(
    make_settings, redis, run_services
):
    """Replicas keep a copy of the tokens (REDALERT_TOKEN_CACHE_MS) instead of asking Redis on
    every request. A token made through one works at once on the others (unknown tokens are
    looked up); revoked through one, it is refused there at once and on the others once their
    copy is older than their window."""
    here = make_settings(api_token=ADMIN_ENV)
    short = make_settings(api_token=ADMIN_ENV, token_cache_ms=200)
    long = make_settings(api_token=ADMIN_ENV, token_cache_ms=60_000)
    urls = [f"http://127.0.0.1:{s.http_port}" for s in (here, short, long)]
    async with (
        run_services(here, "ingest"),
        run_services(short, "ingest"),
        run_services(long, "ingest"),
        httpx.AsyncClient() as http,
    ):

        async def who(url: str, token: str) -> int:
            return (await http.get(f"{url}/v1/whoami", headers=bearer(token))).status_code

        made = await http.post(
            f"{urls[0]}/v1/tokens",
            json={"name": "ops", "role": "responder"},
            headers=bearer(ADMIN_ENV),
        )
        ops = made.json()["token"]
        assert [await who(u, ops) for u in urls] == [200, 200, 200]
        revoked = await http.delete(f"{urls[0]}/v1/tokens/ops", headers=bearer(ADMIN_ENV))
        assert revoked.status_code == 204
        assert await who(urls[0], ops) == 401  # revoked here: at once
        assert await who(urls[2], ops) == 200  # its copy is younger than a minute
        await asyncio.sleep(0.2)
        assert await who(urls[1], ops) == 401  # its copy is older than 200 ms: read again
        made = await http.post(
            f"{urls[0]}/v1/tokens",
            json={"name": "ana", "role": "viewer"},
            headers=bearer(ADMIN_ENV),
        )
        assert await who(urls[2], made.json()["token"]) == 200  # new: looked up, not refused


async def test_an_open_replica_closes_once_its_copy_is_read_again(
    make_settings, redis, run_services
):
    """Open mode (no token anywhere) is answered from the copy too: a token made through another
    replica closes this one within its REDALERT_TOKEN_CACHE_MS."""
    here = make_settings()
    there = make_settings(token_cache_ms=200)
    async with (
        run_services(here, "ingest"),
        run_services(there, "ingest"),
        httpx.AsyncClient() as http,
    ):
        base, other = (f"http://127.0.0.1:{s.http_port}" for s in (here, there))
        assert (await http.get(f"{other}/v1/incidents")).status_code == 200
        made = await http.post(f"{base}/v1/tokens", json={"name": "ops", "role": "admin"})
        assert made.status_code == 201
        assert (await http.get(f"{base}/v1/incidents")).status_code == 401
        await asyncio.sleep(0.2)
        assert (await http.get(f"{other}/v1/incidents")).status_code == 401
