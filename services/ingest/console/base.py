"""What every console page shares: its templates, who is signed in, and checked forms."""

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.ingest.audit import audited
from services.ingest.console import markup
from services.ingest.console.session import (
    COOKIE,
    Session,
    Sessions,
    SignInNeeded,
    check_csrf,
    is_open,
    require,
)
from services.ingest.context import context_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(badge=markup.badge, highlight=markup.highlight, when=markup.when)


def sessions(request: Request) -> Sessions:
    c = context_of(request)
    return Sessions(c.redis, c.keys, c.settings)


async def current(request: Request) -> Session | None:
    return await sessions(request).get(request.cookies.get(COOKIE))


async def viewer(request: Request) -> Session:
    """The signed-in session of a page; with no token configured, an open one is started."""
    session = await current(request)
    if session is not None:
        return session
    c = context_of(request)
    if not await is_open(c.redis, c.settings):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target)
    session = await sessions(request).open_session()
    request.state.new_session = session
    return session


async def acting(
    request: Request, action: str, csrf: str | None = None, *, changes: bool = True
) -> Session:
    """The session of a request that acts: signed in, CSRF checked, role checked. A change
    (`changes`) is recorded in the audit trail as the API's are (services/ingest/audit.py)."""
    session = await viewer(request)
    check_csrf(request, session, csrf)
    require(session, action)
    request.state.principal = session.principal()
    if changes:
        audited(request)
    return session


def render(
    request: Request, session: Session, name: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        name,
        {"session": session, "who": session.who, "csrf": session.csrf, **values},
        status_code=status_code,
    )
    remember(request, response)
    return response


def remember(request: Request, response: Any) -> None:
    """Set the cookie of a session started by this request (open console, or sign-in)."""
    new: Session | None = getattr(request.state, "new_session", None)
    if new is not None:
        set_cookie(request, response, new)


def set_cookie(request: Request, response: Any, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def signin_url(next_path: str) -> str:
    return f"/signin?next={quote(next_path, safe='')}"
