"""The console: web pages, served by ingest at `/`, for handling incidents and tuning rules.

Server-rendered (Jinja2) with one small script for live updates (fetch + Server-Sent Events).
Every asset is served from this package — no CDN, nothing to build — so it works offline.
"""

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from services.ingest.console import access, incidents, live, ops, workbench
from services.ingest.console.base import HERE, current, signin_url, templates
from services.ingest.console.session import SignInNeeded

ROUTERS = (access, incidents, live, ops, workbench)


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    for module in ROUTERS:
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(signin_url(exc.next_path), status_code=303)

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException) -> Response:
        # The API answers JSON as before; a person's browser gets a page that says what to do.
        if request.url.path.startswith("/v1/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return await http_exception_handler(request, exc)
        session = await current(request)
        values = {"status": exc.status_code, "detail": exc.detail, "session": session}
        if session is not None:
            values.update(who=session.who, csrf=session.csrf)
        return templates.TemplateResponse(
            request, "error.html", values, status_code=exc.status_code
        )
