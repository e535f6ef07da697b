"""Who is using the console: sign-in with an API token, a session cookie, CSRF, and roles.

The token is checked once, at sign-in; the browser then holds only a random session id in an
HttpOnly, SameSite=Strict cookie, and the session (who, role, CSRF token) lives in Redis with a
TTL. Every form and every script request that changes something carries the session's CSRF token
(a hidden field, or the X-CSRF-Token header). With no token configured at all the console is
open, as the API is: everyone is an anonymous admin, and every page says so.
"""

import json
import secrets
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request, status
from redis.asyncio import Redis

from shared.keys import Keys
from shared.settings import Settings

Role = Literal["viewer", "responder", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "responder", "admin")

COOKIE = "redalert_session"
SESSION_TTL_S = 12 * 3600  # one shift

# What each kind of change needs; the server checks it on every request, the pages only use it
# to decide which buttons to show.
NEEDS: dict[str, Role] = {
    "incident": "responder",  # ack, resolve, reopen
    "label": "responder",  # correct a post's severity
    "silence": "responder",
    "rules": "admin",
    "subscriptions": "admin",
    "sources": "admin",
    "deadletter": "admin",
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    def can(self, action: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(NEEDS[action])


@dataclass(frozen=True)
class Session:
    id: str
    who: Principal
    csrf: str
    open: bool  # no token configured: the console is open to anyone who can reach it


def auth_configured(settings: Settings) -> bool:
    return settings.api_token is not None


def authenticate(settings: Settings, token: str) -> Principal | None:
    """The principal a token stands for, or None. REDALERT_API_TOKEN is an admin."""
    configured = settings.api_token
    if configured is None or not token:
        return None
    if secrets.compare_digest(token.encode(), configured.get_secret_value().encode()):
        return Principal("admin", "admin")
    return None


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings

    async def start(self, who: Principal) -> Session:
        sid = secrets.token_urlsafe(32)
        session = Session(sid, who, secrets.token_urlsafe(32), not auth_configured(self.settings))
        doc = {"name": who.name, "role": who.role, "csrf": session.csrf}
        await self.redis.set(self.keys.console_session(sid), json.dumps(doc), ex=SESSION_TTL_S)
        return session

    async def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        raw = await self.redis.get(self.keys.console_session(sid))
        if raw is None:
            return None
        doc = json.loads(raw)
        is_open = not auth_configured(self.settings)
        if not is_open and doc["name"] == "anonymous":
            return None  # a token was configured since this open session began
        return Session(sid, Principal(doc["name"], doc["role"]), doc["csrf"], is_open)

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
            f"role: {session.who.name} is a {session.who.role}; this needs {NEEDS[action]}",
        )
