"""Local servers the source tests poll: RSS/Atom documents and a Mastodon-API server.

Everything they serve is realistic (the shapes real feeds and real Mastodon servers send), and it
changes while the tests run: items are added, statuses posted, answers scripted to fail.
"""

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from tests.sinks import serve, shut


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    at: float
    answered: int = 0


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[Request], Answer]


class SourceServer:
    """An HTTP server whose routes are Python functions; records every request.

    `script(path, answers)` makes a route give these answers first, then its handler's.
    `in_flight_max[path]` is the most requests a route ever served at once.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.patterns: list[tuple[re.Pattern[str], Callable[..., Answer]]] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.requests: list[Request] = []
        self.in_flight: dict[str, int] = {}
        self.in_flight_max: dict[str, int] = {}
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def route_pattern(self, pattern: str, handler: Callable[..., Answer]) -> None:
        self.patterns.append((re.compile(pattern), handler))

    def script(self, path: str, answers: list[Answer]) -> None:
        with self._lock:
            self.scripts[path] = list(answers)

    def url(self, path: str = "") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _answer(self, request: Request) -> Answer:
        with self._lock:
            scripted = self.scripts.get(request.path)
            if scripted:
                return scripted.pop(0)
        if handler := self.routes.get(request.path):
            return handler(request)
        for pattern, fn in self.patterns:
            if m := pattern.fullmatch(request.path):
                return fn(request, *m.groups())
        return Answer(404, b'{"error":"Record not found"}', {"content-type": "application/json"})

    def start(self) -> "SourceServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(parts.path, query, headers, time.time())
                with server._lock:
                    server.requests.append(request)
                    now = server.in_flight.get(parts.path, 0) + 1
                    server.in_flight[parts.path] = now
                    server.in_flight_max[parts.path] = max(
                        now, server.in_flight_max.get(parts.path, 0)
                    )
                try:
                    answer = server._answer(request)
                    if answer.delay or server.delay:
                        time.sleep(answer.delay or server.delay)
                    request.answered = answer.status
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server._lock:
                        server.in_flight[parts.path] -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut(self._server)


# --- feeds -------------------------------------------------------------------------------------

T0 = datetime(2023, 10, 9, 20, 0, tzinfo=UTC)


@dataclass
class Item:
    guid: str
    title: str
    html: str
    author: str = "Spaceflight Now"
    minutes: int = 0  # after T0

    @property
    def link(self) -> str:
        return f"https://news.example.org/2023/10/09/{self.guid}/"

    @property
    def published(self) -> datetime:
        return T0 + timedelta(minutes=self.minutes)


def rss2(items: list[Item], title: str = "Spaceflight Now") -> bytes:
    """An RSS 2.0 document as WordPress writes one: guid, dc:creator, HTML in CDATA."""
    entries = "".join(
        f"""
    <item>
      <title>{escape(i.title)}</title>
      <link>{i.link}</link>
      <dc:creator><![CDATA[{i.author}]]></dc:creator>
      <pubDate>{format_datetime(i.published, usegmt=True)}</pubDate>
      <category><![CDATA[International Space Station]]></category>
      <guid isPermaLink="false">https://news.example.org/?p={i.guid}</guid>
      <description><![CDATA[{i.html}]]></description>
    </item>"""
        for i in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>{escape(title)}</title>
    <atom:link href="https://news.example.org/feed/" rel="self" type="application/rss+xml" />
    <link>https://news.example.org</link>
    <description>Launch news and space station updates</description>
    <lastBuildDate>Mon, 09 Oct 2023 21:00:00 +0000</lastBuildDate>
    <language>en-US</language>
    <sy:updatePeriod xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">hourly</sy:updatePeriod>
    <generator>https://wordpress.org/?v=6.3.1</generator>{entries}
  </channel>
</rss>
""".encode()


