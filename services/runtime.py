"""Running services: any of ingest, classify and notify, in one process, until told to stop."""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterable, Iterator
from typing import Any

import uvicorn
from redis.asyncio import Redis

from services import metrics
from services.ingest.app import create_app
from services.ingest.wire import CorkedHttpToolsProtocol
from shared import logscrub
from shared.consumer import StreamConsumer
from shared.redis import broker as make_broker
from shared.redis import redis_client
from shared.settings import Settings
from shared.startup import prepare, settle_gc

log = logging.getLogger("redalert")

SERVICES = ("ingest", "classify", "notify")


class StartupError(RuntimeError):
    """A reason not to start that fits on one line (and names the setting to change)."""


def listen(host: str, port: int, setting: str, *, reuse_port: bool = False) -> socket.socket:
    """Bind the port now, before joining any consumer group, so a busy port fails cleanly.
    `reuse_port`: several processes share it (SO_REUSEPORT; `--workers`), the kernel spreads
    connections among them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server(
            (host, port), family=family, backlog=2048, reuse_port=reuse_port
        )
    except OSError as e:
        raise StartupError(
            f"cannot listen on {host}:{port} ({e.strerror or e}): "
            f"set {setting} to a free port, or stop what is using it"
        ) from None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the runtime owns SIGINT/SIGTERM, and stops uvicorn with everything else


class Runtime:
    def __init__(
        self,
        settings: Settings,
        services: Iterable[str] = SERVICES,
        redis: Redis | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        logscrub.install()  # no log line of any library carries a secret (shared/logscrub.py)
        logscrub.register_settings(settings)
        self.reuse_port = reuse_port
        self.services = list(services)
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
        self._own_redis = redis is None
        self.redis = redis or redis_client(settings)
        self.broker = make_broker(settings)
        self.consumers: list[StreamConsumer] = []
        self.handlers: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: _Server | None = None

    async def start(self) -> None:
        # Ports first: a busy one fails here, before joining any consumer group.
        sock = metrics_sock = None
        host = self.settings.http_host
        try:
            if "ingest" in self.services:
                sock = listen(
                    host, self.settings.http_port, "REDALERT_HTTP_PORT", reuse_port=self.reuse_port
                )
            if self.settings.metrics_port is not None:
                metrics_sock = listen(host, self.settings.metrics_port, "REDALERT_METRICS_PORT")
                self._tasks.append(
                    asyncio.create_task(
                        metrics.serve(
                            metrics_sock,
                            self.redis,
                            self.settings.namespace,
                            self._stop,
                            token=_secret(self.settings.metrics_token),
                        )
                    )
                )
            await self._start(sock)
        except BaseException:
            if sock is not None and self._server is None:
                sock.close()
            if metrics_sock is not None and not self._tasks:
                metrics_sock.close()
            raise

    async def _start(self, sock: socket.socket | None) -> None:
        await prepare(self.redis, self.settings)
        if "classify" in self.services:
            from services.classify.service import ClassifyService

            self.handlers["classify"] = ClassifyService(self.redis, self.settings)
        if "notify" in self.services:
            from services.notify.service import NotifyService

            self.handlers["notify"] = NotifyService(self.redis, self.settings)
            # Escalation policies run in every notify replica (services/notify/escalation.py).
            from services.notify.escalation import EscalationService

            self.handlers["escalation"] = EscalationService(self.redis, self.settings)
        for service in self.handlers.values():
            self.consumers += service.consumers
        for consumer in self.consumers:
            consumer.register(self.broker)
        if self.consumers:
            await self.broker.start()
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(consumer.supervise(self._stop)))
        for service in self.handlers.values():
            for job in getattr(service, "background", list)():
                self._tasks.append(asyncio.create_task(job(self._stop)))
        if sock is not None:
            await self._start_http(sock)
        log.info(
            "redalert running: %s (namespace %s, consumer %s)",
            ", ".join(self.services),
            self.settings.namespace,
            self.settings.consumer_name,
        )

    async def _start_http(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            create_app(self.settings, self.redis, prepared=True),
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="on",
            http=CorkedHttpToolsProtocol,  # one write per response (services/ingest/wire.py)
            # Open connections get half the shutdown budget to finish, then are closed.
            timeout_graceful_shutdown=max(1, int(self.settings.shutdown_s / 2)),
        )
        self._server = _Server(config)
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[sock])))
        while not self._server.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises why the server could not start
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        log.info(
            "ingest listening on http://%s:%d", self.settings.http_host, self.settings.http_port
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop taking work, let in-flight work finish within REDALERT_SHUTDOWN_S, then cancel
        what is left: an entry whose handler is cancelled was not acked, so it stays pending and
        a live replica (or the next start) reclaims it. Nothing accepted is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_s
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
            self._server.config.app.state.closing.set()  # open event streams end now
        if self.consumers:
            # Leaves a second for the rest (cancelling, leaving the groups, closing Redis).
            budget = max(0.1, deadline - loop.time() - 1)
            try:
                await asyncio.wait_for(self.broker.stop(), timeout=budget)
            except TimeoutError:
                log.warning("in-flight work did not finish in time; it stays pending for others")
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=max(0.1, deadline - loop.time() - 0.5))
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=0.5)
        for consumer in self.consumers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.leave(), timeout=0.5)
        if self._own_redis:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.redis.aclose(), timeout=0.5)
        log.info("redalert stopped")


async def serve(settings: Settings, services: Iterable[str], *, reuse_port: bool = False) -> None:
    """Run until SIGINT, SIGTERM or SIGHUP (the terminal closed), then stop cleanly."""
    runtime = Runtime(settings, services, reuse_port=reuse_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, runtime.request_stop)
    try:
        await runtime.start()
        settle_gc()
        await runtime.wait()
    finally:
        await runtime.stop()
