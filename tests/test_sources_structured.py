"""Structured sources end to end: a status page and CAP warnings served by local servers, polled
by ingest, classified through the rules file's hint tables, and the incidents that result."""

import asyncio
import contextlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from tests.conftest import eventually
from tests.source_servers import (
    BILLION_LAUGHS,
    CAP_AMBER,
    CAP_EARTHQUAKE,
    CAP_HSAS,
    CAP_THUNDERSTORM,
    Answer,
    SourceServer,
    StatusPage,
    StatusUpdate,
    cap_alert,
    cap_feed,
    external_entity,
    huge_cap,
    status_history,
)

FAST = {"poll_tick_s": 0.05, "poll_backoff_s": 0.05, "poll_backoff_max_s": 5, "poll_timeout_s": 5}


@pytest.fixture
def server() -> Iterator[SourceServer]:
    s = SourceServer().start()
    yield s
    s.stop()


@pytest.fixture
def fast_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return lambda **kw: make_settings(**{**FAST, **kw})


def client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=10)


async def add_source(settings: Settings, **spec: Any) -> None:
    async with client(settings) as c:
        r = await c.post("/v1/sources", json=spec)
        assert r.status_code == 201, r.text


async def incidents(settings: Settings) -> list[dict[str, Any]]:
    async with client(settings) as c:
        return (await c.get("/v1/incidents")).json()


async def detail(settings: Settings, incident_id: str) -> dict[str, Any]:
    async with client(settings) as c:
        return (await c.get(f"/v1/incidents/{incident_id}")).json()


async def source_status(settings: Settings, name: str) -> dict[str, Any]:
    async with client(settings) as c:
        return (await c.get(f"/v1/sources/{name}")).json()["status"]


async def published(redis, settings: Settings) -> list[dict[str, Any]]:
    entries = await redis.xrange(f"{settings.namespace}:{keys.POSTS}")
    return [json.loads(fields[b"data"]) for _, fields in entries]


def cli(*argv: str) -> str:
    """What `redalert ARGV` prints."""
    from services.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


def kinds(d: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in d["timeline"]]


# --- a status page -------------------------------------------------------------------------------

NAME = "Incident with Actions and Pages"
HISTORY = [
    StatusUpdate("old-1", "investigating", "Webhooks are delayed.", -3000,
                 {"Webhooks": "degraded_performance"}),
    StatusUpdate("old-2", "resolved", "This incident has been resolved.", -2950,
                 {"Webhooks": "operational"}),
]  # fmt: skip
UPDATES = [
    StatusUpdate("u1", "investigating", "We are investigating reports of degraded performance "
                 "for Actions and Pages.", 0,
                 {"Actions": "degraded_performance", "Pages": "degraded_performance"}),
    StatusUpdate("u2", "identified", "We have identified the cause and are working on a fix.", 12),
    # The partial recovery: a fix is out and Pages is back, Actions is not.
    StatusUpdate("u3", "monitoring", "Pages is operating normally.", 25, {"Pages": "operational"}),
    StatusUpdate("u4", "identified", "Actions runs are failing to start in some regions.", 31,
                 {"Actions": "partial_outage"}),
    StatusUpdate("u5", "monitoring", "Actions is operating normally. We are monitoring.", 48,
                 {"Actions": "operational"}),
    StatusUpdate("u6", "resolved", "This incident has been resolved.", 60),
    StatusUpdate("u7", "postmortem", "We will publish a detailed root cause analysis.", 600),
]  # fmt: skip