def atom(items: list[Item], title: str = "ISS updates") -> bytes:
    """An Atom 1.0 document: tag: ids, HTML content escaped in the element."""
    entries = "".join(
        f"""
  <entry>
    <title type="text">{escape(i.title)}</title>
    <link rel="alternate" type="text/html" href="{i.link}"/>
    <id>tag:news.example.org,2023:{i.guid}</id>
    <published>{i.published.isoformat()}</published>
    <updated>{i.published.isoformat()}</updated>
    <author><name>{escape(i.author)}</name></author>
    <summary type="html">{escape(i.html)}</summary>
  </entry>"""
        for i in items
    )
    updated = max((i.published for i in items), default=T0).isoformat()
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>{escape(title)}</title>
  <subtitle>Station status, as it happens</subtitle>
  <link rel="self" href="https://news.example.org/atom.xml"/>
  <link rel="alternate" href="https://news.example.org/"/>
  <id>tag:news.example.org,2023:feed</id>
  <updated>{updated}</updated>
  <generator uri="https://gohugo.io/">Hugo</generator>{entries}
</feed>
""".encode()


class FeedDocument:
    """A feed whose items change; answers conditional GETs like a careful web server.

    `validators` picks what it sends and honours: "etag", "last-modified", or both.
    """

    def __init__(
        self,
        items: list[Item],
        render: Callable[[list[Item]], bytes] = rss2,
        validators: tuple[str, ...] = ("etag", "last-modified"),
    ) -> None:
        self.items = list(items)
        self.render = render
        self.validators = validators
        self._lock = threading.Lock()
        self._touch()

    def _touch(self) -> None:
        self.body = self.render(self.items)
        self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'
        # Whole seconds, as HTTP dates are; bumped so every change is a new date.
        last = getattr(self, "modified", datetime(2023, 10, 9, 21, 0, tzinfo=UTC))
        self.modified = last + timedelta(seconds=1)

    def add(self, *items: Item) -> None:
        with self._lock:
            self.items = list(items) + self.items  # newest first, as feeds list them
            self._touch()

    def __call__(self, request: Request) -> Answer:
        with self._lock:
            headers = {"content-type": "application/rss+xml; charset=UTF-8"}
            if self.render is atom:
                headers["content-type"] = "application/atom+xml"
            if "etag" in self.validators:
                headers["etag"] = self.etag
            if "last-modified" in self.validators:
                headers["last-modified"] = format_datetime(self.modified, usegmt=True)
            if self._fresh(request):
                return Answer(304, b"", {k: v for k, v in headers.items() if k != "content-type"})
            return Answer(200, self.body, headers)

    def _fresh(self, request: Request) -> bool:
        tag = request.headers.get("if-none-match")
        if "etag" in self.validators and tag is not None:
            return tag == self.etag
        since = request.headers.get("if-modified-since")
        if "last-modified" in self.validators and since is not None:
            return since == format_datetime(self.modified, usegmt=True)
        return False


# --- Mastodon ----------------------------------------------------------------------------------


def account(id_: str, username: str, domain: str | None = None) -> dict[str, Any]:
    acct = f"{username}@{domain}" if domain else username
    base = f"https://{domain or 'social.example'}"
    return {
        "id": id_,
        "username": username,
        "acct": acct,
        "display_name": username.title(),
        "locked": False,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": "2022-11-05T00:00:00.000Z",
        "note": "<p>Space news, relayed.</p>",
        "url": f"{base}/@{username}",
        "uri": f"{base}/users/{username}",
        "avatar": f"{base}/avatars/{id_}.png",
        "avatar_static": f"{base}/avatars/{id_}.png",
        "header": f"{base}/headers/missing.png",
        "header_static": f"{base}/headers/missing.png",
        "followers_count": 1520,
        "following_count": 210,
        "statuses_count": 8834,
        "last_status_at": "2023-10-09",
        "emojis": [],
        "fields": [],
    }


HARWOOD = account("109312", "harwood")
WATCHER = account("109455", "watcher")
ROSCOSMOS = account("110021", "roscosmos_fan", "mastodon.example")


def status(
    id_: str,
    who: dict[str, Any],
    html: str,
    *,
    in_reply_to: dict[str, Any] | None = None,
    reblog: dict[str, Any] | None = None,
    tags: tuple[str, ...] = ("iss",),
    minutes: int = 0,
    spoiler: str = "",
) -> dict[str, Any]:
    """A status as Mastodon 4.x's REST API returns it."""
    created = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    url = f"https://social.example/@{who['username']}/{id_}"
    return {
        "id": id_,
        "created_at": created,
        "in_reply_to_id": in_reply_to["id"] if in_reply_to else None,
        "in_reply_to_account_id": in_reply_to["account"]["id"] if in_reply_to else None,
        "sensitive": bool(spoiler),
        "spoiler_text": spoiler,
        "visibility": "public",
        "language": "en",
        "uri": f"https://social.example/users/{who['username']}/statuses/{id_}",
        "url": None if reblog else url,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 3,
        "edited_at": None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "content": "" if reblog else html,
        "filtered": [],
        "reblog": reblog,
        "application": {"name": "Web", "website": None},
        "account": who,
        "media_attachments": [],
        "mentions": (
            [
                {
                    "id": in_reply_to["account"]["id"],
                    "username": in_reply_to["account"]["username"],
                    "url": in_reply_to["account"]["url"],
                    "acct": in_reply_to["account"]["acct"],
                }
            ]
            if in_reply_to
            else []
        ),
        "tags": [
            {"name": t, "url": f"https://social.example/tags/{t}"} for t in ([] if reblog else tags)
        ],
        "emojis": [],
        "card": None,
        "poll": None,
    }


