"""The console: web pages, served by ingest at `/`, for handling incidents and tuning rules.

Server-rendered (Jinja2) with one small script for live updates (fetch + Server-Sent Events).
Every asset is served from this package — no CDN, nothing to build — so it works offline.
"""

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from services.ingest.console import access, incidents, live, ops, workbench
from services.ingest.console.base import HERE, current, signin_url, templates
from services.ingest.console.session import SignInNeeded
from services.ingest.errors import field_errors, summary

ROUTERS = (access, incidents, live, ops, workbench)


def install(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    for module in ROUTERS:
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(signin_url(exc.next_path), status_code=303)

    def for_a_person(request: Request) -> bool:
        # The API answers JSON as before; a person's browser gets a page that says what to do.
        html = "text/html" in request.headers.get("accept", "")
        return html and not request.url.path.startswith("/v1/")

    async def page(request: Request, status: int, detail: object) -> Response:
        session = await current(request)
        values = {"status": status, "detail": detail, "session": session}
        if session is not None:
            values.update(who=session.who, csrf=session.csrf)
        return templates.TemplateResponse(request, "error.html", values, status_code=status)

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException) -> Response:
        if not for_a_person(request):
            return await http_exception_handler(request, exc)
        return await page(request, exc.status_code, exc.detail)

    api_invalid = app.exception_handlers[RequestValidationError]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not for_a_person(request):
            return await api_invalid(request, exc)
        return await page(request, 422, summary(field_errors(exc.errors())))