async def test_a_status_page_incident_opens_once_survives_a_partial_recovery_and_resolves_once(
    fast_settings, redis, run_services, server
):
    page = StatusPage()
    for update in HISTORY:  # over before redalert first looked: history, not news
        page.update("old0webhooks", "Delayed webhooks", "minor", update)
    url = server.route("/api/v2/incidents.json", page)
    settings = fast_settings()
    seen: list[dict[str, Any]] = []  # every state of the incident after each update
    async with run_services(settings, "ingest", "classify"):
        await add_source(
            settings, name="githubstatus", kind="statuspage", url=server.url(), interval_s=0.1
        )
        await eventually(lambda: len(server.requests_to("/api/v2/incidents.json")) >= 2)
        for n, update in enumerate(UPDATES, start=1):
            page.update("kf0hq2yw0b3r", NAME, "major", update)

            async def applied(n: int = n) -> bool:
                found = await incidents(settings)
                return bool(found) and found[0]["post_count"] == n

            await eventually(applied, timeout=15)
            seen.append((await incidents(settings))[0])
        (incident,) = await incidents(settings)
        d = await detail(settings, incident["id"])
        status = await source_status(settings, "githubstatus")
        shown = await asyncio.to_thread(
            cli,
            "incidents",
            "show",
            incident["id"],
            "--url",
            f"http://127.0.0.1:{settings.http_port}",
        )

    assert url.endswith("/api/v2/incidents.json")
    posts = await published(redis, settings)
    assert [p["id"] for p in posts] == [u.id for u in UPDATES]  # not the old incident's
    assert {p["thread_id"] for p in posts} == {"incident:kf0hq2yw0b3r"}
    # Red alert from the first update; the partial recovery (u3) and the relapse (u4) leave it
    # there; only once every component is operational (u5) does it come down; u6 resolves it.
    assert [s["severity"] for s in seen] == ["red_alert"] * 4 + ["no_danger"] * 3
    assert [s["status"] for s in seen] == ["open"] * 5 + ["resolved"] * 2
    assert seen[2]["subjects"] == {
        "component:Actions": "degraded_performance",
        "component:Pages": "operational",
    }
    assert kinds(d) == ["opened", "de_escalated", "resolved"]
    assert d["timeline"][1]["post"]["id"] == "u5"
    assert d["timeline"][2]["post"]["id"] == "u6"
    assert "statuspage says status=resolved" in d["timeline"][2]["reason"]
    assert incident["title"].startswith("Incident with Actions and Pages — Investigating")
    # Polls after the first were conditional: the unchanged document cost a 304.
    assert any(
        r.answered == 304 and r.headers.get("if-none-match")
        for r in server.requests_to("/api/v2/incidents.json")
    )
    assert status["last_error"] is None
    assert "  subjects: Actions operational, Pages operational" in shown


GITHUB_HISTORY = [
    (
        "Investigating",
        "We are investigating reports of degraded performance for Actions and Pages.",
    ),
    ("Update", "Pages is operating normally."),
    ("Update", "Actions is still experiencing degraded performance. We are investigating."),
    ("Update", "Actions is operating normally."),
    ("Resolved", "This incident has been resolved."),
]


async def test_a_status_pages_history_feed_clears_only_when_every_named_component_has(
    fast_settings, run_services, server
):
    """The plain-text case: history.atom names no component and says no impact, and "Pages is
    operating normally." came while Actions was still degraded."""
    shown: list[int] = [1]

    def feed(request: Any) -> Answer:
        name = "Incident with GitHub Actions and Pages"
        body = status_history([("19372", name, datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
                                GITHUB_HISTORY[: shown[0]])])  # fmt: skip
        return Answer(200, body, {"content-type": "application/atom+xml"})

    server.route("/history.atom", feed)
    settings = fast_settings()
    states = []
    async with run_services(settings, "ingest", "classify"):
        await add_source(
            settings, name="gh", kind="statuspage", url=server.url("/history.atom"), interval_s=0.1
        )
        for n in range(1, len(GITHUB_HISTORY) + 1):
            shown[0] = n

            async def applied(n: int = n) -> bool:
                found = await incidents(settings)
                return bool(found) and found[0]["post_count"] == n

            await eventually(applied, timeout=15)
            states.append((await incidents(settings))[0])
        d = await detail(settings, states[-1]["id"])

    assert [(s["severity"], s["status"]) for s in states] == [
        ("assessing", "open"),
        ("assessing", "open"),  # Pages back, Actions not: no all-clear
        ("assessing", "open"),
        ("no_danger", "open"),  # every component it named is back
        ("no_danger", "resolved"),
    ]
    assert states[1]["subjects"] == {
        "component:Actions": "affected",
        "component:Pages": "operational",
    }
    assert states[2]["subjects"]["component:Actions"] == "degraded_performance"
    assert kinds(d) == ["opened", "de_escalated", "resolved"]


# --- CAP -----------------------------------------------------------------------------------------


