"""Counting HTTP requests by route template (never the raw path: ids would explode the series)."""

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The series of each (method, route, status) seen, found once: prometheus_client's
        # labels() takes a lock and builds a key on every call.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
            series = self._series.get((method, route, status))
            if series is None:
                series = (
                    metrics.http_requests.labels(method, route, str(status)),
                    metrics.http_seconds.labels(method, route),
                )
                self._series[(method, route, status)] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - started)
