"""Signed links that let a person act on an incident from a chat message or an email — once.

A message is rendered with *unsigned* links, `{public_url}/v1/incidents/{id}/{action}/link?v=N`,
where N is the incident's version the message was about. Only when the message goes on the wire
(`sign_links`, called by the sender, also on a replay) do they get `&expires=<unix>&sig=<hex>`,
HMAC-SHA256 over `"{id}:{action}:{N}:{expires}"` with the namespace's link secret. So nothing
stored — pending sends, digests, dead letters — holds a working link, and a replayed dead letter
carries fresh ones.

A signed link is refused (410, with a page saying why) once:
- it was used (`claim_use`: the first POST wins, atomically);
- the incident moved on from the state it was sent about (`moved_on`): an ack link dies when the
  incident is acknowledged, resolved or reopened after version N; a resolve link when it is
  resolved or reopened (acknowledging first is the usual path to resolving, so that keeps it);
- it expired (`REDALERT_LINK_TTL_S`, 24 h by default).

The secret comes from `REDALERT_LINK_SECRET`, or is generated once per namespace and kept in
Redis, so every replica signs and verifies alike.
"""

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from typing import Literal

from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import EventKind, IncidentEvent
from shared.settings import Settings

Action = Literal["ack", "resolve"]
ACTIONS: tuple[Action, ...] = ("ack", "resolve")

# Transitions after which a link of that action no longer means what it meant when sent.
ENDS: dict[str, frozenset[EventKind]] = {
    "ack": frozenset({EventKind.ACKNOWLEDGED, EventKind.RESOLVED, EventKind.REOPENED}),
    "resolve": frozenset({EventKind.RESOLVED, EventKind.REOPENED}),
}

# An unsigned link in a rendered message (not followed by a signature already).
_UNSIGNED = re.compile(
    r"(?P<path>/v1/incidents/(?P<id>[A-Za-z0-9_.:\-]{1,200})/(?P<action>ack|resolve)/link)"
    r"\?v=(?P<version>\d{1,12})(?![0-9&])"
)


async def link_secret(redis: Redis, settings: Settings) -> bytes:
    if settings.link_secret is not None:
        return settings.link_secret.get_secret_value().encode()
    key = Keys(settings.namespace).link_secret
    await redis.set(key, secrets.token_hex(32), nx=True)
    value = await redis.get(key)
    assert value is not None
    return bytes(value)


def signature(secret: bytes, incident_id: str, action: str, version: int, expires: int) -> str:
    message = f"{incident_id}:{action}:{version}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def unsigned_link(public_url: str, incident_id: str, action: Action, version: int) -> str:
    """The link as rendered into a message: it does nothing until `sign_links` signs it."""
    return f"{public_url.rstrip('/')}/v1/incidents/{incident_id}/{action}/link?v={version}"


def action_link(
    settings: Settings,
    secret: bytes,
    incident_id: str,
    action: Action,
    version: int,
    now: float | None = None,
) -> str:
    """A signed link, ready to send."""
    return _signed(
        unsigned_link(settings.public_url, incident_id, action, version), settings, secret, now
    )


def sign_links(text: str, settings: Settings, secret: bytes, now: float | None = None) -> str:
    """Every unsigned action link in `text`, signed as of `now` (for a message going out)."""
    if "/link?v=" not in text:
        return text
    return _UNSIGNED.sub(lambda m: _signed(m.group(0), settings, secret, now, m), text)


def _signed(
    link: str, settings: Settings, secret: bytes, now: float | None, m: re.Match[str] | None = None
) -> str:
    m = m or _UNSIGNED.search(link)
    assert m is not None
    expires = int((now if now is not None else time.time()) + settings.link_ttl_s)
    sig = signature(secret, m["id"], m["action"], int(m["version"]), expires)
    return f"{link}&expires={expires}&sig={sig}"


def verify(
    secret: bytes,
    incident_id: str,
    action: str,
    version: int,
    expires: int,
    sig: str,
    now: float | None = None,
) -> tuple[int, str] | None:
    """None when the signature is good and current; otherwise (HTTP status, why not)."""
    if action not in ACTIONS:
        return 404, f"{action!r} is not an action"
    if not hmac.compare_digest(signature(secret, incident_id, action, version, expires), sig):
        return 403, "its signature does not match (the link was changed, or never issued here)"
    if (now if now is not None else time.time()) > expires:
        return 410, "it has expired"
    return None


def moved_on(action: str, version: int, timeline: Iterable[IncidentEvent]) -> IncidentEvent | None:
    """The transition after `version` that makes a link of `action` stale; None if none did."""
    ends = ENDS[action]
    for event in timeline:
        if event.incident.version > version and event.kind in ends:
            return event
    return None


async def claim_use(redis: Redis, keys: Keys, sig: str, expires: int, now: float) -> bool:
    """Mark a link used; False if it already was. Remembered until it would have expired."""
    ttl = max(1, int(expires - now) + 1)
    return bool(await redis.set(keys.link_used(sig), str(int(now)), nx=True, ex=ttl))


async def used_at(redis: Redis, keys: Keys, sig: str) -> int | None:
    found = await redis.get(keys.link_used(sig))
    return int(found) if found is not None else None
