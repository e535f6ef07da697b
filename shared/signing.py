"""HMAC signatures on webhook bodies: `X-Redalert-Signature: sha256=<hex>`.

Signed with a time (recommended, and what makes a request impossible to replay later):
`X-Redalert-Timestamp: <unix seconds>`, and the HMAC is over `"<timestamp>." + body`. A request
whose timestamp is further than REDALERT_WEBHOOK_WINDOW_S from now is refused, and one seen
before within the window is not acted on again (its signature is remembered: the nonce).

Without a timestamp the HMAC is over the body alone (tools that cannot add a header); such a
request is remembered as long as post ids are (REDALERT_DEDUP_TTL_S), so a replay does nothing
in that time either.
"""

import hashlib
import hmac
from dataclasses import dataclass

HEADER = "X-Redalert-Signature"
TIMESTAMP_HEADER = "X-Redalert-Timestamp"
PREFIX = "sha256="


def sign(secret: bytes | str, body: bytes, timestamp: int | None = None) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    return PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def valid(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a body-only signature header against the body."""
    if not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


@dataclass(frozen=True)
class Checked:
    problem: str | None  # why the request is refused (a 401), or None
    nonce: str = ""  # what identifies this signed request, to remember
    remember_s: int = 0  # for how long


def check(
    secret: bytes | str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    window_s: int,
    untimed_s: int,
) -> Checked:
    """A request's signature (with its timestamp, if it has one), checked in constant time."""
    if not signature or not signature.startswith(PREFIX):
        return Checked(f"missing {HEADER} (sha256=<HMAC-SHA256>)")
    signature = signature.strip()
    if timestamp is None:
        if not hmac.compare_digest(sign(secret, body), signature):
            return Checked(f"{HEADER}: not the body's signature")
        return Checked(None, _nonce(signature), untimed_s)
    if not timestamp.strip().isdigit() or len(timestamp.strip()) > 12:
        return Checked(f"{TIMESTAMP_HEADER}: not a unix time in seconds")
    at = int(timestamp)
    if not hmac.compare_digest(sign(secret, body, at), signature):
        return Checked(f'{HEADER}: not the signature of "{TIMESTAMP_HEADER}." + body')
    if abs(now - at) > window_s:
        return Checked(
            f"{TIMESTAMP_HEADER}: {int(now - at)} s from now, outside the {window_s} s window "
            "(REDALERT_WEBHOOK_WINDOW_S)"
        )
    return Checked(None, _nonce(signature), 2 * window_s)


def _nonce(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()[:32]
