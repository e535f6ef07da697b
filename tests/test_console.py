"""The console over HTTP: sign-in, sessions, CSRF, live events, acting on incidents, offline."""

import asyncio
import json
import re
from html.parser import HTMLParser

import httpx
from pydantic import SecretStr

from services.ingest.console import live
from services.ingest.console.session import COOKIE
from shared import redis as shared_redis
from tests.conftest import eventually
from tests.console_helpers import browser, csrf_of, sign_in

TOKEN = "console-test-token-0123456789"
RED = "Fire at the chemical plant on Route 9, evacuate the area now"


async def _incident(api: httpx.AsyncClient, text: str = RED) -> str:
    r = await api.post("/v1/posts", json={"text": text}, headers={"accept": "application/json"})
    assert r.status_code == 202, r.text
    found: list[str] = []

    async def opened() -> bool:
        found[:] = [i["id"] for i in (await api.get("/v1/incidents")).json()]
        return bool(found)

    await eventually(opened)
    return found[0]


async def test_open_console_says_so_and_sets_a_strict_http_only_cookie(settings, run_services):
    async with run_services(settings, "ingest"), browser(settings) as web:
        r = await web.get("/")
    assert r.status_code == 200
    assert "Open console" in r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert "No incidents here" in r.text  # the empty state says what to do next


async def test_with_a_token_pages_need_sign_in(make_settings, run_services):
    settings = make_settings(api_token=SecretStr(TOKEN))
    async with run_services(settings, "ingest"), browser(settings) as web:
        first = await web.get("/silences")
        wrong = await sign_in(web, "not-the-token")
        forged = await web.post("/signin", data={"token": TOKEN, "csrf": "made-up", "next": "/"})
        right = await sign_in(web, TOKEN)
        page = await web.get("/")
        events_without = await httpx.AsyncClient(base_url=str(web.base_url)).get(
            "/console/events", headers={"accept": "text/html"}
        )
        # Leaving ends the session: the same cookie no longer opens pages.
        await web.post("/signout", data={"csrf": csrf_of(page.text)})
        after = await web.get("/")
    assert first.status_code == 303
    assert first.headers["location"] == "/signin?next=%2Fsilences"
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert forged.status_code == 403
    assert right.status_code == 303
    assert page.status_code == 200
    assert "Open console" not in page.text
    assert "admin" in page.text
    assert events_without.status_code == 303
    assert after.status_code == 303


async def test_sign_in_never_redirects_off_site(make_settings, run_services):
    settings = make_settings(api_token=SecretStr(TOKEN))
    async with run_services(settings, "ingest"), browser(settings) as web:
        form = (await web.get("/signin?next=//evil.example/x")).text
        r = await web.post(
            "/signin", data={"token": TOKEN, "csrf": csrf_of(form), "next": "https://evil.example/"}
        )
    assert r.headers["location"] == "/"


async def test_acting_needs_the_csrf_token_and_shows_in_the_timeline(settings, run_services):
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as web,
    ):
        incident_id = await _incident(web)
        page = await web.get(f"/incidents/{incident_id}")
        assert "Acknowledge" in page.text
        assert '<mark class="hit cue sev-red"' in page.text  # the explanation, highlighted
        forged = await web.post(f"/incidents/{incident_id}/ack", data={"note": "x"})
        ack = await web.post(
            f"/incidents/{incident_id}/ack",
            data={"note": "crew on the way", "csrf": csrf_of(page.text)},
        )
        assert forged.status_code == 403
        assert ack.status_code == 303

        async def acknowledged() -> bool:
            body = (await web.get(f"/console/fragments/incidents/{incident_id}")).text
            return "crew on the way" in body and "by <strong>anonymous</strong> via console" in body

        await eventually(acknowledged)
        listed = (await web.get("/?state=all")).text
    assert "acknowledged" in listed
    assert "by anonymous" in listed


async def test_the_live_stream_tells_of_a_new_incident(settings, run_services):
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as web,
    ):
        await web.get("/")  # the session

        async def read_until_incident() -> dict:
            async with web.stream("GET", "/console/events") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                event = ""
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    if line.startswith("data: ") and event == "incident":
                        return json.loads(line.removeprefix("data: "))
                    if line.startswith("event: hello"):
                        await web.post("/v1/posts", json={"text": RED})
            raise AssertionError("the stream ended without an incident")

        got = await asyncio.wait_for(read_until_incident(), 20)
    assert got["kind"] == "opened"
    assert got["severity"] == "red_alert"


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction") and value:
                if tag == "a" and name == "href":
                    continue  # a link a person may follow is not a request the page makes
                self.refs.append(value)


