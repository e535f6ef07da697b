"""HMAC signatures on webhook bodies: `X-Redalert-Signature: sha256=<hex>` over the raw body."""

import hashlib
import hmac

HEADER = "X-Redalert-Signature"
PREFIX = "sha256="


def sign(secret: bytes | str, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def valid(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a signature header against the body."""
    if not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
