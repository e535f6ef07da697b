"""Who is asking: named API tokens with a role, and the FastAPI dependency that checks them.

Three roles, each including the one before: `viewer` reads; `responder` also submits posts,
acknowledges, resolves and reopens incidents and manages silences; `admin` does everything
(subscriptions, rules, sources, tokens, replays, the audit trail).

A token is shown once when it is created and kept only as its SHA-256 digest (the tokens are 256
random bits, so a plain digest cannot be reversed or guessed; a slow KDF would add nothing but
latency to every request). `REDALERT_API_TOKEN`, when set, is an admin token named `api-token`.

Open mode: while no token exists at all (no `REDALERT_API_TOKEN`, none created), every request is
let through as `anonymous` with the admin role, as a fresh install on a laptop expects. Once any
token exists, every `/v1` request needs one.

Each process keeps a copy of the stored tokens (TokenTable) and re-reads it at most every
`REDALERT_TOKEN_CACHE_MS`: a request with a token it knows, or with none, asks Redis nothing. A
token revoked through another process stops working within that time (at once through this one);
an unknown token is always looked up, so a token made a moment ago elsewhere works at once.

An app that uses `require(...)` sets `app.state.authority = Authority(redis, settings)`.
"""

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import utcnow
from shared.settings import Settings

ENV_TOKEN_NAME = "api-token"  # the name REDALERT_API_TOKEN acts under; no stored token may take it
ANONYMOUS = "anonymous"
TOKEN_PREFIX = "ra_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: "Role") -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.RESPONDER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for. `authenticated` is False only in open mode."""

    name: str
    role: Role
    authenticated: bool = True

    def actor(self, claimed: str | None = None) -> str:
        """The name recorded for an action: the token's; in open mode, what the client claims."""
        if self.authenticated:
            return self.name
        return claimed or ANONYMOUS


OPEN = Principal(ANONYMOUS, Role.ADMIN, authenticated=False)


