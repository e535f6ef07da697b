"""Status pages (Atlassian Statuspage's public API, `/api/v2/incidents.json`): each incident is a
thread, each of its updates a post.

A post's text is the incident's name and the update; its hint (`statuspage`: the update's
`status`, the incident's `impact`) is mapped to a severity by the rules file; its labels carry
the components the update names and their new status (`component:Actions` =
`degraded_performance`), so an update about some components does not clear an incident about
others (shared/subjects.py).

`parse_incidents` is pure. `read` makes a conditional GET (ETag, Last-Modified) and publishes
the updates it has not seen, oldest first. The first read of a page takes incidents that were
already over as history, not news: it remembers them without publishing them.
"""

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from services.ingest.sources.base import Cursor, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.spec import Source
from services.ingest.sources.text import clip, tidy
from shared.labels import clean
from shared.models import Post, SourceHint
from shared.subjects import label as subject_label

API_PATH = "/api/v2/incidents.json"
OVER = frozenset({"resolved", "postmortem"})


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
    r = await http.get(incidents_url(source.url), headers=conditional(cursor))
    if r.not_modified:
        yield Page([], cursor, not_modified=True)
        return
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
