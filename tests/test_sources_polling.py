"""Polled sources end to end: local feed and Mastodon servers whose content changes, real Redis,
ingest (and classify) running in-process — one replica, a restarted one, or two at once."""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from tests.conftest import eventually
from tests.source_servers import (
    HARWOOD,
    ROSCOSMOS,
    WATCHER,
    Answer,
    FakeMastodon,
    FeedDocument,
    Item,
    SourceServer,
    account,
    atom,
    boost,
    rss2,
    status,
)

FAST = {
    "poll_tick_s": 0.05,
    "poll_backoff_s": 0.05,
    "poll_backoff_max_s": 5,
    "poll_timeout_s": 2,
}

ITEMS = [
    Item("1001", "Leak reported on Nauka", "<p>A <b>radiator</b> leak on MLM.</p>", minutes=1),
    Item("1002", "Crew asked to close shutters", "<p>Shutters closed.</p>", minutes=2),
    Item("1003", "Still assessing", "<p>MCC: still assessing with Moscow.</p>", minutes=3),
    Item("1004", "Not in any danger", "<p>Roscosmos: crew not in any danger.</p>", minutes=4),
    Item("1005", "Securing from red alert", "<p>Standing down.</p>", minutes=5),
]


@pytest.fixture
def server() -> Iterator[SourceServer]:
    s = SourceServer().start()
    yield s
    s.stop()


@pytest.fixture
def fast_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return lambda **kw: make_settings(**{**FAST, **kw})


@asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def add_source(settings: Settings, **spec: Any) -> dict[str, Any]:
    async with api(settings) as client:
        r = await client.post("/v1/sources", json=spec)
        assert r.status_code == 201, r.text
        return r.json()


async def source_status(settings: Settings, name: str) -> dict[str, Any]:
    async with api(settings) as client:
        r = await client.get(f"/v1/sources/{name}")
        assert r.status_code == 200, r.text
        return r.json()["status"]


async def published(redis, settings: Settings) -> list[dict[str, Any]]:
    entries = await redis.xrange(f"{settings.namespace}:{keys.POSTS}")
    return [json.loads(fields[b"data"]) for _, fields in entries]


async def published_count(redis, settings: Settings, n: int) -> bool:
    return len(await published(redis, settings)) >= n


def guid(item: Item) -> str:
    return f"https://news.example.org/?p={item.guid}"


def entry_id(item: Item) -> str:
    return f"tag:news.example.org,2023:{item.guid}"


# --- feeds -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("render", "validator", "request_header", "item_id"),
    [
        (rss2, "etag", "if-none-match", guid),
        (atom, "last-modified", "if-modified-since", entry_id),
    ],
    ids=["rss-etag", "atom-last-modified"],
)
async def test_feed_items_become_posts_exactly_once_across_polls_and_a_restart(
    fast_settings, redis, run_services, server, render, validator, request_header, item_id
):
    feed = FeedDocument(ITEMS[:2], render=render, validators=(validator,))
    url = server.route("/feed.xml", feed)
    settings = fast_settings()

    def conditional_304s() -> list:
        return [
            r
            for r in server.requests_to("/feed.xml")
            if r.answered == 304 and request_header in r.headers
        ]

    async with run_services(settings, "ingest"):
        await add_source(settings, name="news", kind="rss", url=url, interval_s=0.1)
        await eventually(lambda: published_count(redis, settings, 2))
        # Later polls are conditional, and the unchanged feed costs a 304.
        await eventually(lambda: len(conditional_304s()) >= 2)
        feed.add(ITEMS[2])
        await eventually(lambda: published_count(redis, settings, 3))
    # While ingest is down the feed changes again.
    feed.add(ITEMS[3], ITEMS[4])
    stopped_at = len(server.requests_to("/feed.xml"))
    async with run_services(settings, "ingest"):
        await eventually(lambda: published_count(redis, settings, 5))
        # A few more polls after the restart, to show they add nothing.
        await eventually(lambda: len(conditional_304s()) >= 5)
        status = await source_status(settings, "news")

    first_after_restart = server.requests_to("/feed.xml")[stopped_at]
    assert first_after_restart.headers.get(request_header), "the cursor survived the restart"
    posts = await published(redis, settings)
    assert sorted(p["id"] for p in posts) == sorted(item_id(i) for i in ITEMS)
    assert {p["source"] for p in posts} == {"news"}
    leak = next(p for p in posts if p["id"] == item_id(ITEMS[0]))
    assert leak["text"] == "Leak reported on Nauka\n\nA radiator leak on MLM."
    assert status["items_ingested"] == 5
    assert status["last_error"] is None
    assert status["consecutive_failures"] == 0


