"""Any Mastodon-API server (Mastodon, CounterSocial, Pleroma, GoToSocial…): an account's
statuses, a hashtag timeline, or a list.

`parse_statuses` is pure (a page of statuses in, Posts out): HTML content becomes text, a boost
becomes the status it boosts (so a boost and its original are one post), a reply keeps its
parent in `in_reply_to` and the thread's root — as far as the page shows it — in `thread_id`.

`read` pages forward from the cursor: each request asks for statuses newer than the newest one
read (`since_id`, and `min_id`, which Mastodon answers with the page *right after* it rather than
the newest page, so a burst longer than a page is read in full over several pages, not skipped).
"""

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from services.ingest.sources.base import Cursor, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.spec import Source
from services.ingest.sources.text import clip, html_to_text
from shared.labels import clean as clean_labels
from shared.models import Post

log = logging.getLogger("redalert.sources")

PAGE_SIZE = 40  # Mastodon's maximum for timelines
MAX_PAGES = 10  # per poll; the rest waits for the next poll, the cursor says where


def decode_statuses(body: bytes) -> list[Any]:
    """The JSON array of statuses a timeline answers; `SourceError` for anything else."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"invalid JSON: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        raise SourceError(f"server error: {data['error'][:200]}")
    if not isinstance(data, list):
        raise SourceError(f"invalid JSON: expected a list of statuses, got {type(data).__name__}")
    return data


def parse_statuses(statuses: list[Any], source: str) -> tuple[list[Post], list[str]]:
    """Posts from a page of statuses, newest first as the API gives them; and what was skipped."""
    originals: list[dict[str, Any]] = []
    skipped: list[str] = []
    for n, status in enumerate(statuses):
        original = status.get("reblog") if isinstance(status, dict) else None
        original = original or status
        if not isinstance(original, dict) or not original.get("id"):
            skipped.append(f"status {n + 1}: not a status (no id)")
            continue
        originals.append(original)
    parents = {str(s["id"]): _str(s.get("in_reply_to_id")) for s in originals}
    posts: list[Post] = []
    seen: set[str] = set()
    for status in originals:
        status_id = str(status["id"])
        if status_id in seen:  # a boost of a status also on the page
            continue
        seen.add(status_id)
        try:
            post = status_to_post(status, source, thread_root(status_id, parents))
        except (ValidationError, TypeError, ValueError) as e:
            skipped.append(f"status {status_id}: {_first_error(e)}")
            continue
        if post is None:
            skipped.append(f"status {status_id}: no text")
            continue
        posts.append(post)
    return posts, skipped


def status_to_post(status: Mapping[str, Any], source: str, thread_id: str) -> Post | None:
    text = status_text(status)
    if not text:
        return None
    account = status.get("account") or {}
    author = account.get("acct") or account.get("username")
    url = status.get("url") or status.get("uri")
    return Post(
        id=str(status["id"]),
        source=source,
        text=clip(text),
        author=clip(str(author), 200) if author else None,
        url=clip(str(url), 2_000) if url else None,
        thread_id=thread_id,
        in_reply_to=_str(status.get("in_reply_to_id")),
        published_at=status.get("created_at"),
        labels=status_labels(status),
    )


def status_labels(status: Mapping[str, Any]) -> dict[str, str]:
    """`account` (user@domain as the server shows it) and `tags` (lowercase, sorted,
    comma-separated: match one with `tags=~"(.*,)?iss(,.*)?"`)."""
    account = status.get("account") or {}
    tags = status.get("tags") or []
    names = sorted({str(t.get("name", "")).lower() for t in tags if isinstance(t, dict)} - {""})
    return clean_labels(
        {"account": account.get("acct") or account.get("username"), "tags": ",".join(names)}
    )


def status_text(status: Mapping[str, Any]) -> str:
    """The content warning (it may say what the post is about), the content, and — when the
    status is only media — the media's descriptions."""
    parts = [status.get("spoiler_text") or "", html_to_text(status.get("content") or "")]
    if not parts[1]:
        media = status.get("media_attachments") or []
        parts += [m.get("description") or "" for m in media if isinstance(m, dict)]
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def thread_root(status_id: str, parents: Mapping[str, str | None]) -> str:
    """The furthest ancestor the page knows: itself if it replies to nothing, else its parent's
    root, else the parent it names."""
    current, hops = status_id, 0
    while (parent := parents.get(current)) is not None and hops < 1_000:
        current, hops = parent, hops + 1
    return current


def newest_id(statuses: list[Any]) -> str | None:
    """The newest status id on a page, whatever order a server uses. Ids sort as numbers
    (Mastodon's) or as fixed-length strings (Pleroma's): longer, then greater, is newer."""
    ids = [str(s["id"]) for s in statuses if isinstance(s, dict) and s.get("id")]
    return max(ids, key=_order) if ids else None


def _order(status_id: str) -> tuple[int, str]:
    return len(status_id), status_id


def timeline_path(source: Source, account_id: str | None = None) -> str:
    field, value = source.mastodon_target
    if field == "account":
        return f"/api/v1/accounts/{quote(account_id or '', safe='')}/statuses"
    if field == "hashtag":
        return f"/api/v1/timelines/tag/{quote(value, safe='')}"
    return f"/api/v1/timelines/list/{quote(value, safe='')}"


def page_params(since_id: str | None) -> dict[str, str]:
    params = {"limit": str(PAGE_SIZE)}
    if since_id:
        params["since_id"] = since_id
        params["min_id"] = since_id
    return params


def _str(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(e)


async def read(http: Http, source: Source, cursor: Cursor) -> AsyncIterator[Page]:
    assert source.url is not None
    base = source.url.rstrip("/")
    headers = {"Accept": "application/json"}
    if source.token is not None:
        headers["Authorization"] = f"Bearer {source.token.get_secret_value()}"
    field, value = source.mastodon_target
    if field == "account" and cursor.account_id is None:
        cursor = cursor.model_copy(update={"account_id": await _lookup(http, base, value, headers)})
    url = base + timeline_path(source, cursor.account_id)
    first = cursor.since_id is None
    for _ in range(MAX_PAGES):
        r = await http.get(url, params=page_params(cursor.since_id), headers=headers)
        statuses = decode_statuses(r.body)
        posts, skipped = parse_statuses(statuses, source.label)
        newest = newest_id(statuses)
        # Never backwards, even if a server ignores since_id and sends older statuses.
        advanced = newest is not None and (
            cursor.since_id is None or _order(newest) > _order(cursor.since_id)
        )
        if advanced:
            cursor = cursor.model_copy(update={"since_id": newest})
        yield Page(posts, cursor, warnings=skipped)
        # The first poll reads the newest page only; later ones go on while pages are full.
        if first or not advanced or len(statuses) < PAGE_SIZE:
            return


async def _lookup(http: Http, base: str, acct: str, headers: Mapping[str, str]) -> str:
    try:
        r = await http.get(f"{base}/api/v1/accounts/lookup", params={"acct": acct}, headers=headers)
    except SourceError as e:
        raise SourceError(f"looking up account {acct}: {e}", e.retry_after_s) from None
    try:
        account_id = json.loads(r.body).get("id")
    except (ValueError, AttributeError):
        account_id = None
    if not account_id:
        raise SourceError(f"looking up account {acct}: invalid JSON (no account id)")
    return str(account_id)
