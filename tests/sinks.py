"""Real local servers that apprise delivers to in tests."""

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # fan-out tests connect hundreds at once; the default backlog is 5


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A real HTTP server on a free local port, answering from a background thread."""
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


class HttpSink:
    """An HTTP server recording every request; `json://127.0.0.1:<port>/` delivers here.

    `fail_first=N` answers 500 to the first N requests; `status` fixes the answer for all;
    `delay` holds each answer that many seconds. A request is recorded once answered, with
    `arrived` (time.monotonic() when it came in).
    """

    def __init__(self, *, fail_first: int = 0, status: int = 200, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.status = status
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.on_request: Callable[[dict[str, Any]], None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the requests that were answered with success."""
        with self._lock:
            return [r["json"] for r in self.requests if r["ok"] and r["json"] is not None]

    def start(self) -> "HttpSink":
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with sink._lock:
                    sink.attempts += 1
                    failing = sink.attempts <= sink.fail_first
                status = 500 if failing else sink.status
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                record = {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "raw": raw,
                    "json": body,
                    "status": status,
                    "ok": status < 300,
                    "arrived": arrived,  # time.monotonic() when the request came in
                }
                if sink.delay:
                    threading.Event().wait(sink.delay)
                with sink._lock:
                    sink.requests.append(record)
                if sink.on_request:
                    sink.on_request(record)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except ConnectionError:
                    pass  # the sender gave up (its timeout) or died (a kill -9 test)

            do_PUT = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        shut(self._server)

    def __enter__(self) -> "HttpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SmtpSink:
    """An SMTP server (aiosmtpd, in its own thread) keeping every message it accepts.

    With `login` and `password`, it advertises AUTH (without TLS, as a local test server may)
    and accepts only those credentials; `mail_url` is the apprise `mailto://` URL for it.
    """

    def __init__(self, *, login: str | None = None, password: str | None = None) -> None:
        self.login, self.password = login, password
        self.messages: list[Any] = []  # email.message.EmailMessage
        self.port = 0
        self._controller: Any = None

    @property
    def mail_url(self) -> str:
        auth = f"{self.login}:{self.password}@" if self.login else ""
        return (
            f"mailto://{auth}127.0.0.1:{self.port}"
            "?from=redalert@example.org&to=ops@example.org&mode=insecure"
        )

    def start(self) -> "SmtpSink":
        import email
        import email.policy

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        from shared.embedded import free_port

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
            ok = auth.login.decode() == self.login and auth.password.decode() == self.password
            return AuthResult(success=ok)

        options: dict[str, Any] = {}
        if self.login:
            options = {"authenticator": authenticate, "auth_require_tls": False}
        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
