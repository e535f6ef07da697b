"""Signing in and out of the console."""

import secrets
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.ingest.console.base import current, sessions, set_cookie, templates
from services.ingest.console.session import COOKIE, check_csrf, is_open
from services.ingest.context import context_of

router = APIRouter(include_in_schema=False)

SIGNIN_COOKIE = "redalert_signin"  # double-submit CSRF token of the sign-in form itself


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _form(request: Request, next_path: str, error: str = "", status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "signin.html",
        {"next": _safe_next(next_path), "error": error, "signin_csrf": token, "session": None},
        status_code=status_code,
    )
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/signin")
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, next: str = "/") -> Response:
    c = context_of(request)
    if await is_open(c.redis, c.settings):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _form(request, next)


@router.post("/signin")
async def signin(
    request: Request,
    token: str = Form("", max_length=1_000),
    csrf: str = Form(""),
    next: str = Form("/"),
) -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf.encode(), expected.encode()):
        return _form(request, next, "The form expired: please sign in again.", 403)
    session = await sessions(request).sign_in(token.strip())
    if session is None:
        return _form(request, next, "That token is not valid.", 401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookie(request, response, session)
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout")
async def signout(request: Request, csrf: str = Form("")) -> Response:
    session = await current(request)
    if session is not None:
        check_csrf(request, session, csrf)
        await sessions(request).end(session.id)
    c = context_of(request)
    response = RedirectResponse("/" if await is_open(c.redis, c.settings) else "/signin", 303)
    response.delete_cookie(COOKIE, path="/")
    return response