class CapFeed:
    """An Atom feed whose entries link to CAP documents, both served from `server`."""

    def __init__(self, server: SourceServer) -> None:
        self.server = server
        self.entries: list[tuple[str, str, datetime]] = []
        self.documents: dict[str, bytes] = {}
        server.route("/cap/feed.atom", self.feed)
        server.route_pattern(r"/cap/([\w.\-]+)\.xml", self.document)

    def publish(self, identifier: str, title: str, xml: str, at: datetime) -> None:
        self.documents[identifier] = xml.encode()
        self.entries.insert(0, (identifier, title, at))

    def feed(self, request: Any) -> Answer:
        body = cap_feed(self.entries, self.server.url())
        return Answer(200, body, {"content-type": "application/atom+xml"})

    def document(self, request: Any, identifier: str) -> Answer:
        if identifier not in self.documents:
            return Answer(404, b"not found")
        return Answer(200, self.documents[identifier], {"content-type": "application/cap+xml"})


def redated(xml: str, day: str, to: datetime) -> str:
    """A spec example moved to `to`'s date, so its `expires` is still ahead."""
    return xml.replace(day, to.date().isoformat())


async def test_cap_spec_examples_and_an_alert_update_cancel_chain(
    fast_settings, redis, run_services, server
):
    feed = CapFeed(server)
    now = datetime.now(UTC).replace(microsecond=0)
    tomorrow = now + timedelta(days=1)
    feed.publish("43b080713727", "HSAS", CAP_HSAS, now)
    feed.publish("KSTO1055887203", "SVR", redated(CAP_THUNDERSTORM, "2003-06-17", tomorrow), now)
    feed.publish("TRI13970876.2", "EQ", CAP_EARTHQUAKE, now)
    feed.publish("KAR0-0306112239-SW", "AMBER", CAP_AMBER, now)
    area = [("Harris, TX", "048201")]
    chain = [
        cap_alert("HGX-1", sent=now, expires=now + timedelta(hours=6), areas=area,
                  headline="Chlorine release at the Pasadena plant",
                  description="A chlorine leak is spreading east of the plant."),
        cap_alert("HGX-2", sent=now + timedelta(minutes=20), msg_type="Update",
                  references=[("HGX-1", now)], severity="Extreme", certainty="Observed",
                  urgency="Immediate", expires=now + timedelta(hours=6),
                  areas=[*area, ("Galveston, TX", "048167")],
                  headline="Chlorine release at the Pasadena plant: shelter area widened",
                  description="The plume reached Galveston County."),
        cap_alert("HGX-3", sent=now + timedelta(minutes=90), msg_type="Cancel",
                  references=[("HGX-1", now), ("HGX-2", now + timedelta(minutes=20))],
                  severity="Minor", certainty="Observed", urgency="Past", response="AllClear",
                  headline="Chlorine release: the shelter order is lifted",
                  description="The leak is stopped; air quality is back to normal."),
    ]  # fmt: skip
    feed.publish("HGX-1", "Chlorine release", chain[0], now)
    settings = fast_settings()
    async with run_services(settings, "ingest", "classify"):
        await add_source(
            settings,
            name="warnings",
            kind="cap",
            url=server.url("/cap/feed.atom"),
            language="en-US",
            interval_s=0.1,
        )

        async def chain_incident(posts: int) -> dict[str, Any] | None:
            for i in await incidents(settings):
                if i["title"].startswith("Chlorine release") and i["post_count"] == posts:
                    return i
            return None

        await eventually(lambda: chain_incident(1), timeout=15)
        feed.publish("HGX-2", "Update", chain[1], now + timedelta(minutes=20))
        await eventually(lambda: chain_incident(2), timeout=15)
        after_update = await chain_incident(2)
        feed.publish("HGX-3", "Cancel", chain[2], now + timedelta(minutes=90))
        await eventually(lambda: chain_incident(3), timeout=15)
        chained = await chain_incident(3)
        d = await detail(settings, chained["id"])
        everything = await incidents(settings)

    # The chain: one incident, red alert, the update joined it, the cancel resolved it.
    assert (after_update["severity"], after_update["status"]) == ("red_alert", "open")
    assert after_update["subjects"] == {
        "area:Harris_TX": "affected",
        "area:Galveston_TX": "affected",
    }
    assert (chained["severity"], chained["status"]) == ("no_danger", "resolved")
    # The update added an area label: a "widened" event (subscriptions to that area hear).
    assert kinds(d) == ["opened", "widened", "resolved"]
    assert d["timeline"][0]["severity"] == "red_alert"
    assert d["timeline"][1]["reason"].startswith("now also label")
    assert "cap says msg_type=Cancel" in d["timeline"][2]["reason"]
    # The spec's examples: the advisory, the storm and the Amber alert are red alerts; the
    # earthquake report (a Past, Minor update) opens nothing.
    titles = {i["title"].split("\n")[0][:40]: i for i in everything}
    assert len(everything) == 4, titles.keys()
    by_title = {t.split(" ")[0]: i for t, i in titles.items()}
    assert {k: by_title[k]["severity"] for k in ("Homeland", "SEVERE", "Amber")} == dict.fromkeys(
        ("Homeland", "SEVERE", "Amber"), "red_alert"
    )
    posts = {p["id"]: p for p in await published(redis, settings)}
    assert posts["TRI13970876.2"]["hint"]["values"]["urgency"] == "Past"
    assert posts["KAR0-0306112239-SW"]["text"].startswith("Amber Alert in Los Angeles County")
    assert posts["KSTO1055887203"]["labels"]["geocode:SAME"] == "006109 006009 006003"


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (lambda url: BILLION_LAUGHS, "unsafe XML refused: DTDForbidden"),
        (lambda url: external_entity(url), "unsafe XML refused: DTDForbidden"),
        (lambda url: huge_cap(50), "answer larger than 2000000 bytes"),
    ],
    ids=["entity-expansion", "external-entity", "50MB"],
)
async def test_malicious_cap_is_refused_without_harm(
    fast_settings, redis, run_services, server, document, error
):
    canary = server.route("/canary", lambda r: Answer(200, b"read"))
    body = document(canary)
    server.route("/evil.xml", lambda r: Answer(200, body, {"content-type": "application/cap+xml"}))
    good = cap_alert("OK-1", sent=datetime.now(UTC), headline="Chlorine release downtown")
    server.route("/good.xml", lambda r: Answer(200, good.encode()))
    settings = fast_settings()
    async with run_services(settings, "ingest"):
        await add_source(settings, name="evil", kind="cap", url=server.url("/evil.xml"))
        await add_source(settings, name="good", kind="cap", url=server.url("/good.xml"))

        async def refused() -> bool:
            return bool((await source_status(settings, "evil"))["last_error"])

        await eventually(refused, timeout=15)
        status = await source_status(settings, "evil")
        # The same ingest goes on reading a good source.
        await eventually(lambda: len(server.requests_to("/good.xml")) >= 1)

        async def good_published() -> bool:
            return any(p["id"] == "OK-1" for p in await published(redis, settings))

        await eventually(good_published)

    assert error in status["last_error"]
    assert status["items_ingested"] == 0
    assert status["consecutive_failures"] >= 1
    assert [p["id"] for p in await published(redis, settings)] == ["OK-1"]
    assert server.requests_to("/canary") == []  # the external entity was never fetched


