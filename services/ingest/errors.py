"""Errors a client can act on: every 4xx names the field and never echoes submitted secrets."""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.context import Replayed
from shared.redis import NotReplicated

RETRY_AFTER_S = 5  # what a 503 asks clients to wait while Redis is unreachable


def field_errors(errors: Sequence[Any], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    # "input" and "ctx" are dropped: the input may be an apprise URL with a token in it.
    return [
        {
            "loc": [*prefix, *e["loc"]],
            "msg": e["msg"].removeprefix("Value error, "),
            "type": e["type"],
        }
        for e in errors
    ]


def summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:10])


def unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"error": summary(errors), "detail": errors})


class Invalid(Exception):
    """Raise from a route that validates a body itself: answered as a 422 naming the fields."""

    def __init__(self, e: ValidationError, prefix: tuple[Any, ...] = ("body",)) -> None:
        super().__init__(str(e))
        self.errors = field_errors(e.errors(), prefix)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return unprocessable(field_errors(exc.errors()))

    @app.exception_handler(NotReplicated)
    async def _not_replicated(_: Request, exc: NotReplicated) -> JSONResponse:
        # Published on the primary, but not known to survive its loss: the client retries
        # (dedup makes the retry safe) rather than trust a 202.
        return JSONResponse(status_code=503, content={"error": str(exc)})

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return unprocessable(exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a body it cannot decode (not UTF-8, not JSON) with a bare 400; every
        # other bad input here is a 422 naming the field, so this is one too.
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return unprocessable(
                [{"loc": ["body"], "msg": "not valid JSON (UTF-8)", "type": "json_invalid"}]
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(Replayed)
    async def _replayed(_: Request, exc: Replayed) -> JSONResponse:
        # Acted on once already: a sender retrying gets a 2xx and stops; nothing happens twice.
        return JSONResponse(status_code=200, content={"replayed": True, "accepted": []})

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _redis_down(_: Request, exc: Exception) -> JSONResponse:
        # Not the client's fault, and not for ever: say so, and when to try again.
        return JSONResponse(
            status_code=503,
            content={"error": "redis unreachable: try again shortly"},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )


class BodyLimit:
    """413 for bodies over the limit, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={
                "error": f"body: larger than {self.max_bytes} bytes (REDALERT_MAX_BODY_BYTES)"
            },
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
