"""apprise's HTTP targets (`json://`, `xml://`, `form://` and their `s` forms), sent pooled.

apprise builds each request; redalert sends it. For these three plugins apprise's own send is a
fresh `requests` call in a worker thread: a new TCP connection, a netrc lookup and a thread hop
per message — a thousand-subscription fan-out spent most of its time there. So the plugin is
asked to notify as usual (its title and body limits, payload fields, `+Header`s, `-param`s,
`:payload` overrides, method, credentials) while its module's `requests.request` is captured
for this call only; the captured request goes out through one pooled aiohttp session:
kept-alive connections per host, no threads, the target policy checked on every hop
(redirects included), and the attempt's timeout.

What a receiver gets is what apprise would have sent, byte for byte (tests/test_http_targets.py
compares the two at a real sink). The capture is scoped by a context variable: apprise sends
of the same plugins from other code paths (threads) are not touched.
"""

import contextvars
import types
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import apprise
import requests
from apprise.conversion import convert_between
from apprise.plugins import custom_form, custom_json, custom_xml
from yarl import URL

from shared.netpolicy import TargetPolicy, TargetRefused

PLUGINS = (custom_json.NotifyJSON, custom_xml.NotifyXML, custom_form.NotifyForm)
MODULES = (custom_json, custom_xml, custom_form)
POOL_PER_HOST = 64


@dataclass
class Captured:
    """One request apprise would have made."""

    method: str
    url: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class _Accepted:
    """What the captured call answers apprise: a success (the real answer comes later)."""

    status_code = 200
    content = b""
    text = ""
    ok = True
    headers: dict[str, str] = {}


_capture: contextvars.ContextVar[list[Captured] | None] = contextvars.ContextVar(
    "redalert_http_capture", default=None
)


def _request(method: str, url: str, **kwargs: Any) -> Any:
    sink = _capture.get()
    if sink is None:
        return requests.request(method, url, **kwargs)
    sink.append(Captured(method, url, kwargs))
    return _Accepted()


def _install() -> None:
    """Give each plugin module a `requests` whose `request` can be captured (idempotent)."""
    for module in MODULES:
        if isinstance(module.requests, types.SimpleNamespace):
            continue
        shim = types.SimpleNamespace(**{n: getattr(requests, n) for n in dir(requests)})
        shim.request = _request
        module.requests = shim


def pooled(plugin: object) -> bool:
    """Is this a plugin redalert sends itself?"""
    return type(plugin) in PLUGINS


def build(
    plugin: Any,
    *,
    title: str,
    body: str,
    notify_type: str,
    body_format: str,
    headers: dict[str, str],
) -> Captured | str:
    """The request apprise would make for this message (or why it would not make one)."""
    _install()
    target = plugin.resolve_format(body_format)
    if plugin.title_maxlen <= 0 and title:  # the title is folded into the body: convert it too
        title = convert_between(body_format, target, content=title)
    body = convert_between(body_format, target, content=body)
    sink: list[Captured] = []
    token = _capture.set(sink)
    try:
        ok = plugin.notify(
            body=body,
            title=title,
            notify_type=apprise.NotifyType(notify_type),
            body_format=target,
        )
    finally:
        _capture.reset(token)
    if not ok or len(sink) != 1:
        return "apprise refused to build the request"
    request = sink[0]
    request.kwargs["headers"] = {**(request.kwargs.get("headers") or {}), **headers}
    return request


class TargetError(Exception):
    """A pooled send that did not get an answer (connection refused, reset, bad redirect)."""


@dataclass
class Answer:
    status: int
    reason: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


MAX_REDIRECTS = 10  # as requests


class PooledHttp:
    """One aiohttp session shared by every send: connections to each target are kept alive.

    aiohttp, not httpx: httpx's connection pool checks every pooled connection on each request
    (quadratic in the connections a fan-out keeps open) and capped a thousand-target fan-out at
    ~150 sends/s; aiohttp's connector is a dict lookup per host.
    """

    def __init__(self, policy: TargetPolicy, timeout_s: float) -> None:
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=POOL_PER_HOST),
                timeout=self.timeout,
                auto_decompress=False,
            )
        return self._session

    async def send(self, request: Captured) -> Answer:
        """Send it; redirects are followed by hand so each hop is checked against the policy
        (the first host was checked by the caller)."""
        k = request.kwargs
        headers = dict(k.get("headers") or {})
        if auth := k.get("auth"):
            headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1] or "")
        data = k.get("data")
        method, url = request.method, URL(request.url)
        params = k.get("params") or None
        follow = bool(k.get("allow_redirects", True))
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._client().request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    ssl=None if k.get("verify", True) else False,
                    allow_redirects=False,
                ) as r:
                    await r.read()
                    location = r.headers.get("Location")
                    if not (follow and r.status in (301, 302, 303, 307, 308) and location):
                        return Answer(r.status, r.reason or "")
                    target = r.url.join(URL(location))
            except aiohttp.ClientError as e:
                raise TargetError(f"{type(e).__name__}: {e}") from e
            if problem := await self.policy.check_url(str(target)):
                raise TargetRefused(problem)
            if target.origin() != url.origin():
                headers.pop("Authorization", None)  # credentials stay with their host
            url, params = target, None
            if r.status == 303 or (r.status in (301, 302) and method == "POST"):
                method, data = "GET", None  # as browsers and requests do
        raise TargetError(f"more than {MAX_REDIRECTS} redirects")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