async def test_sources_file_is_applied_at_start_and_polled(
    fast_settings, redis, run_services, server, tmp_path
):
    feed = FeedDocument(ITEMS[:1])
    url = server.route("/feed.xml", feed)
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"sources:\n  - name: wire\n    kind: rss\n    url: {url}\n    interval_s: 0.1\n"
    )
    settings = fast_settings(sources_file=path)
    async with run_services(settings, "ingest"):
        await eventually(lambda: published_count(redis, settings, 1))
        async with api(settings) as client:
            (wire,) = (await client.get("/v1/sources")).json()
    assert (wire["name"], wire["origin"], wire["kind"]) == ("wire", "file", "rss")
    assert [p["id"] for p in await published(redis, settings)] == [guid(ITEMS[0])]

    # The file changes between starts: what it dropped goes, what the API added stays.
    other = server.route("/other.xml", FeedDocument(ITEMS[1:2]))
    path.write_text(f"sources:\n  - {{name: other, kind: rss, url: '{other}', interval_s: 0.1}}\n")
    async with run_services(settings, "ingest"):
        await add_source(settings, name="by-api", kind="rss", url=url, interval_s=60)
    async with run_services(settings, "ingest"):
        await eventually(lambda: published_count(redis, settings, 2))
        async with api(settings) as client:
            names = [(s["name"], s["origin"]) for s in (await client.get("/v1/sources")).json()]
    assert names == [("by-api", "api"), ("other", "file")]


# --- Mastodon ----------------------------------------------------------------------------------

ROOT = status("111200", HARWOOD, "<p>ISS: there&#39;s a leak coming from the radiator on MLM</p>")
REPLY = status(
    "111201", HARWOOD, "<p>ISS: still assessing with Moscow</p>", in_reply_to=ROOT, minutes=3
)
BOOST = boost("111202", WATCHER, ROOT, minutes=4)
# A reply from an account neither source follows, seen only through a boost.
NASA_REPLY = status(
    "111203",
    account("109999", "nasa"),
    "<p>NASA: the crew was never in danger; teams are assessing the leak</p>",
    in_reply_to=ROOT,
    minutes=5,
)
NASA_BOOST = boost("111204", WATCHER, NASA_REPLY, minutes=6)
LATE_REPLY = status(
    "111207",
    ROSCOSMOS,
    "<p>Roscosmos: the crew and the station are not in any danger</p>",
    in_reply_to=REPLY,
    minutes=9,
)
LATE_BOOST = boost("111208", WATCHER, REPLY, minutes=10)
UNRELATED = status("111209", WATCHER, "<p>Lovely aurora from the cupola tonight</p>", minutes=11)


