"""RSS 0.9x/1.0/2.0 and Atom feeds: conditional GET, items identified by guid or link.

`parse_feed` is pure (a document in, Posts out); `read` makes the request. A feed is fetched with
If-None-Match / If-Modified-Since from the last answer, and a 304 costs nothing. Items already in
the previous document are skipped before publishing, so an item that stays in a feed for months
is not published again when its de-duplication marker expires.
"""

import hashlib
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import struct_time
from typing import Any

import feedparser

from services.ingest.sources.base import Cursor, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.spec import Source
from services.ingest.sources.text import clip, html_to_text, tidy
from shared.models import Post

log = logging.getLogger("redalert.sources")

MAX_ID = 200  # Post.id's limit
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Feed:
    posts: list[Post]
    ids: list[str]  # every item's id
    well_formed: bool = True
    warnings: list[str] = field(default_factory=list)


def parse_feed(
    body: bytes, source: str, *, url: str | None = None, content_type: str | None = None
) -> Feed:
    """Posts from a feed document. Raises `SourceError` when it is not a feed at all."""
    headers = {"content-location": url or "", "content-type": content_type or "application/xml"}
    # A stream, never the bytes: feedparser would fetch a body that looks like a URL, or open
    # one that names a local file.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        detail = f" ({_describe(problem)})" if problem else ""
        raise SourceError(f"malformed feed: not RSS or Atom{detail}")
    warnings = []
    well_formed = not parsed.get("bozo")
    if not well_formed:
        warnings.append(f"feed not well-formed, read leniently: {_describe(parsed.bozo_exception)}")
    posts, ids = [], []
    for n, entry in enumerate(parsed.entries):
        post = entry_to_post(entry, source)
        if post is None:
            warnings.append(f"item {n + 1} has no text, id or link: skipped")
            continue
        if post.id in ids:
            continue
        posts.append(post)
        ids.append(post.id)
    return Feed(posts, ids, well_formed, warnings)


def entry_to_post(entry: Any, source: str) -> Post | None:
    title = _text(entry.get("title"), entry.get("title_detail"))
    body = ""
    if entry.get("summary"):
        body = _text(entry.get("summary"), entry.get("summary_detail"))
    elif entry.get("content"):
        body = _text(entry.content[0].get("value"), entry.content[0])
    text = _join(title, body)
    item_id = item_identity(entry, text)
    if not text or item_id is None:
        return None
    author_detail = entry.get("author_detail") or {}
    author = author_detail.get("name") or entry.get("author")
    return Post(
        id=item_id,
        source=source,
        text=clip(text),
        author=clip(author, 200) if author else None,
        url=clip(entry["link"], 2_000) if entry.get("link") else None,
        published_at=_when(entry.get("published_parsed") or entry.get("updated_parsed")),
    )


def item_identity(entry: Any, text: str) -> str | None:
    """The guid (RSS) or id (Atom); else the link; else a digest of the text."""
    raw = (entry.get("id") or entry.get("link") or "").strip()
    if not raw:
        if not text:
            return None
        raw = "text:" + hashlib.sha256(text.encode()).hexdigest()
    if len(raw) > MAX_ID:
        return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    return raw


def _text(value: str | None, detail: Any) -> str:
    if not value:
        return ""
    kind = (detail or {}).get("type", "text/html")
    return html_to_text(value) if kind in _HTML_TYPES else tidy(value)


def _join(title: str, body: str) -> str:
    if not body or body.startswith(title.rstrip(".…")):
        return body or title
    if not title or title.startswith(body.rstrip(".…")):
        return title
    return f"{title}\n\n{body}"


def _when(t: struct_time | None) -> datetime | None:
    return datetime(*t[:6], tzinfo=UTC) if t else None


def _describe(e: object) -> str:
    line = getattr(e, "getLineNumber", None)
    where = f" at line {line()}" if callable(line) else ""
    return f"{e}{where}"


async def read(http: Http, source: Source, cursor: Cursor) -> AsyncIterator[Page]:
    assert source.url is not None
    headers = {}
    if cursor.etag:
        headers["If-None-Match"] = cursor.etag
    if cursor.last_modified:
        headers["If-Modified-Since"] = cursor.last_modified
    r = await http.get(source.url, headers=headers)
    if r.not_modified:
        yield Page([], cursor, not_modified=True)
        return
    feed = parse_feed(r.body, source.label, url=r.url, content_type=r.headers.get("content-type"))
    seen = set(cursor.seen)
    # A document read leniently may be cut short: do not let a 304 hide the rest next time.
    clean = feed.well_formed
    after = cursor.model_copy(
        update={
            "etag": r.headers.get("etag") if clean else None,
            "last_modified": r.headers.get("last-modified") if clean else None,
            "seen": feed.ids,
        }
    )
    yield Page([p for p in feed.posts if p.id not in seen], after, warnings=feed.warnings)
