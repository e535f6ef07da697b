"""CAP 1.2 (OASIS Common Alerting Protocol, ITU-T X.1303): public warnings as their authorities
publish them — one `<alert>` document, or an Atom feed of them (entries that embed the alert,
link to it as `application/cap+xml`, or carry its fields inline as the US NWS feed does).

An Alert and the Updates and Cancels that reference it are one thread: a message's thread is
the first message it references (else itself), and it replies to the last one. Its hint
(`cap`: msg_type, status, severity, certainty, urgency, response_type, expires past/future) is
mapped to a severity by the rules file; its labels carry the event, the categories, each area
(`area:<areaDesc>`: affected, or clear once cancelled or expired) and the geocodes. Of several
`info` blocks, the one in the source's `language` is read (default English, else the first).

XML from the network is parsed safely: the size is checked before parsing (and the download
stops at it), and defusedxml refuses any DTD, entity declaration or external reference — so an
entity expansion bomb or an external entity never expands or fetches anything.
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

from pydantic import ValidationError

from services.ingest.sources.base import Cursor, Expiring, Page, SourceError
from services.ingest.sources.fetch import Http
from services.ingest.sources.safexml import (
    MAX_XML_BYTES,
    safe_xml,
)
from services.ingest.sources.safexml import (
    child as _child,
)
from services.ingest.sources.safexml import (
    children as _children,
)
from services.ingest.sources.safexml import (
    local as _local,
)
from services.ingest.sources.safexml import (
    namespace as _namespace,
)
from services.ingest.sources.safexml import (
    text as _text,
)
from services.ingest.sources.spec import Source
from services.ingest.sources.text import clip, tidy
from shared.labels import clean
from shared.models import Post, SourceHint, utcnow
from shared.subjects import AFFECTED
from shared.subjects import label as subject_label

MAX_LINKED = 20  # linked CAP documents fetched per poll; the rest wait for the next one
MAX_AREAS = 20
MAX_GEOCODES = 10
MAX_EXPIRING = 1_000  # active alerts remembered per source, to resolve at their expiry
CLEARED = "clear"
CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:"  # 1.2, and 1.1 which reads the same here
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
CAP_TYPES = ("application/cap+xml", "application/common-alerting-protocol+xml")
ACCEPT = "application/cap+xml, application/atom+xml;q=0.9, application/xml;q=0.8"


def _is_cap(el: Element) -> bool:
    return _namespace(el).startswith(CAP_NAMESPACE)


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: str


def parse_references(text: str) -> list[Reference]:
    """`sender,identifier,sent sender,identifier,sent …` (CAP 1.2 §3.2.1)."""
    refs = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) >= 3:
            refs.append(Reference(parts[0], ",".join(parts[1:-1]), parts[-1]))
    return refs


def choose_info(infos: list[Element], language: str | None) -> Element | None:
    """The info block in the wanted language (exactly, else the same language in another
    region), else the first. A block without `language` is en-US (CAP 1.2)."""

    def lang(info: Element) -> str:
        return (_text(info, "language") or "en-US").lower()

    want = (language or "en").lower()
    exact = [i for i in infos if lang(i) == want]
    same = [i for i in infos if lang(i).split("-")[0] == want.split("-")[0]]
    return (exact or same or infos or [None])[0]


def _post_id(identifier: str) -> str:
    if len(identifier) <= 200:
        return identifier
    return "sha256:" + hashlib.sha256(identifier.encode()).hexdigest()


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def message_expires(message: Element, language: str | None) -> datetime | None:
    """When the message (its info block in `language`) stops being in force, if it says."""
    info = choose_info(list(_children(message, "info")), language)
    expires = _when(_text(info if info is not None else message, "expires"))
    return expires if expires is not None and expires.tzinfo is not None else None


def message_to_post(
    message: Element,
    source: str,
    *,
    language: str | None,
    now: datetime,
    fallback_id: str | None = None,
    fallback_text: str = "",
    url: str | None = None,
) -> Post:
    """A post from an `<alert>` — or from an Atom entry carrying CAP fields inline (NWS), whose
    own id, title and summary stand in for what the entry does not carry."""
    identifier = _text(message, "identifier") or fallback_id or ""
    if not identifier:
        raise SourceError("a CAP message without identifier")
    msg_type = _text(message, "msgType") or "Alert"
    status = _text(message, "status") or "Actual"
    refs = parse_references(_text(message, "references"))
    info = choose_info(list(_children(message, "info")), language)
    fields = info if info is not None else message  # NWS entries carry the fields inline
    event = _text(fields, "event")
    expires = _when(_text(fields, "expires"))
    responses = [tidy(r.text or "") for r in _children(fields, "responseType")]
    over = (
        msg_type == "Cancel"
        or "AllClear" in responses
        or (expires is not None and expires.tzinfo is not None and expires <= now)
    )
    areas = list(_children(fields, "area")) or (
        [fields] if _child(fields, "areaDesc") is not None else []
    )
    labels: dict[str, str] = {}
    if event:
        labels["event"] = event[:200]
    categories = [tidy(c.text or "") for c in _children(fields, "category")]
    if categories:
        labels["category"] = " ".join(categories)[:200]
    geocodes: dict[str, list[str]] = {}
    area_names = []
    for area in areas[:MAX_AREAS]:
        desc = _text(area, "areaDesc")
        if desc:
            area_names.append(desc)
            labels[subject_label("area:", desc)] = CLEARED if over else AFFECTED
        for code in _children(area, "geocode"):
            name, value = _text(code, "valueName"), _text(code, "value")
            if name and value:
                geocodes.setdefault(name, []).append(value)
    if area_names:
        labels["area_desc"] = "; ".join(area_names)
    for name, values in list(geocodes.items())[:MAX_GEOCODES]:
        labels[f"geocode:{name[:50]}"] = " ".join(dict.fromkeys(values))
    values = {"msg_type": msg_type, "status": status}
    for key, name in (("severity", "severity"), ("certainty", "certainty"), ("urgency", "urgency")):
        if said := _text(fields, name):
            values[key] = said
    if responses:
        values["response_type"] = "AllClear" if "AllClear" in responses else responses[0]
    if expires is not None and expires.tzinfo is not None:
        values["expires"] = "past" if expires <= now else "future"
    text = _message_text(message, fields, msg_type, event, area_names, refs, fallback_text)
    sender = _text(fields, "senderName") or _text(message, "sender")
    web = _text(fields, "web") or url
    try:
        return Post(
            id=_post_id(identifier),
            source=source,
            text=clip(text),
            author=clip(sender, 200) or None,
            url=clip(web, 2_000) if web else None,
            thread_id=_post_id(refs[0].identifier if refs else identifier),
            in_reply_to=_post_id(refs[-1].identifier) if refs else None,
            published_at=_when(_text(message, "sent")) or _when(_text(fields, "effective")),
            hint=SourceHint(scheme="cap", values={k: v[:200] for k, v in values.items()}),
            labels=clean(labels),  # clipped to the bounds of labels, bad names left out
        )
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SourceError(f"message {identifier}: {where}: {err['msg']}") from None


def _message_text(
    message: Element,
    fields: Element,
    msg_type: str,
    event: str,
    areas: list[str],
    refs: list[Reference],
    fallback: str,
) -> str:
    headline = _text(fields, "headline") or fallback or event
    if msg_type != "Alert":
        cancels = ", ".join(r.identifier for r in refs) or "an earlier message"
        headline = f"{msg_type}: {headline or _text(message, 'note') or cancels}"
    parts = [headline, _text(fields, "description"), _text(fields, "instruction")]
    if fallback and not parts[0].endswith(fallback):
        parts.append(fallback)
    if event and event.lower() not in headline.lower():  # so the rules read it for topics
        parts.append(f"Event: {event}")
    if areas:
        parts.append("Areas: " + "; ".join(areas))
    return "\n\n".join(dict.fromkeys(p for p in parts if p))


# --- documents -----------------------------------------------------------------------------------


@dataclass
class Entry:
    id: str
    post: Post | None = None
    link: str | None = None  # the CAP document to fetch
    expires: datetime | None = None


@dataclass
class Document:
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)


def parse_document(
    body: bytes,
    source: str,
    *,
    language: str | None = None,
    now: datetime | None = None,
    url: str | None = None,
) -> Document:
    """A CAP alert, or an Atom feed of them. Raises `SourceError` for anything else."""
    now = now or utcnow()
    root = safe_xml(body)
    if _local(root) == "alert" and _is_cap(root):
        post = message_to_post(root, source, language=language, now=now)
        return Document([Entry(post.id, post, expires=message_expires(root, language))])
    if _local(root) == "feed" and _namespace(root) == ATOM_NAMESPACE:
        return _feed(root, source, language=language, now=now, url=url)
    raise SourceError(f"not a CAP alert nor an Atom feed of them (root element <{_local(root)}>)")


def _feed(
    root: Element, source: str, *, language: str | None, now: datetime, url: str | None
) -> Document:
    doc = Document([])
    for n, entry in enumerate(_children(root, "entry")):
        entry_id = _text(entry, "id")
        if not entry_id:
            doc.warnings.append(f"entry {n + 1}: no id, skipped")
            continue
        try:
            doc.entries.append(_entry(entry, entry_id, source, language=language, now=now, url=url))
        except SourceError as e:
            doc.warnings.append(f"entry {entry_id}: {e}")
    return doc


def _entry(
    entry: Element,
    entry_id: str,
    source: str,
    *,
    language: str | None,
    now: datetime,
    url: str | None,
) -> Entry:
    content = _child(entry, "content")
    embedded = next((el for el in (content if content is not None else []) if _is_cap(el)), None)
    link = _cap_link(entry, url)
    if embedded is not None and _local(embedded) == "alert":
        post = message_to_post(embedded, source, language=language, now=now)
        return Entry(entry_id, post, expires=message_expires(embedded, language))
    if any(_is_cap(el) for el in entry):  # NWS: the fields inline, the full alert at its id
        title = _text(entry, "title")
        summary = _text(entry, "summary")
        text = "\n\n".join(p for p in (title, summary) if p)
        post = message_to_post(
            entry,
            source,
            language=language,
            now=now,
            fallback_id=entry_id,
            fallback_text=text,
            url=link or (entry_id if entry_id.startswith("http") else None),
        )
        return Entry(entry_id, post, expires=message_expires(entry, language))
    if link is not None:
        return Entry(entry_id, link=link)
    raise SourceError("neither a CAP alert, CAP fields nor a link to a CAP document")


def _cap_link(entry: Element, base: str | None) -> str | None:
    links = list(_children(entry, "link"))
    typed = [el for el in links if (el.get("type") or "").split(";")[0].strip() in CAP_TYPES]
    xml = [el for el in links if (el.get("href") or "").lower().endswith(".xml")]
    for el in typed + xml:
        href = urljoin(base or "", el.get("href") or "")
        if urlsplit(href).scheme in ("http", "https"):
            return href
    return None


# --- polling -------------------------------------------------------------------------------------


def conditional(cursor: Cursor) -> dict[str, str]:
    headers = {"Accept": ACCEPT}
    if cursor.etag:
        headers["If-None-Match"] = cursor.etag
    if cursor.last_modified:
        headers["If-Modified-Since"] = cursor.last_modified
    return headers


def expired(cursor: Cursor, source: str, now: datetime) -> tuple[list[Post], list[Expiring]]:
    """Posts resolving the alerts that expired with nothing after them; the ones still active."""
    due = [e for e in cursor.expiring if e.expires <= now]
    posts = [
        Post(
            id=_post_id(f"{e.post_id}:expired"),
            source=source,
            text=clip(f"Expired: {e.title}"),
            thread_id=e.thread_id,
            in_reply_to=e.post_id,
            published_at=e.expires,
            hint=SourceHint(scheme="cap", values={"status": "Actual", "expires": "past"}),
        )
        for e in due
    ]
    return posts, [e for e in cursor.expiring if e.expires > now]


def remember(
    expiring: list[Expiring], published: list[tuple[Post, datetime | None]], now: datetime
) -> list[Expiring]:
    """The active alerts after these messages: a thread's newest message replaces its older
    ones (an Update moves the expiry, a Cancel ends it)."""
    out = list(expiring)
    for post, expires in published:
        thread = post.thread_id or post.id
        out = [e for e in out if e.thread_id != thread]
        over = post.hint is not None and post.hint.values.get("msg_type") == "Cancel"
        if expires is not None and expires > now and not over:
            title = post.text.split("\n", 1)[0][:200]
            out.append(Expiring(post_id=post.id, thread_id=thread, expires=expires, title=title))
    return out[-MAX_EXPIRING:]


async def read(http: Http, source: Source, cursor: Cursor) -> AsyncIterator[Page]:
    assert source.url is not None
    now = utcnow()
    # Alerts that expired since the last poll resolve, whether or not the document changed.
    ended, active = expired(cursor, source.label, now)
    r = await http.get(source.url, headers=conditional(cursor), max_bytes=MAX_XML_BYTES)
    if r.not_modified:
        yield Page(ended, cursor.model_copy(update={"expiring": active}), not_modified=True)
        return
    doc = parse_document(r.body, source.label, language=source.language, now=now, url=r.url)
    seen, warnings = set(cursor.seen), list(doc.warnings)
    published: list[tuple[Post, datetime | None]] = []
    done: list[str] = []
    fetched, deferred = 0, False
    for entry in doc.entries:
        if entry.id in seen or entry.post is not None:
            done.append(entry.id)
            if entry.post is not None and entry.id not in seen:
                published.append((entry.post, entry.expires))
            continue
        assert entry.link is not None
        if fetched >= MAX_LINKED:
            deferred = True  # read at the next poll, which must not be answered by a 304
            continue
        fetched += 1
        try:
            linked = await http.get(entry.link, headers={"Accept": ACCEPT}, max_bytes=MAX_XML_BYTES)
        except SourceError as e:  # unreachable for now: tried again next poll
            warnings.append(f"{entry.link}: {e}")
            deferred = True
            continue
        try:
            message = safe_xml(linked.body)
            if not (_local(message) == "alert" and _is_cap(message)):
                raise SourceError(f"not a CAP alert (root element <{_local(message)}>)")
            post = message_to_post(message, source.label, language=source.language, now=now)
            published.append((post, message_expires(message, source.language)))
        except SourceError as e:  # refused for good (unsafe, malformed): not fetched again
            warnings.append(f"{entry.link}: {e}")
        done.append(entry.id)
    published.sort(key=lambda pe: pe[0].published_at.timestamp() if pe[0].published_at else 0.0)
    after = cursor.model_copy(
        update={
            "etag": None if deferred else r.headers.get("etag"),
            "last_modified": None if deferred else r.headers.get("last-modified"),
            "seen": done,
            "expiring": remember(active, published, now),
        }
    )
    yield Page(ended + [p for p, _ in published], after, warnings=warnings)