async def test_a_mastodon_thread_is_one_incident_and_boosts_do_not_duplicate(
    fast_settings, redis, run_services, server
):
    mastodon = FakeMastodon(server)
    mastodon.lists["42"] = [HARWOOD["id"], WATCHER["id"], ROSCOSMOS["id"]]
    mastodon.post(ROOT, REPLY, BOOST, NASA_REPLY, NASA_BOOST)
    settings = fast_settings()
    async with run_services(settings, "ingest", "classify"):
        # Two sources on one server: an account and a list. Their posts share `source` (the
        # server), so a status both show is one post, and replies thread across them.
        common = {"kind": "mastodon", "url": server.url(), "interval_s": 0.1}
        await add_source(settings, name="harwood", account="@harwood", **common)
        await add_source(settings, name="iss-list", list="42", token=mastodon.token, **common)
        await eventually(lambda: published_count(redis, settings, 3))
        mastodon.post(LATE_REPLY, LATE_BOOST, UNRELATED)
        await eventually(lambda: published_count(redis, settings, 5))
        list_path = "/api/v1/timelines/list/42"
        await eventually(lambda: len(server.requests_to(list_path)) >= 6)  # polls go on
        async with api(settings) as client:

            async def thread_incident() -> list[dict[str, Any]]:
                incidents = (await client.get("/v1/incidents")).json()
                return incidents if incidents and incidents[0]["post_count"] == 4 else []

            await eventually(thread_incident, timeout=15)
            incidents = (await client.get("/v1/incidents")).json()
            sources = {s["name"]: s for s in (await client.get("/v1/sources")).json()}

    posts = await published(redis, settings)
    assert sorted(p["id"] for p in posts) == ["111200", "111201", "111203", "111207", "111209"]
    assert {p["source"] for p in posts} == {server.url().removeprefix("http://")}
    by_id = {p["id"]: p for p in posts}
    assert (by_id["111203"]["author"], by_id["111203"]["in_reply_to"]) == ("nasa", "111200")
    assert by_id["111207"]["in_reply_to"] == "111201"
    assert by_id["111207"]["author"] == "roscosmos_fan@mastodon.example"
    # The leak thread is one incident; the aurora post opened none.
    assert len(incidents) == 1
    assert incidents[0]["post_count"] == 4
    # Pages were asked for from the cursor, with the list's token.
    later = server.requests_to(list_path)[1:]
    assert all(r.query.get("since_id") for r in later)
    assert all(r.headers["authorization"] == f"Bearer {mastodon.token}" for r in later)
    assert max(int(r.query["since_id"]) for r in later) == 111209
    lookups = server.requests_to("/api/v1/accounts/lookup")
    assert [r.query["acct"] for r in lookups] == ["harwood"]  # kept in the cursor afterwards
    shown = json.dumps(sources)
    assert mastodon.token not in shown
    total = sources["harwood"]["status"]["items_ingested"]
    total += sources["iss-list"]["status"]["items_ingested"]
    assert total == 5


async def test_a_burst_longer_than_a_page_is_read_in_full(
    fast_settings, redis, run_services, server
):
    mastodon = FakeMastodon(server)
    mastodon.post(status("2000", HARWOOD, "<p>ISS: first</p>"))
    settings = fast_settings()
    async with run_services(settings, "ingest"):
        await add_source(
            settings, name="tag", kind="mastodon", url=server.url(), hashtag="iss", interval_s=0.2
        )
        await eventually(lambda: published_count(redis, settings, 1))
        burst = [status(str(2001 + n), WATCHER, f"<p>ISS update {n}</p>") for n in range(95)]
        mastodon.post(*burst)
        await eventually(lambda: published_count(redis, settings, 96))
    ids = [p["id"] for p in await published(redis, settings)]
    assert sorted(ids, key=int) == [str(n) for n in range(2000, 2096)]


# --- failures ----------------------------------------------------------------------------------


async def test_a_failing_feed_backs_off_reports_each_error_and_recovers(
    fast_settings, redis, run_services, server
):
    feed = FeedDocument(ITEMS[:2])
    url = server.route("/feed.xml", feed)
    server.script(
        "/feed.xml",
        [
            Answer(500, b"<html><body>Internal Server Error</body></html>"),
            Answer(200, b"<html><body>We'll be right back</body></html>"),
            Answer(429, b"Slow down", {"retry-after": "1"}),
        ],
    )
    settings = fast_settings()
    async with run_services(settings, "ingest"):
        await add_source(settings, name="flaky", kind="rss", url=url, interval_s=0.1)
        await eventually(lambda: published_count(redis, settings, 2), timeout=20)
        status = await source_status(settings, "flaky")

    errors = [e["error"] for e in reversed(status["recent_errors"])]
    assert errors[0] == "HTTP 500 Internal Server Error"
    assert errors[1].startswith("malformed feed: not RSS or Atom")
    assert errors[2] == "HTTP 429 Too Many Requests"
    assert len(errors) == 3
    assert status["last_error"] == "HTTP 429 Too Many Requests"  # kept, with its time
    assert status["last_success_at"] > status["last_error_at"]
    assert status["consecutive_failures"] == 0
    assert status["items_ingested"] == 2
    # The 429's Retry-After was honoured: the next request came no sooner.
    answers = server.requests_to("/feed.xml")
    assert [r.answered for r in answers[:4]] == [500, 200, 429, 200]
    assert answers[3].at - answers[2].at >= 0.9
    assert sorted(p["id"] for p in await published(redis, settings)) == sorted(
        guid(i) for i in ITEMS[:2]
    )


