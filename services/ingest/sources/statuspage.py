"""Status pages (Atlassian Statuspage's public API, `/api/v2/incidents.json`): each incident is a
thread, each of its updates a post.

A post's text is the incident's name and the update; its hint (`statuspage`: the update's
`status`, the incident's `impact`) is mapped to a severity by the rules file; its labels carry
the components the update names and their new status (`component:Actions` =
`degraded_performance`), so an update about some components does not clear an incident about
others (shared/subjects.py).

A page's `/history.atom` (or `/history.rss`) is read too, when the source's URL names it: each
entry is an incident, each `<p>` of its content an update ("<strong>Monitoring</strong> - A fix
has been implemented…"). That feed says no impact and names no component, so there the hint is
only the status that ends or eases things (`resolved`, `postmortem`, `completed`: resolved;
`monitoring`: an all-clear candidate) and the text decides the severity; the components are
read from the incident's name ("Incident with Actions and Pages", the page's own name dropped), and
their statuses from the sentences Statuspage writes itself ("Pages is operating normally."), so
that update still does not clear an incident about Actions too.

`parse_incidents` and `parse_history` are pure. `read` makes a conditional GET (ETag,
Last-Modified) and publishes the updates it has not seen, oldest first. The first read of a
page takes incidents that were already over as history, not news: it remembers them without
publishing them.
"""

import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from pydantic import ValidationError

from services.ingest.sources.base import Cursor, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.safexml import MAX_XML_BYTES, child, children, local, safe_xml, text
from services.ingest.sources.spec import Source
from services.ingest.sources.text import clip, tidy
from shared.labels import clean
from shared.models import Post, SourceHint
from shared.subjects import AFFECTED
from shared.subjects import label as subject_label

API_PATH = "/api/v2/incidents.json"
OVER = frozenset({"resolved", "postmortem", "completed"})
# What a history feed's status says by itself: the rest (investigating, identified, update…)
# comes with no impact, and the text decides.
FEED_HINTS = frozenset({"resolved", "postmortem", "completed", "monitoring"})
_SUBJECTS = re.compile(
    r"^(?:incident|disruption|outage|degraded performance|degradation|issues?|problems?)"
    r"\s+(?:with|for|in|on|of|affecting)\s+(?P<names>.+)$",
    re.I,
)
_VAGUE = ("some ", "multiple ", "several ", "all ", "various ", "certain ")
# The sentences Statuspage writes itself when a component changes ("Pages is operating
# normally.", "Actions is experiencing degraded performance."): a history feed's only word on
# components.
_COMPONENT_SAYS = re.compile(
    r"(?:^|(?<=[.!?]\s))(?P<name>[A-Z][\w .&/+-]{0,80}?) (?:is|are) (?:still |now |currently )?"
    r"(?P<what>operating normally|experiencing degraded performance"
    r"|experiencing (?:a )?partial outage|experiencing (?:a )?major outage|under maintenance)"
)
_COMPONENT_STATUS = {
    "operating normally": "operational",
    "experiencing degraded performance": "degraded_performance",
    "experiencing partial outage": "partial_outage",
    "experiencing a partial outage": "partial_outage",
    "experiencing major outage": "major_outage",
    "experiencing a major outage": "major_outage",
    "under maintenance": "under_maintenance",
}


@dataclass
class Incidents:
    posts: list[Post]  # oldest first
    ids: list[str]  # every update's id in the document
    history: set[str] = field(default_factory=set)  # updates of incidents already over
    warnings: list[str] = field(default_factory=list)


def incidents_url(url: str) -> str:
    """A page's address (https://www.githubstatus.com) or its incidents.json itself."""
    if urlsplit(url).path.endswith(".json"):
        return url
    return url.rstrip("/") + API_PATH


