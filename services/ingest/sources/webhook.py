"""Signed pushes: a webhook source's sender signs each body with the source's secret.

The signature is GitHub's scheme — `X-Redalert-Signature: sha256=<hex HMAC-SHA256 of the raw
body>` — so most tools that can sign a webhook can sign for redalert.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Redalert-Signature"
_PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on `body`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True only for a well-formed signature of exactly this body with this secret."""
    if not header or not header.strip().lower().startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())