def boost(id_: str, who: dict[str, Any], original: dict[str, Any], minutes: int = 0) -> dict:
    return status(id_, who, "", reblog=original, minutes=minutes)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status,
        json.dumps(data).encode(),
        {"content-type": "application/json; charset=utf-8", **(headers or {})},
    )


class FakeMastodon:
    """The Mastodon REST API's timelines, served from a list of statuses that grows.

    Paging follows Mastodon: newest first; `max_id`/`since_id` give the newest page below/above,
    `min_id` the page right after it; at most `limit` (≤ 40). Hashtag timelines leave out boosts;
    account and list timelines include them. Lists need the access token.
    """

    def __init__(self, server: SourceServer, token: str = "list-reader-token") -> None:
        self.statuses: list[dict[str, Any]] = []
        self.lists: dict[str, list[str]] = {}  # list id -> member account ids
        self.accounts = {a["acct"]: a for a in (HARWOOD, WATCHER, ROSCOSMOS)}
        self.token = token
        self._lock = threading.Lock()
        server.route("/api/v1/accounts/lookup", self.lookup)
        server.route_pattern(r"/api/v1/accounts/(\w+)/statuses", self.account_statuses)
        server.route_pattern(r"/api/v1/timelines/tag/(\w+)", self.tag_timeline)
        server.route_pattern(r"/api/v1/timelines/list/(\w+)", self.list_timeline)

    def post(self, *statuses: dict[str, Any]) -> None:
        with self._lock:
            self.statuses += statuses

    def lookup(self, request: Request) -> Answer:
        found = self.accounts.get(request.query.get("acct", "").lstrip("@"))
        return _json(found) if found else _json({"error": "Record not found"}, 404)

    def account_statuses(self, request: Request, account_id: str) -> Answer:
        return self._page(request, lambda s: s["account"]["id"] == account_id)

    def tag_timeline(self, request: Request, tag: str) -> Answer:
        return self._page(
            request, lambda s: s["reblog"] is None and tag in {t["name"] for t in s["tags"]}
        )

    def list_timeline(self, request: Request, list_id: str) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _json({"error": "The access token is invalid"}, 401)
        members = self.lists.get(list_id)
        if members is None:
            return _json({"error": "Record not found"}, 404)
        return self._page(request, lambda s: s["account"]["id"] in members)

    def _page(self, request: Request, keep: Callable[[dict[str, Any]], bool]) -> Answer:
        q = request.query
        limit = min(int(q.get("limit", 20)), 40)
        with self._lock:
            chosen = sorted((s for s in self.statuses if keep(s)), key=lambda s: int(s["id"]))
        if "max_id" in q:
            chosen = [s for s in chosen if int(s["id"]) < int(q["max_id"])]
        if "min_id" in q:
            page = [s for s in chosen if int(s["id"]) > int(q["min_id"])][:limit]
        else:
            if "since_id" in q:
                chosen = [s for s in chosen if int(s["id"]) > int(q["since_id"])]
            page = chosen[-limit:]
        return _json(list(reversed(page)))