def parse_incidents(body: bytes, source: str) -> Incidents:
    """Posts from an incidents.json document. Raises `SourceError` when it is not one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"invalid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("incidents"), list):
        raise SourceError("not a status page's incidents.json (no `incidents` list)")
    page = data.get("page") if isinstance(data.get("page"), dict) else {}
    out = Incidents([], [])
    for n, incident in enumerate(data["incidents"]):
        if not isinstance(incident, dict) or not incident.get("id"):
            out.warnings.append(f"incident {n + 1}: no id, skipped")
            continue
        for update in incident.get("incident_updates") or []:
            if not isinstance(update, dict) or not update.get("id"):
                out.warnings.append(f"incident {incident['id']}: an update without id, skipped")
                continue
            update_id = str(update["id"])
            out.ids.append(update_id)
            if str(incident.get("status", "")).lower() in OVER:
                out.history.add(update_id)
            try:
                post = update_to_post(update, incident, page, source)
            except (ValidationError, TypeError, ValueError) as e:
                out.warnings.append(f"update {update_id}: {_first_error(e)}")
                continue
            if post is not None:
                out.posts.append(post)
    out.posts.sort(key=lambda p: (p.published_at.timestamp() if p.published_at else 0.0, p.id))
    return out


def update_to_post(
    update: Mapping[str, Any], incident: Mapping[str, Any], page: Mapping[str, Any], source: str
) -> Post | None:
    name = tidy(str(incident.get("name") or ""))
    body = tidy(str(update.get("body") or ""))
    status = str(update.get("status") or incident.get("status") or "").lower()
    if not (name or body):
        return None
    said = f"{status.replace('_', ' ').capitalize()}: {body}" if status and body else body
    text = f"{name} — {said}" if name and said else name or said
    labels = clean(
        (subject_label("component:", str(c["name"])), c.get("new_status") or "unknown")
        for c in update.get("affected_components") or []
        if isinstance(c, dict) and c.get("name")
    )
    values = {"status": status[:200]}
    if incident.get("impact"):
        values["impact"] = str(incident["impact"]).lower()[:200]
    author = page.get("name")
    return Post(
        id=str(update["id"]),
        source=source,
        text=clip(text),
        author=clip(str(author), 200) if author else None,
        url=clip(str(incident["shortlink"]), 2_000) if incident.get("shortlink") else None,
        thread_id=f"incident:{incident['id']}",
        published_at=update.get("display_at") or update.get("created_at"),
        hint=SourceHint(scheme="statuspage", values=values),
        labels=labels,
    )


# --- history feeds -------------------------------------------------------------------------------


def is_history(url: str) -> bool:
    return urlsplit(url).path.endswith((".atom", ".rss", ".xml"))


class _Updates(HTMLParser):
    """The updates of a history entry, newest first: (when, status, body) per paragraph."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.updates: list[list[str]] = []
        self.where: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            self.updates.append(["", "", ""])
            self.where = "body"
        elif tag in ("small", "strong") and self.updates:
            self.where = tag
        elif tag == "br" and self.updates and self.where == "body":
            self.updates[-1][2] += " "

    def handle_endtag(self, tag: str) -> None:
        if tag in ("small", "strong"):
            self.where = "body"
        elif tag == "p":
            self.where = None

    def handle_data(self, data: str) -> None:
        if not self.updates or self.where is None:
            return
        slot = {"small": 0, "strong": 1, "body": 2}[self.where]
        if slot == 1 and self.updates[-1][1]:
            slot = 2  # a second <strong> is part of the text
        self.updates[-1][slot] += data


def history_updates(html: str) -> list[tuple[str, str, str]]:
    """`(when, status, body)` of each update in an entry's HTML, oldest first."""
    parser = _Updates()
    parser.feed(html)
    parser.close()
    out = []
    for when, status, body in parser.updates:
        body = tidy(body).lstrip("-–— ").strip()
        if status.strip() or body:
            out.append((tidy(when), tidy(status), body))
    return list(reversed(out))


def subjects_in(name: str, page: str) -> list[str]:
    """The components an incident's name lists: "Incident with GitHub Actions, Issues, and
    Webhooks" on GitHub's page -> Actions, Issues, Webhooks. Vague ones ("some services")
    are left out."""
    m = _SUBJECTS.match(name.strip())
    if m is None:
        return []
    parts = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", m["names"].strip().rstrip("."))
    prefix = f"{page} " if page else ""
    names = []
    for part in parts:
        part = part.strip()
        if prefix and part.lower().startswith(prefix.lower()):
            part = part[len(prefix) :]
        if part and not part.lower().startswith(_VAGUE):
            names.append(part)
    return names