PAGES = [
    "/signin",
    "/",
    "/silences",
    "/subscriptions",
    "/rules",
    "/sources",
    "/deadletters",
    "/docs",
]


async def test_no_page_asks_anything_of_another_machine(make_settings, run_services):
    """Every asset a console page (or /docs) loads is served by redalert itself."""
    settings = make_settings(api_token=SecretStr(TOKEN))
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as web,
    ):
        web.headers["authorization"] = f"Bearer {TOKEN}"  # for the API only
        incident_id = await _incident(web)
        del web.headers["authorization"]
        pages = [*PAGES, f"/incidents/{incident_id}"]
        checked = 0
        for path in pages:
            r = await web.get(path)
            assert r.status_code == 200, (path, r.status_code)
            if path == "/signin":
                assert (await sign_in(web, TOKEN)).status_code == 303
            html = r.text
            assert not re.search(r"https?://(?!127\.0\.0\.1)", _without_links(html)), path
            parser = _Refs()
            parser.feed(html)
            for ref in parser.refs:
                assert ref.startswith("/"), (path, ref)
                assert not ref.startswith("//"), (path, ref)
                if any(ref.startswith(p) for p in ("/console/static/", "/docs-assets/")):
                    asset = await web.get(ref)
                    assert asset.status_code == 200, ref
                    assert b"//cdn" not in asset.content
                    checked += 1
    assert checked >= 8


def _without_links(html: str) -> str:
    """The page without <a href> targets and text (links a person may follow)."""
    return re.sub(r"<a [^>]*>", "<a>", html)


async def test_a_silence_is_previewed_created_and_expired(settings, run_services):
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as web,
    ):
        incident_id = await _incident(web)
        await web.post(
            "/v1/subscriptions",
            json={"name": "ops", "urls": ["json://127.0.0.1:9/x"], "min_severity": "assessing"},
            headers={"accept": "application/json"},
        )
        preview = await web.get(f"/silences?preview=1&incident_id={incident_id}&duration=1h")
        page = (await web.get("/silences")).text
        empty = await web.post("/silences", data={"csrf": csrf_of(page), "duration": "1h"})
        made = await web.post(
            "/silences",
            data={"csrf": csrf_of(page), "incident_id": incident_id, "duration": "1h"},
        )
        listed = (await web.get("/silences")).text
        silence_id = made.headers["location"].rpartition("silence-")[2]
        await web.post(f"/silences/{silence_id}/expire", data={"csrf": csrf_of(listed)})
        after = (await web.get("/silences")).text
    assert "It would hold back 1 notification pair" in preview.text
    assert empty.status_code == 422
    assert "give at least one of topic" in empty.text
    assert made.status_code == 303
    assert "🔇 active" in listed
    assert "Expire now" in listed
    assert "🔇 active" not in after
    assert "ended early by anonymous" in after


async def test_roles_decide_the_buttons_and_the_server_enforces_them(
    settings, run_services, redis, namespace
):
    from shared.auth import Role, TokenStore
    from shared.keys import Keys

    tokens = TokenStore(redis, Keys(namespace))
    _, viewer = await tokens.add("vic", Role.VIEWER, "test")
    _, responder = await tokens.add("rae", Role.RESPONDER, "test")
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as watcher,
        browser(settings) as helper,
    ):
        watcher.headers["authorization"] = f"Bearer {responder}"
        incident_id = await _incident(watcher)
        del watcher.headers["authorization"]
        assert (await sign_in(watcher, viewer)).status_code == 303
        assert (await sign_in(helper, responder)).status_code == 303

        seen = (await watcher.get(f"/incidents/{incident_id}")).text
        refused = await watcher.post(
            f"/incidents/{incident_id}/ack", data={"csrf": csrf_of(seen), "note": "x"}
        )
        page = (await helper.get(f"/incidents/{incident_id}")).text
        done = await helper.post(
            f"/incidents/{incident_id}/ack", data={"csrf": csrf_of(page), "note": "on it"}
        )
        rules = await helper.post(
            "/console/rules/save",
            json={"rules": "cues: []\n", "revision": 0},
            headers={"x-csrf-token": csrf_of(page)},
        )
        await eventually(lambda: _acknowledged_by(helper, incident_id, "rae"))

        # Revoking a token ends its console sessions.
        await tokens.revoke("vic")
        after = await watcher.get("/")
    assert "Acknowledge" not in seen  # a viewer sees no buttons…
    assert "This was really" not in seen
    assert refused.status_code == 403  # …and the server refuses anyway
    assert "vic is a viewer; this needs responder" in refused.text
    assert "Acknowledge" in page
    assert done.status_code == 303
    assert rules.status_code == 403
    assert after.status_code == 303


