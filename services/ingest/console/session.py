"""Who is using the console: sign-in with an API token, a session cookie, CSRF, and roles.

Tokens and roles are shared/auth.py's (named tokens with the viewer, responder or admin role,
and REDALERT_API_TOKEN as an admin). The token is checked once, at sign-in; the browser then
holds only a random session id in an HttpOnly, SameSite=Strict cookie, and the session (who,
role, the token's digest, the CSRF token) lives in Redis with a TTL. Each request checks that
the token is still there, so revoking it ends its console sessions too. Every form and script
request that changes something carries the session's CSRF token (a hidden field, or the
X-CSRF-Token header). With no token anywhere (open mode) the console is open, as the API is:
everyone is an anonymous admin, and every page says so.
"""

import json
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from redis.asyncio import Redis

from shared import auth
from shared.auth import Role
from shared.keys import Keys
from shared.settings import Settings

COOKIE = "redalert_session"
SESSION_TTL_S = 12 * 3600  # one shift

# What each kind of change needs (as the API's routes do); the server checks it on every
# request, the pages only use it to decide which buttons to show.
NEEDS: dict[str, Role] = {
    "incident": Role.RESPONDER,  # ack, resolve, reopen
    "label": Role.RESPONDER,  # correct a post's severity
    "silence": Role.RESPONDER,
    "rules": Role.ADMIN,
    "subscriptions": Role.ADMIN,
    "sources": Role.ADMIN,
    "deadletter": Role.ADMIN,
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # viewer, responder or admin

    def can(self, action: str) -> bool:
        return Role(self.role).allows(NEEDS[action])


@dataclass(frozen=True)
class Session:
    id: str
    who: Principal
    csrf: str
    open: bool  # no token anywhere: the console is open to anyone who can reach it

    def principal(self) -> auth.Principal:
        """As shared/auth.py (and the audit trail) knows principals."""
        return auth.Principal(self.who.name, Role(self.who.role), authenticated=not self.open)


async def is_open(redis: Redis, settings: Settings) -> bool:
    """Open mode: no REDALERT_API_TOKEN and no stored token."""
    found = await auth.authenticate(redis, settings, None)
    return found is not None and not found.authenticated


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    async def sign_in(self, token: str) -> Session | None:
        """A session for a valid token; None for anything else."""
        if not token:
            return None
        who = await auth.authenticate(self.redis, self.settings, token)
        if who is None or not who.authenticated:
            return None
        return await self._start(Principal(who.name, who.role.value), auth.digest(token), False)

    async def open_session(self) -> Session:
        return await self._start(Principal(auth.ANONYMOUS, Role.ADMIN.value), None, True)

    async def _start(self, who: Principal, token_digest: str | None, is_open_: bool) -> Session:
        sid = secrets.token_urlsafe(32)
        session = Session(sid, who, secrets.token_urlsafe(32), is_open_)
        doc = {
            "name": who.name,
            "role": who.role,
            "csrf": session.csrf,
            "digest": token_digest,
            "open": is_open_,
        }
        await self.redis.set(self.keys.console_session(sid), json.dumps(doc), ex=SESSION_TTL_S)
        return session

    async def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        raw = await self.redis.get(self.keys.console_session(sid))
        if raw is None:
            return None
        doc = json.loads(raw)
        now_open = await is_open(self.redis, self.settings)
        valid = now_open if doc.get("open") else await self._still_valid(doc)
        if not valid:
            await self.end(sid)  # a token was created since, or this one was revoked
            return None
        return Session(sid, Principal(doc["name"], doc["role"]), doc["csrf"], bool(doc["open"]))

    async def _still_valid(self, doc: dict[str, object]) -> bool:
        token_digest = doc.get("digest")
        if not isinstance(token_digest, str):
            return False
        env = self.settings.api_token
        if doc["name"] == auth.ENV_TOKEN_NAME:
            return env is not None and auth.digest(env.get_secret_value()) == token_digest
        return bool(await self.redis.hexists(self.keys.token_digests, token_digest))

    async def end(self, sid: str) -> None:
        await self.redis.delete(self.keys.console_session(sid))


class SignInNeeded(Exception):
    """Raised by pages when nobody is signed in: answered with a redirect to /signin."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def check_csrf(request: Request, session: Session, given: str | None) -> None:
    token = given or request.headers.get("x-csrf-token") or ""
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "csrf: missing or wrong CSRF token (reload the page)"
        )


def require(session: Session, action: str) -> None:
    if not session.who.can(action):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role: {session.who.name} is a {session.who.role}; this needs {NEEDS[action].value}",
        )