def components_said(body: str, page: str) -> dict[str, str]:
    """What an update's own sentences say of components: {"Pages": "operational"}."""
    prefix = f"{page} " if page else ""
    said = {}
    for m in _COMPONENT_SAYS.finditer(body):
        name = m["name"].strip()
        if prefix and name.lower().startswith(prefix.lower()):
            name = name[len(prefix) :]
        said[name] = _COMPONENT_STATUS[m["what"]]
    return said


def parse_history(body: bytes, source: str) -> Incidents:
    """Posts from a status page's history.atom or history.rss."""
    root = safe_xml(body)
    if local(root) == "rss":
        channel = child(root, "channel")
        entries = list(children(channel, "item")) if channel is not None else []
        title = text(channel, "title")
    elif local(root) == "feed":
        entries, title = list(children(root, "entry")), text(root, "title")
    else:
        raise SourceError(f"not a status page's history feed (root element <{local(root)}>)")
    page = title.split(" - ")[0].removesuffix(" Status").strip() if " - " in title else ""
    out = Incidents([], [])
    for n, entry in enumerate(entries):
        incident_id = text(entry, "id") or text(entry, "guid") or text(entry, "link")
        if not incident_id:
            out.warnings.append(f"entry {n + 1}: no id, skipped")
            continue
        try:
            posts = _history_posts(entry, incident_id, page, source)
        except (ValidationError, TypeError, ValueError) as e:
            out.warnings.append(f"entry {incident_id}: {_first_error(e)}")
            continue
        statuses = [p.hint.values["status"] for p in posts if p.hint is not None]
        over = bool(statuses) and statuses[-1] in OVER
        for post in posts:
            out.ids.append(post.id)
            if over:
                out.history.add(post.id)
        out.posts += posts
    out.posts.sort(key=lambda p: p.published_at.timestamp() if p.published_at else 0.0)
    return out


def _history_posts(entry: Element, incident_id: str, page: str, source: str) -> list[Post]:
    name = text(entry, "title")
    html = text(entry, "content") or text(entry, "description") or text(entry, "summary")
    link = child(entry, "link")
    url = (link.get("href") or link.text or "").strip() if link is not None else ""
    published = _feed_date(text(entry, "published") or text(entry, "updated"))
    published = published or _feed_date(text(entry, "pubDate"))
    subjects = subjects_in(name, page)
    posts = []
    for n, (when, status, body) in enumerate(history_updates(html)):
        said = status.lower()
        digest = hashlib.sha256(f"{when}|{status}|{body}".encode()).hexdigest()[:16]
        words = f"{status}: {body}" if status and body else status or body
        named = dict.fromkeys(subjects, AFFECTED) if n == 0 else {}
        named.update(components_said(body, page))
        labels = {subject_label("component:", k): v for k, v in named.items()}
        posts.append(
            Post(
                id=f"{incident_id}#{digest}"[-200:],
                source=source,
                text=clip(f"{name} — {words}" if name else words),
                author=page or None,
                url=clip(url, 2_000) or None,
                thread_id=f"incident:{incident_id}"[:200],
                # The feed dates each update without a year: the entry's date orders them.
                published_at=published,
                hint=SourceHint(scheme="statuspage", values={"status": said})
                if said in FEED_HINTS
                else None,
                labels=clean(labels),
            )
        )
    return posts


def _feed_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(e)


def conditional(cursor: Cursor) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if cursor.etag:
        headers["If-None-Match"] = cursor.etag
    if cursor.last_modified:
        headers["If-Modified-Since"] = cursor.last_modified
    return headers


async def read(http: Http, source: Source, cursor: Cursor) -> AsyncIterator[Page]:
    assert source.url is not None
    if is_history(source.url):
        r = await http.get(source.url, headers=conditional(cursor), max_bytes=MAX_XML_BYTES)
    else:
        r = await http.get(incidents_url(source.url), headers=conditional(cursor))
    if r.not_modified:
        yield Page([], cursor, not_modified=True)
        return
    if is_history(source.url):
        found = parse_history(r.body, source.label)
    else:
        found = parse_incidents(r.body, source.label)
    seen = set(cursor.seen) | (found.history if not cursor.primed else set())
    after = cursor.model_copy(
        update={
            "etag": r.headers.get("etag"),
            "last_modified": r.headers.get("last-modified"),
            "seen": found.ids,
            "primed": True,
        }
    )
    yield Page([p for p in found.posts if p.id not in seen], after, warnings=found.warnings)