async def _acknowledged_by(web, incident_id: str, name: str) -> bool:
    body = (await web.get(f"/console/fragments/incidents/{incident_id}")).text
    return f"by <strong>{name}</strong> via console" in body


async def test_console_changes_are_in_the_audit_trail(make_settings, run_services):
    settings = make_settings(api_token=SecretStr(TOKEN))
    async with (
        run_services(settings, "ingest", "classify"),
        browser(settings) as web,
    ):
        web.headers["authorization"] = f"Bearer {TOKEN}"
        incident_id = await _incident(web)
        del web.headers["authorization"]
        await sign_in(web, TOKEN)
        page = (await web.get(f"/incidents/{incident_id}")).text
        await web.post(f"/incidents/{incident_id}/ack", data={"csrf": csrf_of(page)})
        await web.post(
            "/console/rules/check",
            json={"rules": "cues: []\n"},
            headers={"x-csrf-token": csrf_of(page)},
        )
        trail = (
            await web.get(
                "/v1/audit",
                headers={"authorization": f"Bearer {TOKEN}", "accept": "application/json"},
            )
        ).json()
    entries = trail if isinstance(trail, list) else trail["entries"]
    actions = [(e["actor"], e["action"], e["target"]) for e in entries]
    assert ("api-token", "POST /incidents/{incident_id}/{action}", incident_id) in actions
    assert not [a for a in actions if "rules/check" in a[1]]  # trying is not a change


async def test_a_person_sees_refusals_as_a_page_and_the_api_still_answers_json(
    settings, run_services
):
    async with run_services(settings, "ingest"), browser(settings) as web:
        page = (await web.get("/")).text
        too_long = await web.post(
            "/incidents/nope/ack", data={"csrf": csrf_of(page), "note": "x" * 3_000}
        )
        missing = await web.get("/incidents/nope")
        api = await web.post(
            "/v1/incidents/nope/ack",
            json={"note": "x" * 3_000},
            headers={"accept": "application/json"},
        )
    assert too_long.status_code == 422
    assert "Please check what you sent" in too_long.text
    assert "note" in too_long.text
    assert missing.status_code == 404
    assert "Not found" in missing.text
    assert api.status_code == 422
    assert "note" in api.json()["error"]


async def test_open_live_pages_never_leave_posts_waiting_for_a_connection(
    make_settings, run_services, monkeypatch
):
    # Each live page holds a Redis connection while it waits for events. With as many pages
    # open as the process may open connections, each blocked longer than a command waits for
    # a free one, posts are still answered: the pages read through their own pool.
    monkeypatch.setattr(live, "BLOCK_MS", 4_000)  # under redis-py's 5 s socket timeout
    monkeypatch.setattr(shared_redis, "POOL_WAIT_S", 1.0)
    settings = make_settings(redis_max_connections=4)
    async with run_services(settings, "ingest"), browser(settings) as web:
        await web.get("/")  # the session
        ready = asyncio.Semaphore(0)

        async def page() -> None:
            async with web.stream("GET", "/console/events") as r:
                async for line in r.aiter_lines():
                    if line.startswith("event: hello"):
                        ready.release()

        pages = [asyncio.create_task(page()) for _ in range(4)]
        try:
            for _ in pages:
                await asyncio.wait_for(ready.acquire(), 20)
            await asyncio.sleep(0.5)  # every page is now blocked in its read
            answers = [(await web.post("/v1/posts", json={"text": RED})).status_code]
            answers += [(await web.post("/v1/posts", json={"text": RED})).status_code]
        finally:
            for task in pages:
                task.cancel()
            await asyncio.gather(*pages, return_exceptions=True)
    assert answers == [202, 202]
