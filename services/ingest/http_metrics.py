"""Counting HTTP requests by route template (never the raw path: ids would explode the series)."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception is a 500 to the client

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "?")
            metrics.http_requests.labels(method, route, str(status)).inc()
            metrics.http_seconds.labels(method, route).observe(time.perf_counter() - started)