async def test_a_cap_alert_that_expires_with_nothing_after_it_resolves(
    fast_settings, run_services, server, monkeypatch
):
    from services.ingest.sources import cap

    # The poller's clock, moved by hand: no race between the machine's speed and the expiry.
    clock = [datetime.now(UTC)]
    monkeypatch.setattr(cap, "utcnow", lambda: clock[0])
    alert = cap_alert(
        "HGX-9",
        sent=clock[0],
        expires=clock[0] + timedelta(hours=1),
        severity="Extreme",
        certainty="Observed",
        urgency="Immediate",
        headline="Ammonia release at the cold store",
    )
    server.route("/alert.xml", lambda r: Answer(200, alert.encode(), {"etag": '"v1"'}))
    settings = fast_settings()
    async with run_services(settings, "ingest", "classify"):
        await add_source(
            settings, name="hgx", kind="cap", url=server.url("/alert.xml"), interval_s=0.1
        )

        async def state() -> tuple[str, str] | None:
            found = await incidents(settings)
            return (found[0]["severity"], found[0]["status"]) if found else None

        await eventually(lambda: state(), timeout=15)
        opened = await state()
        polls = len(server.requests_to("/alert.xml"))
        await eventually(lambda: len(server.requests_to("/alert.xml")) >= polls + 3)
        still = await state()  # polls of an unchanged document, the alert still in force
        clock[0] += timedelta(hours=2)
        await eventually(lambda: _is(state(), ("no_danger", "resolved")), timeout=15)
        (incident,) = await incidents(settings)
        d = await detail(settings, incident["id"])

    assert opened == still == ("red_alert", "open")
    assert kinds(d) == ["opened", "resolved"]
    assert d["timeline"][1]["post"]["text"] == "Expired: Ammonia release at the cold store"
    assert "cap says status=Actual expires=past" in d["timeline"][1]["reason"]


async def _is(awaitable: Any, want: Any) -> bool:
    return await awaitable == want