async def test_timeouts_and_invalid_json_keep_the_cursor(
    fast_settings, redis, run_services, server
):
    mastodon = FakeMastodon(server)
    mastodon.post(ROOT, REPLY)
    path = "/api/v1/timelines/tag/iss"
    settings = fast_settings(poll_timeout_s=0.5)
    async with run_services(settings, "ingest"):
        await add_source(
            settings, name="tag", kind="mastodon", url=server.url(), hashtag="iss", interval_s=0.1
        )
        await eventually(lambda: published_count(redis, settings, 2))
        server.script(
            path,
            [
                Answer(200, b"[]", {"content-type": "application/json"}, delay=1.5),
                Answer(200, b'[{"id": "1112', {"content-type": "application/json"}),
                Answer(502, b"<html>Bad Gateway</html>"),
            ],
        )
        before = len(server.requests_to(path))
        mastodon.post(LATE_REPLY)
        await eventually(lambda: published_count(redis, settings, 3), timeout=20)
        status = await source_status(settings, "tag")

    errors = [e["error"] for e in reversed(status["recent_errors"])]
    assert errors == ["timed out after 0.5s", errors[1], "HTTP 502 Bad Gateway"]
    assert errors[1].startswith("invalid JSON")
    # Every request after the failures still asked from the last good cursor.
    after = server.requests_to(path)[before:]
    assert {r.query.get("since_id") for r in after[:4]} == {"111201"}
    assert sorted(p["id"] for p in await published(redis, settings)) == [
        "111200",
        "111201",
        "111207",
    ]


# --- replicas ----------------------------------------------------------------------------------


async def test_two_replicas_never_poll_a_source_at_once_nor_ingest_twice(
    fast_settings, redis, run_services, server
):
    server.delay = 0.05  # every answer takes a while: polls would overlap if nothing stopped them
    feeds = {f"/feed-{n}.xml": FeedDocument(ITEMS[:1]) for n in range(4)}
    for path, feed in feeds.items():
        server.route(path, feed)
    mastodon = FakeMastodon(server)
    mastodon.post(ROOT)
    one, two = fast_settings(), fast_settings()
    async with run_services(one, "ingest"), run_services(two, "ingest"):
        for n, path in enumerate(feeds):
            await add_source(
                one, name=f"feed-{n}", kind="rss", url=server.url(path), interval_s=0.05
            )
        await add_source(
            two, name="tag", kind="mastodon", url=server.url(), hashtag="iss", interval_s=0.05
        )
        expected = 5
        for round_ in range(3):
            item = ITEMS[1 + round_]
            for feed in feeds.values():
                feed.add(item)
            mastodon.post(status(str(111300 + round_), WATCHER, f"<p>ISS update {round_}</p>"))
            expected += len(feeds) + 1
            await eventually(lambda n=expected: published_count(redis, one, n), timeout=20)
        await asyncio.sleep(0.5)  # more polls of unchanged sources
        async with api(one) as client:
            listed = (await client.get("/v1/sources")).json()

    posts = await published(redis, one)
    keys_ = Counter(f"{p['source']}:{p['id']}" for p in posts)
    assert len(posts) == expected == 20
    assert max(keys_.values()) == 1
    assert sum(s["status"]["items_ingested"] for s in listed) == expected
    # The lease held: no source ever had two requests in flight.
    polled = [*feeds, "/api/v1/timelines/tag/iss"]
    assert all(server.in_flight_max[p] == 1 for p in polled), server.in_flight_max
    assert all(len(server.requests_to(p)) >= 4 for p in polled)
