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


# --- status pages (Atlassian Statuspage's public API) --------------------------------------------

STATUS_T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def _iso(minutes: float) -> str:
    return (STATUS_T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class StatusUpdate:
    id: str
    status: str  # investigating, identified, monitoring, resolved, postmortem
    body: str
    minutes: float
    components: dict[str, str] = field(default_factory=dict)  # name -> its new status


class StatusPage:
    """`/api/v2/incidents.json` of a Statuspage-hosted page (githubstatus.com's shape): incidents
    newest first, each with its updates newest first, the components each update changed (old
    and new status) and the components' current status. Updates are added while tests run; it
    answers conditional GETs by ETag."""

    def __init__(self, name: str = "GitHub", page_id: str = "kctbh9vrtdwd") -> None:
        self.page = {
            "id": page_id,
            "name": name,
            "url": "https://www.githubstatus.com",
            "time_zone": "Etc/UTC",
            "updated_at": _iso(0),
        }
        self.incidents: list[dict[str, Any]] = []  # newest first
        self.components: dict[str, str] = {}  # name -> status now
        self._lock = threading.Lock()

    def update(
        self, incident_id: str, name: str, impact: str, update: StatusUpdate
    ) -> dict[str, Any]:
        with self._lock:
            incident = next((i for i in self.incidents if i["id"] == incident_id), None)
            if incident is None:
                incident = {
                    "id": incident_id,
                    "name": name,
                    "status": update.status,
                    "created_at": _iso(update.minutes),
                    "updated_at": _iso(update.minutes),
                    "monitoring_at": None,
                    "resolved_at": None,
                    "impact": impact,
                    "shortlink": f"https://stspg.io/{incident_id[:6]}",
                    "started_at": _iso(update.minutes),
                    "page_id": self.page["id"],
                    "incident_updates": [],
                    "components": [],
                    "reminder_intervals": None,
                }
                self.incidents.insert(0, incident)
            affected = []
            for component, new in update.components.items():
                old = self.components.get(component, "operational")
                self.components[component] = new
                affected.append(
                    {
                        "code": hashlib.sha1(component.encode()).hexdigest()[:12],
                        "name": component,
                        "old_status": old,
                        "new_status": new,
                    }
                )
            incident["incident_updates"].insert(
                0,
                {
                    "id": update.id,
                    "status": update.status,
                    "body": update.body,
                    "incident_id": incident_id,
                    "created_at": _iso(update.minutes),
                    "updated_at": _iso(update.minutes),
                    "display_at": _iso(update.minutes),
                    "affected_components": affected or None,
                    "deliver_notifications": True,
                    "custom_tweet": None,
                    "tweet_id": None,
                },
            )
            incident.update(status=update.status, impact=impact, updated_at=_iso(update.minutes))
            if update.status == "monitoring":
                incident["monitoring_at"] = _iso(update.minutes)
            if update.status == "resolved":
                incident["resolved_at"] = _iso(update.minutes)
            incident["components"] = [
                {
                    "id": hashlib.sha1(c.encode()).hexdigest()[:12],
                    "name": c,
                    "status": self.components[c],
                    "created_at": "2017-01-31T20:01:46.621Z",
                    "updated_at": _iso(update.minutes),
                    "position": n + 1,
                    "description": None,
                    "showcase": False,
                    "start_date": None,
                    "group_id": None,
                    "page_id": self.page["id"],
                    "group": False,
                    "only_show_if_degraded": False,
                }
                for n, c in enumerate(sorted(self.components))
            ]
            self.page["updated_at"] = _iso(update.minutes)
            return incident

    def body(self) -> bytes:
        with self._lock:
            return json.dumps({"page": self.page, "incidents": self.incidents}).encode()

    def __call__(self, request: Request) -> Answer:
        body = self.body()
        etag = 'W/"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        headers = {"etag": etag, "cache-control": "max-age=0, private, must-revalidate"}
        if request.headers.get("if-none-match") == etag:
            return Answer(304, b"", headers)
        return Answer(200, body, {"content-type": "application/json; charset=utf-8", **headers})


# --- CAP 1.2 -------------------------------------------------------------------------------------
# The four example messages of the OASIS CAP 1.2 specification (Appendix A), as it prints them.

CAP_HSAS = """<?xml version = "1.0" encoding = "UTF-8"?>
<alert xmlns = "urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>43b080713727</identifier>
  <sender>hsas@dhs.gov</sender>
  <sent>2003-04-02T14:39:01-05:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <category>Security</category>
    <event>Homeland Security Advisory System Update</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <senderName>U.S. Government, Department of Homeland Security</senderName>
    <headline>Homeland Security Sets Code ORANGE</headline>
    <description>The Department of Homeland Security has elevated the Homeland Security Advisory System threat level to ORANGE / High in response to intelligence which may indicate a heightened threat of terrorism.</description>
    <instruction> A High Condition is declared when there is a high risk of terrorist attacks. In addition to the Protective Measures taken in the previous Threat Conditions, Federal departments and agencies should consider agency-specific Protective Measures in accordance with their existing plans.</instruction>
    <web>http://www.dhs.gov/dhspublic/display?theme=29</web>
    <parameter>
      <valueName>HSAS</valueName>
      <value>ORANGE</value>
    </parameter>
    <resource>
      <resourceDesc>Image file (GIF)</resourceDesc>
      <mimeType>image/gif</mimeType>
      <uri>http://www.dhs.gov/dhspublic/getAdvisoryImage</uri>
    </resource>
    <area>
      <areaDesc>U.S. nationwide and interests worldwide</areaDesc>
    </area>
  </info>
</alert>
"""  # noqa: E501

CAP_THUNDERSTORM = """<?xml version = "1.0" encoding = "UTF-8"?>
<alert xmlns = "urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>KSTO1055887203</identifier>
  <sender>KSTO@NWS.NOAA.GOV</sender>
  <sent>2003-06-17T14:57:00-07:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <category>Met</category>
    <event>SEVERE THUNDERSTORM</event>
    <responseType>Shelter</responseType>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <eventCode>
      <valueName>SAME</valueName>
      <value>SVR</value>
    </eventCode>
    <expires>2003-06-17T16:00:00-07:00</expires>
    <senderName>NATIONAL WEATHER SERVICE SACRAMENTO CA</senderName>
    <headline>SEVERE THUNDERSTORM WARNING</headline>
    <description> AT 254 PM PDT...NATIONAL WEATHER SERVICE DOPPLER RADAR INDICATED A SEVERE THUNDERSTORM OVER SOUTH CENTRAL ALPINE COUNTY...OR ABOUT 18 MILES SOUTHEAST OF KIRKWOOD...MOVING SOUTHWEST AT 5 MPH. HAIL...INTENSE RAIN AND STRONG DAMAGING WINDS ARE LIKELY WITH THIS STORM.</description>
    <instruction>TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES.</instruction>
    <contact>BARUFFALDI/JUSKIE</contact>
    <area>
      <areaDesc>EXTREME NORTH CENTRAL TUOLUMNE COUNTY IN CALIFORNIA, EXTREME NORTHEASTERN CALAVERAS COUNTY IN CALIFORNIA, SOUTHWESTERN ALPINE COUNTY IN CALIFORNIA</areaDesc>
      <polygon>38.47,-120.14 38.34,-119.95 38.52,-119.74 38.62,-119.89 38.47,-120.14</polygon>
      <geocode>
        <valueName>SAME</valueName>
        <value>006109</value>
      </geocode>
      <geocode>
        <valueName>SAME</valueName>
        <value>006009</value>
      </geocode>
      <geocode>
        <valueName>SAME</valueName>
        <value>006003</value>
      </geocode>
    </area>
  </info>
</alert>
"""  # noqa: E501

CAP_EARTHQUAKE = """<?xml version = "1.0" encoding = "UTF-8"?>
<alert xmlns = "urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>TRI13970876.2</identifier>
  <sender>trinet@caltech.edu</sender>
  <sent>2003-06-11T20:56:00-07:00</sent>
  <status>Actual</status>
  <msgType>Update</msgType>
  <scope>Public</scope>
  <references>trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00</references>
  <info>
    <category>Geo</category>
    <event>Earthquake</event>
    <urgency>Past</urgency>
    <severity>Minor</severity>
    <certainty>Observed</certainty>
    <senderName>Southern California Seismic Network (TriNet) operated by Caltech and USGS</senderName>
    <headline>EQ 3.4 Imperial County CA</headline>
    <description>A minor earthquake measuring 3.4 on the Richter scale occurred near Brawley, California at 8:30 PM Pacific Daylight Time on Wednesday, June 11, 2003. (This event has now been reviewed by a seismologist)</description>
    <web>http://www.trinet.org/scsn/scsn.html</web>
    <parameter>
      <valueName>EventID</valueName>
      <value>13970876</value>
    </parameter>
    <parameter>
      <valueName>Version</valueName>
      <value>1</value>
    </parameter>
    <parameter>
      <valueName>Magnitude</valueName>
      <value>3.4 Ml</value>
    </parameter>
    <parameter>
      <valueName>Depth</valueName>
      <value>11.8 mi.</value>
    </parameter>
    <parameter>
      <valueName>Quality</valueName>
      <value>Excellent</value>
    </parameter>
    <area>
      <areaDesc>1 mi. WSW of Brawley, CA; 11 mi. N of El Centro, CA; 30 mi. E of OCOTILLO (quarry); 1 mi. N of the Imperial Fault</areaDesc>
      <circle>32.9525,-115.5527 0</circle>
    </area>
  </info>
</alert>
"""  # noqa: E501

CAP_AMBER = """<?xml version = "1.0" encoding = "UTF-8"?>
<alert xmlns = "urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>KAR0-0306112239-SW</identifier>
  <sender>KARO@CLETS.DOJ.CA.GOV</sender>
  <sent>2003-06-11T22:39:00-07:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <source>SW</source>
  <scope>Public</scope>
  <info>
    <language>en-US</language>
    <category>Rescue</category>
    <event>Child Abduction</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <eventCode>
      <valueName>SAME</valueName>
      <value>CAE</value>
    </eventCode>
    <senderName>Los Angeles Police Dept - LAPD</senderName>
    <headline>Amber Alert in Los Angeles County</headline>
    <description>DATE/TIME: 06/11/03, 1915 HRS.  VICTIM(S): KHAYRI DOE JR. M/B BLK/BRO 3'0", 40 LBS. LIGHT COMPLEXION.  DOB 06/24/01. WEARING RED SHORTS, WHITE T-SHIRT, W/BLUE COLLAR.  LOCATION: 5721 DOE ST., LOS ANGELES, CA.  SUSPECT(S): KHAYRI DOE SR. DOB 04/18/71 M/B, BLK HAIR, BRO EYE. VEHICLE: 81' BUICK 2-DR, BLUE (4XXX000).</description>
    <contact>DET. SMITH, 77TH DIV, LOS ANGELES POLICE DEPT-LAPD AT 213 485-2389</contact>
    <area>
      <areaDesc>Los Angeles County</areaDesc>
      <geocode>
        <valueName>SAME</valueName>
        <value>006037</value>
      </geocode>
    </area>
  </info>
  <info>
    <language>es-US</language>
    <category>Rescue</category>
    <event>Abducción de Niño</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <eventCode>
      <valueName>SAME</valueName>
      <value>CAE</value>
    </eventCode>
    <senderName>Departamento de Policía de Los Ángeles - LAPD</senderName>
    <headline>Alerta Amber en el condado de Los Ángeles</headline>
    <description>DÍA/HORA: 06/11/03, 1915 HORAS. VÍCTIMA(S): KHAYRI DOE JR. M/N PELO NEGRO/OJOS CAFÉ 3'0", 40 LIBRAS. TEZ CLARA. DOB 06/24/01. LLEVA PANTALONES CORTOS ROJOS, CAMISETA BLANCA, CON CUELLO AZUL. LOCALIZACIÓN: 5721 DOE ST., LOS ÁNGELES, CA. SOSPECHOSO(S): KHAYRI DOE SR. DOB 04/18/71 M/N, PELO NEGRO, OJOS CAFÉ. VEHÍCULO: 81' BUICK 2-PUERTAS, AZUL (4XXX000)</description>
    <contact>DET. SMITH, 77TH DIV, LOS ANGELES POLICE DEPT-LAPD AT 213 485-2389</contact>
    <area>
      <areaDesc>condado de Los Ángeles</areaDesc>
      <geocode>
        <valueName>SAME</valueName>
        <value>006037</value>
      </geocode>
    </area>
  </info>
</alert>
"""  # noqa: E501

CAP_EXAMPLES = {
    "hsas": CAP_HSAS,
    "thunderstorm": CAP_THUNDERSTORM,
    "earthquake": CAP_EARTHQUAKE,
    "amber": CAP_AMBER,
}


def cap_alert(
    identifier: str,
    *,
    sent: datetime,
    msg_type: str = "Alert",
    references: list[tuple[str, datetime]] = (),  # type: ignore[assignment]
    severity: str = "Severe",
    certainty: str = "Likely",
    urgency: str = "Expected",
    expires: datetime | None = None,
    headline: str = "",
    description: str = "",
    areas: list[tuple[str, str]] = (),  # type: ignore[assignment]  (areaDesc, FIPS6 code)
    event: str = "Hazardous Materials Warning",
    sender: str = "w-nws.webmaster@noaa.gov",
    response: str = "Shelter",
) -> str:
    """A CAP 1.2 message as a warning authority writes one (Alert, Update or Cancel)."""
    refs = " ".join(f"{sender},{ident},{when.isoformat()}" for ident, when in references)
    area_xml = "".join(
        f"""
      <area>
        <areaDesc>{escape(desc)}</areaDesc>
        <geocode><valueName>FIPS6</valueName><value>{code}</value></geocode>
      </area>"""
        for desc, code in areas
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>{sent.isoformat()}</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{f"{chr(10)}  <references>{refs}</references>" if refs else ""}
  <info>
    <language>en-US</language>
    <category>Safety</category>
    <category>CBRNE</category>
    <event>{escape(event)}</event>
    <responseType>{response}</responseType>
    <urgency>{urgency}</urgency>
    <severity>{severity}</severity>
    <certainty>{certainty}</certainty>
    <effective>{sent.isoformat()}</effective>{
        f"{chr(10)}    <expires>{expires.isoformat()}</expires>" if expires else ""
    }
    <senderName>NWS Houston/Galveston TX</senderName>
    <headline>{escape(headline)}</headline>
    <description>{escape(description)}</description>
    <instruction>Stay indoors, close windows and doors, turn off ventilation.</instruction>{
        area_xml
    }
  </info>
</alert>
"""


def cap_feed(entries: list[tuple[str, str, datetime]], base: str) -> bytes:
    """An Atom feed of CAP alerts as MeteoAlarm publishes them: each entry links to its CAP
    document (`application/cap+xml`). `entries`: (identifier, title, updated)."""
    items = "".join(
        f"""
  <entry>
    <id>{base}/cap/{ident}.xml</id>
    <title>{escape(title)}</title>
    <updated>{when.isoformat()}</updated>
    <link rel="alternate" type="application/cap+xml" href="{base}/cap/{ident}.xml"/>
    <author><name>NWS Houston/Galveston TX</name></author>
    <summary>{escape(title)}</summary>
  </entry>"""
        for ident, title, when in entries
    )
    newest = max((w for _, _, w in entries), default=STATUS_T0).isoformat()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>{base}/cap/feed.atom</id>
  <title>Public warnings</title>
  <updated>{newest}</updated>
  <link rel="self" href="{base}/cap/feed.atom"/>{items}
</feed>
""".encode()


# Documents a CAP source must refuse without harm.
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>lolz</identifier><sender>x</sender><sent>2026-11-30T14:00:00Z</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><event>&lol9;</event><urgency>Immediate</urgency><severity>Extreme</severity>
  <certainty>Observed</certainty><headline>&lol9;</headline></info>
</alert>
"""


def external_entity(url: str) -> bytes:
    """A message whose headline is an external entity: a parser that resolved it would read a
    local file, or call `url` (the test counts the calls)."""
    return f"""<?xml version="1.0"?>
<!DOCTYPE alert [
 <!ENTITY secret SYSTEM "file:///etc/passwd">
 <!ENTITY remote SYSTEM "{url}">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>xxe</identifier><sender>x</sender><sent>2026-11-30T14:00:00Z</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><event>Test</event><urgency>Immediate</urgency><severity>Extreme</severity>
  <certainty>Observed</certainty><headline>&secret;&remote;</headline></info>
</alert>
""".encode()


def huge_cap(megabytes: int = 50) -> bytes:
    """A well-formed CAP message of `megabytes` MB (a description that never ends)."""
    head = b"""<?xml version="1.0"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>huge</identifier>
<sender>x</sender><sent>2026-11-30T14:00:00Z</sent><status>Actual</status><msgType>Alert</msgType>
<scope>Public</scope><info><event>Flood</event><urgency>Immediate</urgency>
<severity>Extreme</severity><certainty>Observed</certainty><description>"""
    tail = b"</description></info></alert>"
    return head + b"water " * (megabytes * 1_000_000 // 6) + tail


def status_history(
    incidents: list[tuple[str, str, datetime, list[tuple[str, str]]]], page: str = "GitHub"
) -> bytes:
    """A Statuspage `history.atom`: an entry per incident (id, name, when, updates oldest
    first as (status, body)), its content the updates newest first, one `<p>` each."""

    def content(when: datetime, updates: list[tuple[str, str]]) -> str:
        paragraphs = [
            f"<p><small>{(when + timedelta(minutes=10 * n)).strftime('%b')} <var data-var='date'>"
            f"{(when + timedelta(minutes=10 * n)).day}</var>, <var data-var='time'>"
            f"{(when + timedelta(minutes=10 * n)).strftime('%H:%M')}</var> UTC</small><br>"
            f"<strong>{status}</strong> - {escape(body)}</p>"
            for n, (status, body) in enumerate(updates)
        ]
        return "".join(reversed(paragraphs))

    entries = "".join(
        f"""
  <entry>
    <id>tag:www.githubstatus.com,2005:Incident/{ident}</id>
    <published>{when.isoformat()}</published>
    <updated>{(when + timedelta(minutes=10 * len(updates))).isoformat()}</updated>
    <link rel="alternate" type="text/html" href="https://www.githubstatus.com/incidents/{ident}"/>
    <title>{escape(name)}</title>
    <content type="html">{escape(content(when, updates))}</content>
  </entry>"""
        for ident, name, when, updates in incidents
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xml:lang="en-US" xmlns="http://www.w3.org/2005/Atom">
  <id>tag:www.githubstatus.com,2005:/history</id>
  <link rel="alternate" type="text/html" href="https://www.githubstatus.com"/>
  <link rel="self" type="application/atom+xml" href="https://www.githubstatus.com/history.atom"/>
  <title>{page} Status - Incident History</title>
  <updated>{STATUS_T0.isoformat()}</updated>
  <author><name>{page}</name></author>{entries}
</feed>
""".encode()