class TokenRecord(BaseModel):
    """A stored token: never its value, only the digest."""

    name: str
    role: Role
    digest: str
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = ANONYMOUS

    def public(self) -> dict[str, str]:
        return {
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def name_problem(name: str) -> str | None:
    """Why a token name cannot be used; None when it can."""
    if not _NAME.match(name):
        return "letters, digits and _ . @ - only, starting with a letter or digit, 64 at most"
    if name in (ENV_TOKEN_NAME, ANONYMOUS, "link"):
        return f"{name!r} is reserved"
    return None


class TokenExists(Exception):
    pass


class TokenTable:
    """This process's copy of the stored tokens (digest -> record), read again once it is older
    than `max_age_s`. One read at a time: the requests that find it old wait for that read."""

    def __init__(self, redis: Redis, keys: Keys, max_age_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.max_age_s = max_age_s
        self._records: dict[str, TokenRecord] = {}
        self._raw: dict[bytes, bytes] = {}
        self._read_at = -float("inf")
        self._reading = asyncio.Lock()

    def forget(self) -> None:
        """Tokens changed through this process: the next request reads them again."""
        self._read_at = -float("inf")

    async def records(self) -> dict[str, TokenRecord]:
        if time.monotonic() - self._read_at < self.max_age_s:
            return self._records
        async with self._reading:
            if time.monotonic() - self._read_at >= self.max_age_s:
                started = time.monotonic()  # its age counts from before the read
                raw = await self.redis.hgetall(self.keys.token_digests)
                if raw != self._raw:
                    self._records = {
                        d.decode(): TokenRecord.model_validate_json(r) for d, r in raw.items()
                    }
                    self._raw = raw
                self._read_at = started
        return self._records


class TokenStore:
    """`tokens`: name -> digest; `token_digests`: digest -> TokenRecord JSON (one read a call).
    `table`: this process's copy, told when a token is made or revoked here."""

    def __init__(self, redis: Redis, keys: Keys, table: TokenTable | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.table = table

    async def add(self, name: str, role: Role, created_by: str) -> tuple[TokenRecord, str]:
        """Create a token; answers its record and its value (which is not kept)."""
        token = new_token()
        record = TokenRecord(name=name, role=role, digest=digest(token), created_by=created_by)
        if not await self.redis.hsetnx(self.keys.tokens, name, record.digest):
            raise TokenExists(name)
        await self.redis.hset(self.keys.token_digests, record.digest, record.model_dump_json())
        if self.table is not None:
            self.table.forget()
        return record, token

    async def all(self) -> list[TokenRecord]:
        raw = await self.redis.hvals(self.keys.token_digests)
        return sorted((TokenRecord.model_validate_json(r) for r in raw), key=lambda t: t.name)

    async def revoke(self, name: str) -> bool:
        found = await self.redis.hget(self.keys.tokens, name)
        if found is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.token_digests, found)
            pipe.hdel(self.keys.tokens, name)
            await pipe.execute()
        if self.table is not None:
            self.table.forget()
        return True

    async def lookup(self, token: str | None) -> tuple[TokenRecord | None, bool]:
        """The token's record (None if unknown or not given), and whether any token is stored."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self.keys.token_digests)
            if token:
                pipe.hget(self.keys.token_digests, digest(token))
            answers = await pipe.execute()
        any_stored = bool(answers[0])
        raw = answers[1] if token else None
        return (TokenRecord.model_validate_json(raw) if raw else None), any_stored


class Unauthenticated(Exception):
    """Tokens exist and this request's is missing or unknown."""


async def authenticate(
    redis: Redis, settings: Settings, token: str | None, table: TokenTable | None = None
) -> Principal | None:
    """Who `token` is. Open mode: OPEN whatever the token. None: tokens exist, this one is not
    one of them (or none was given). With a `table`, a known token or none is answered from it."""
    env = settings.api_token
    if (
        token
        and env is not None
        and secrets.compare_digest(token.encode(), env.get_secret_value().encode())
    ):
        return Principal(ENV_TOKEN_NAME, Role.ADMIN)
    if table is not None:
        known = await table.records()
        if not token:
            return OPEN if env is None and not known else None
        if (found := known.get(digest(token))) is not None:
            return Principal(found.name, found.role)
        # Unknown here: perhaps made a moment ago through another process; Redis says.
    record, any_stored = await TokenStore(redis, Keys(settings.namespace)).lookup(token)
    if record is not None:
        return Principal(record.name, record.role)
    if env is None and not any_stored:
        return OPEN
    return None


@dataclass
class Authority:
    """What `require` needs from the app: where tokens live, the settings, and (unless
    REDALERT_TOKEN_CACHE_MS is 0) this process's copy of the tokens."""

    redis: Redis
    settings: Settings
    table: TokenTable | None = None

    async def principal(self, token: str | None) -> Principal | None:
        return await authenticate(self.redis, self.settings, token, self.table)


bearer = HTTPBearer(auto_error=False, description="A named API token, or REDALERT_API_TOKEN.")


def bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials.strip() if credentials is not None else None


def require(role: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the request's Principal, if its role includes `role`.

    401 when a token is needed and missing or unknown; 403 when the role is too small. The
    principal is also left on `request.state.principal` (the audit trail reads it).
    """
    needed = Role(role)

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        principal = getattr(request.state, "principal", None)
        if principal is None:  # not yet asked for this request (see `baseline`)
            authority: Authority = request.app.state.authority
            principal = await authority.principal(bearer_token(credentials))
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or unknown token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.principal = principal
        if not principal.role.allows(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"token {principal.name!r} is a {principal.role.value}; "
                f"this needs {needed.value}",
            )
        return principal

    dependency.__name__ = f"require_{needed.value}"
    return dependency


viewer = require(Role.VIEWER)
responder = require(Role.RESPONDER)
admin = require(Role.ADMIN)

# Routes under /v1 that check credentials of their own (a signature): `baseline` lets them be.
SELF_AUTHENTICATED = {
    "/v1/incidents/{incident_id}/{action}/link",
    "/v1/incidents/{incident_id}/ack/as/{who}",  # a page's own link (shared/escalation.py)
    "/v1/sources/{name}/posts",
    "/v1/webhooks/pagerduty",
    "/v1/webhooks/alertmanager",
    "/v1/webhooks/grafana",
    "/v1/webhooks/json/{name}",
}


async def baseline(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """An app-wide dependency: every /v1 route needs at least a viewer, unless it is one of
    SELF_AUTHENTICATED — so a route that forgets to say who may call it is not open to all."""
    route = getattr(request.scope.get("route"), "path", "")
    if route.startswith("/v1/") and route not in SELF_AUTHENTICATED:
        await viewer(request, credentials)


async def metrics_access(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """For /metrics: open unless REDALERT_METRICS_TOKEN is set; then that token, or any viewer's."""
    authority: Authority = request.app.state.authority
    expected = authority.settings.metrics_token
    if expected is None:
        return
    given = bearer_token(credentials)
    if given and secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        return
    principal = await authority.principal(given) if given else None
    if principal is None or not principal.authenticated:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong token (Authorization: Bearer <REDALERT_METRICS_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
