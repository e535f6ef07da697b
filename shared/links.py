"""Signed, expiring links that let a person act on an incident from a chat message or an email.

A link is `{public_url}/v1/incidents/{id}/{action}/link?expires=<unix>&sig=<hex>` where `sig` is
HMAC-SHA256 over `"{id}:{action}:{expires}"` with the namespace's link secret. The secret comes
from `REDALERT_LINK_SECRET`, or is generated once per namespace and kept in Redis, so every replica
signs and verifies alike.
"""

import hashlib
import hmac
import secrets
import time
from typing import Literal

from redis.asyncio import Redis

from shared.keys import Keys
from shared.settings import Settings

Action = Literal["ack", "resolve"]
ACTIONS: tuple[Action, ...] = ("ack", "resolve")


async def link_secret(redis: Redis, settings: Settings) -> bytes:
    if settings.link_secret is not None:
        return settings.link_secret.get_secret_value().encode()
    key = Keys(settings.namespace).link_secret
    await redis.set(key, secrets.token_hex(32), nx=True)
    value = await redis.get(key)
    assert value is not None
    return bytes(value)


def signature(secret: bytes, incident_id: str, action: str, expires: int) -> str:
    message = f"{incident_id}:{action}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def action_link(
    settings: Settings, secret: bytes, incident_id: str, action: Action, now: float | None = None
) -> str:
    expires = int((now if now is not None else time.time()) + settings.link_ttl_s)
    sig = signature(secret, incident_id, action, expires)
    base = settings.public_url.rstrip("/")
    return f"{base}/v1/incidents/{incident_id}/{action}/link?expires={expires}&sig={sig}"


def verify(
    secret: bytes, incident_id: str, action: str, expires: int, sig: str, now: float | None = None
) -> str | None:
    """None when the link is good; otherwise why not."""
    if action not in ACTIONS:
        return f"unknown action {action!r}"
    if (now if now is not None else time.time()) > expires:
        return "the link has expired"
    if not hmac.compare_digest(signature(secret, incident_id, action, expires), sig):
        return "bad signature"
    return None
