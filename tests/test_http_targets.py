"""apprise's HTTP targets sent pooled (services/notify/http_targets.py): a receiver gets what
apprise itself would have sent — same method, path and query, body, content type, credentials
and custom headers — plus `X-Redalert-Delivery`, over kept-alive connections."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import apprise
import pytest

from services.notify import http_targets
from services.notify.render import Notification
from services.notify.send import DELIVERY_HEADER, Sender
from shared.models import Subscription
from shared.settings import Settings
from tests.sinks import HttpSink, serve, shut

COMPARED = ("content-type", "authorization", "x-custom", "user-agent")


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    s = HttpSink().start()
    yield s
    s.stop()


def notification(
    body: str = "Coolant leak in module 3 — crew moving to the Russian segment",
) -> Notification:
    now = datetime.now(UTC)
    return Notification(
        event_id="inc1:2",
        incident_id="inc1",
        subscription_id="sub1",
        kind="firing",
        title="[RED ALERT] ISS coolant leak",
        body=body,
        notify_type="failure",
        format="text",
        at=now,
        received_at=now,
    )


async def by_apprise(url: str, n: Notification) -> None:
    ap = apprise.Apprise()
    assert ap.add(url)
    ok = await asyncio.to_thread(
        ap.notify, body=n.body, title=n.title, notify_type=n.notify_type, body_format=n.format
    )
    assert ok


async def by_redalert(url: str, n: Notification) -> None:
    sender = Sender(Settings(_env_file=None))
    try:
        error = await sender.attempt(Subscription(name="s", urls=[url]), 0, n)
    finally:
        await sender.aclose()
    assert error is None


@pytest.mark.parametrize(
    "query",
    [
        "json://{host}/hook",
        "json://{host}/hook?+X-Custom=abc&-team=ops&:version=&:severity=high",
        "json://alice:s3cret@{host}/hook/deeper?method=POST",
        "xml://{host}/hook?+X-Custom=abc",
        "form://{host}/hook?:message=text&-team=ops",
    ],
)
async def test_a_pooled_send_is_what_apprise_would_have_sent(sink: HttpSink, query: str) -> None:
    url = query.format(host=f"127.0.0.1:{sink.port}")
    n = notification()
    await by_apprise(url, n)
    await by_redalert(url, n)
    assert len(sink.requests) == 2
    theirs, ours = sink.requests
    assert ours["path"] == theirs["path"]
    assert ours["raw"] == theirs["raw"]
    for name in COMPARED:
        assert _header(ours, name) == _header(theirs, name), name
    assert _header(ours, DELIVERY_HEADER) == "inc1:2/sub1"
    assert _header(theirs, DELIVERY_HEADER) is None


def test_only_the_three_http_plugins_are_pooled() -> None:
    assert http_targets.pooled(apprise.Apprise.instantiate("json://127.0.0.1/x"))
    assert http_targets.pooled(apprise.Apprise.instantiate("jsons://example.com/x"))
    assert http_targets.pooled(apprise.Apprise.instantiate("xml://127.0.0.1/x"))
    assert http_targets.pooled(apprise.Apprise.instantiate("form://127.0.0.1/x"))
    assert not http_targets.pooled(apprise.Apprise.instantiate("ntfy://127.0.0.1/topic"))


async def test_apprise_sends_the_same_plugins_itself_outside_a_pooled_send(
    sink: HttpSink,
) -> None:
    # The capture is scoped to the pooled send: apprise's own sends (a thread, another
    # context) still reach the target once each.
    url = f"json://127.0.0.1:{sink.port}/hook"
    await by_redalert(url, notification())
    await by_apprise(url, notification())
    await by_apprise(url, notification())
    assert len(sink.requests) == 3


async def test_a_target_that_answers_an_error_is_reported_with_its_status() -> None:
    failing = HttpSink(status=503).start()
    try:
        sender = Sender(Settings(_env_file=None))
        url = f"json://127.0.0.1:{failing.port}/hook"
        error = await sender.attempt(Subscription(name="s", urls=[url]), 0, notification())
        await sender.aclose()
    finally:
        failing.stop()
    assert error == "HTTP 503 Service Unavailable"


async def test_a_target_that_is_down_is_named_in_the_error() -> None:
    sink = HttpSink().start()
    port = sink.port
    sink.stop()  # nothing listens there now
    sender = Sender(Settings(_env_file=None))
    url = f"json://127.0.0.1:{port}/hook"
    error = await sender.attempt(Subscription(name="s", urls=[url]), 0, notification())
    await sender.aclose()
    assert error is not None
    assert f"127.0.0.1:{port}" in error


def _header(request: dict, name: str) -> str | None:
    for key, value in request["headers"].items():
        if key.lower() == name.lower():
            return value
    return None


class _Redirect(BaseHTTPRequestHandler):
    to = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(307)  # keeps the method and body
        self.send_header("location", self.to)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("denied", [False, True])
async def test_redirects_are_followed_and_each_hop_is_checked(sink: HttpSink, denied: bool) -> None:
    host = "127.0.0.2" if denied else "127.0.0.1"
    redirect = type("R", (_Redirect,), {"to": f"http://{host}:{sink.port}/moved-here"})
    server = serve(redirect)
    try:
        sender = Sender(Settings(_env_file=None, target_deny=["127.0.0.2/32"]))
        url = f"json://127.0.0.1:{server.server_address[1]}/hook"
        error = await sender.attempt(Subscription(name="s", urls=[url]), 0, notification())
        await sender.aclose()
    finally:
        shut(server)
    if denied:
        assert error is not None
        assert "127.0.0.2" in error
        assert "TARGET_DENY" in error
        assert sink.requests == []  # the second hop was never made
    else:
        assert error is None
        assert [r["path"] for r in sink.requests] == ["/moved-here"]
        assert sink.messages()[0]["title"] == "[RED ALERT] ISS coolant leak"
