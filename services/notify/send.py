"""Sending: each URL of a subscription on its own, so each succeeds, fails and retries alone.

- apprise's per-service throttle (5.5 s between messages for email, ntfy, …) is switched off on
  every plugin: redalert owns rate limiting, and fan-out must not crawl;
- apprise runs blocking sends on its own thread pools, sized min(32, cpus + 4) by default — six
  threads here — so they are widened to `send_concurrency`: the event loop never blocks, and
  fan-out to a thousand subscriptions is not six sends at a time;
- a failed URL is retried alone, with exponential backoff and jitter, up to `send_attempts`;
  every attempt is reported (the caller records each one);
- a URL whose circuit is open is not tried (the caller passes it in `skip`);
- webhook subscriptions are POSTed with httpx, signed (services/notify/webhook.py);
- every HTTP delivery carries `X-Redalert-Delivery: <event id>/<subscription id>`, the same on
  every retry and after a takeover: webhooks, and the apprise targets that take custom headers
  (`json://`, `xml://`, `form://`), so a receiver deduplicating on it sees each message once.

The retry loop here serves test messages and replays; notify's own sends go through their URL's
lane (services/notify/lanes.py), which calls `attempt` once per try.

Errors are reported with URLs masked and known secrets redacted.
"""

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

import apprise
import httpx

from services.notify import http_targets, urgency, webhook
from services.notify.render import Notification
from shared import logscrub, targets
from shared.links import sign_links
from shared.models import Subscription, utcnow
from shared.netpolicy import TargetPolicy, TargetRefused
from shared.secrets import mask_plugin, mask_url, redact, url_secrets
from shared.settings import Settings
from shared.url_hints import hint as url_hint

log = logging.getLogger("redalert.notify")

PLUGIN_CACHE = 4096
DELIVERY_HEADER = "X-Redalert-Delivery"


def delivery_id(n: Notification) -> str:
    """The idempotency key of one message to one subscription: the same on every retry."""
    return f"{n.event_id}/{n.subscription_id}"


@dataclass
class Attempt:
    number: int
    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass
class UrlResult:
    index: int  # position of the URL in the subscription's list (0 for a webhook)
    url: str  # masked
    attempts: list[Attempt] = field(default_factory=list)
    skipped: str | None = None  # not tried, and why (its circuit is open)

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def error(self) -> str | None:
        if self.skipped:
            return self.skipped
        return None if self.ok or not self.attempts else self.attempts[-1].error


def target_urls(sub: Subscription) -> list[str]:
    """A subscription's targets, by index: its apprise URLs, or its webhook's URL."""
    return [sub.webhook.url] if sub.webhook is not None else list(sub.urls)


def widen_apprise_pools(workers: int) -> None:
    """Give apprise's shared executors `workers` threads (they are module globals, private API).

    tests/test_send.py checks that this still takes effect, so an apprise upgrade that moves
    them fails a test instead of quietly capping fan-out at six sends in flight.
    """
    core = apprise.apprise
    for name, lock in (
        ("_shared_executor", "_shared_executor_lock"),
        ("_coordinator_executor", "_coordinator_executor_lock"),
    ):
        if not hasattr(core, name) or not hasattr(core, lock):
            log.warning("apprise has no %s: its thread pool keeps its default size", name)
            continue
        with getattr(core, lock):
            current = getattr(core, name)
            if current is None or current._max_workers < workers:
                pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apprise")
                setattr(core, name, pool)
                if current is not None:
                    current.shutdown(wait=False)


class Sender:
    def __init__(self, settings: Settings) -> None:
        targets.register()
        widen_apprise_pools(settings.send_concurrency)
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.send_concurrency)
        # URL -> its apprise plugin (None: apprise cannot load it) and how it is shown, masked.
        self._plugins: OrderedDict[str, tuple[apprise.plugins.NotifyBase | None, str]] = (
            OrderedDict()
        )
        self._http: httpx.AsyncClient | None = None
        self.policy = TargetPolicy.of(settings)  # where sends may connect (shared/netpolicy.py)
        # json://, xml://, form://: apprise builds the request, a pooled client sends it.
        self._pooled = http_targets.PooledHttp(self.policy, settings.send_timeout_s)
        # Signs the action links of each message as it goes out (shared/links.py); unset, they
        # stay unsigned and do nothing.
        self.link_secret: bytes | None = None

    async def deliver(
        self,
        sub: Subscription,
        n: Notification,
        *,
        indices: list[int] | None = None,
        skip: dict[int, str] | None = None,
        attempts: int | None = None,
    ) -> list[UrlResult]:
        """Send to each target (or only those at `indices`), retrying each failed one alone."""
        n = self.signed(n)
        urls = target_urls(sub)
        wanted = [i for i in (range(len(urls)) if indices is None else indices) if i < len(urls)]
        skip = skip or {}
        tries = attempts or self.settings.send_attempts

        async def one(i: int) -> UrlResult:
            shown = mask_url(urls[i]) if sub.webhook is not None else self._plugin(urls[i])[1]
            result = UrlResult(i, shown)
            if i in skip:
                result.skipped = skip[i]
                return result
            send = partial(self.attempt, sub, i, n)
            result.attempts = await self._with_retry(send, tries)
            return result

        return list(await asyncio.gather(*(one(i) for i in wanted)))

    def signed(self, n: Notification) -> Notification:
        if self.link_secret is None:
            return n
        secret, settings = self.link_secret, self.settings
        return n.model_copy(
            update={
                "title": sign_links(n.title, settings, secret),
                "body": sign_links(n.body, settings, secret),
            }
        )

    def shown(self, sub: Subscription, index: int) -> str:
        """How a target is shown: masked."""
        url = target_urls(sub)[index]
        return mask_url(url) if sub.webhook is not None else self._plugin(url)[1]

    async def attempt(self, sub: Subscription, index: int, n: Notification) -> str | None:
        """One try of one target: None on success, else the error (masked)."""
        url = target_urls(sub)[index]
        logscrub.register(*url_secrets(url), sub.webhook.secret if sub.webhook else None)
        if problem := await self.policy.check_url(url):  # before connecting, on its address
            return f"refused: {problem}"
        if sub.webhook is not None:
            return await self._post(url, sub.webhook.secret, n)
        return await self._notify(url, n)

    async def _with_retry(
        self, send: Callable[[], Awaitable[str | None]], tries: int
    ) -> list[Attempt]:
        attempts: list[Attempt] = []
        for number in range(1, tries + 1):
            started = time.perf_counter()
            error = await send()
            attempts.append(Attempt(number, error is None, _ms(started), error))
            if error is None:
                break
            if number < tries:
                delay = self.settings.send_backoff_s * 2 ** (number - 1)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: no thundering herd
        return attempts

    def _plugin(self, url: str) -> "tuple[apprise.plugins.NotifyBase | None, str]":
        # Parsing an apprise URL costs ~0.3 ms: at a thousand subscriptions, keep the plugins.
        found = self._plugins.get(url)
        if found is None:
            found = self._plugins[url] = _load(url)
            if len(self._plugins) > PLUGIN_CACHE:
                self._plugins.popitem(last=False)
        else:
            self._plugins.move_to_end(url)
        return found

    async def _notify(self, url: str, n: Notification) -> str | None:
        """One apprise send: None on success, else the error (masked)."""
        plugin, _shown = self._plugin(url)
        if plugin is None:
            return f"apprise cannot load this URL: {url_hint(url)}"
        if http_targets.pooled(plugin):
            return await self._send_pooled(plugin, url, n)
        plugin = urgency.apply(plugin, url, urgency.Urgency(n.urgency))  # a copy, if it applies
        ap = apprise.Apprise()
        ap.add(plugin)
        async with self._slots:
            try:
                async with asyncio.timeout(self.settings.send_timeout_s):
                    result = await ap.async_notify(
                        body=n.body, title=n.title, notify_type=n.notify_type, body_format=n.format
                    )
            except TimeoutError:
                return f"timed out after {self.settings.send_timeout_s:g}s"
            except Exception as e:  # a plugin bug is this URL's failure, not the batch's
                return redact(f"{type(e).__name__}: {e}", url_secrets(url))
        if result:
            return None
        error = _readable(_errors(result), plugin) or f"apprise status {result.status.name}"
        return redact(error, url_secrets(url))

    async def _send_pooled(self, plugin: object, url: str, n: Notification) -> str | None:
        """One send of an apprise HTTP target through the pooled client (http_targets.py)."""
        async with self._slots:  # built only once it can go: thousands may be waiting
            request = http_targets.build(
                plugin,
                title=n.title,
                body=n.body,
                notify_type=n.notify_type,
                body_format=n.format,
                headers={DELIVERY_HEADER: delivery_id(n)},
            )
            if isinstance(request, str):
                return request
            try:
                # A deadline on this task, not wait_for's extra task per send.
                async with asyncio.timeout(self.settings.send_timeout_s):
                    r = await self._pooled.send(request)
            except TimeoutError:
                return f"timed out after {self.settings.send_timeout_s:g}s"
            except TargetRefused as e:
                return f"refused: {e}"
            except http_targets.TargetError as e:
                where = urlsplit(request.url).netloc.rsplit("@", 1)[-1]
                return redact(f"{e} (no answer from {where}: is the target up?)", url_secrets(url))
        if r.ok:
            return None
        return f"HTTP {r.status} {r.reason}".strip()

    async def _post(self, url: str, secret: str, n: Notification) -> str | None:
        """One webhook POST: None on a 2xx answer, else the error (masked)."""
        raw, headers = webhook.request(n, secret, utcnow())
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.send_timeout_s,
                event_hooks={"request": [self.policy.request_hook()]},
            )
        async with self._slots:
            try:
                r = await self._http.post(url, content=raw, headers=headers)
            except httpx.TimeoutException:
                return f"timed out after {self.settings.send_timeout_s:g}s"
            except httpx.HTTPError as e:
                return redact(f"{type(e).__name__}: {e}", [*url_secrets(url), secret])
            except TargetRefused as e:
                return f"refused: {e}"
        if r.is_success:
            return None
        return f"HTTP {r.status_code} {r.reason_phrase}".strip()

    async def warm(self, urls: list[str]) -> None:
        """Parse these apprise URLs now (at start, when subscriptions change), not on a send.

        Parsing one costs ~1 ms; a thousand subscriptions' first alert should not pay it. They
        are parsed in a thread, so the event loop goes on meanwhile.
        """
        missing = [u for u in dict.fromkeys(urls) if u not in self._plugins]
        if missing:
            parsed = await asyncio.to_thread(lambda: [_load(u) for u in missing])
            for url, found in zip(missing, parsed, strict=True):
                self._plugins[url] = found
            while len(self._plugins) > PLUGIN_CACHE:
                self._plugins.popitem(last=False)

    async def aclose(self) -> None:
        await self._pooled.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _readable(error: str, plugin: "apprise.plugins.NotifyBase") -> str:
    """Some plugins say "notification to None" when they fail to connect: name the target."""
    host = getattr(plugin, "host", None)
    port = getattr(plugin, "port", None)
    where = f"{host}:{port}" if host and port else host
    if where:
        error = error.replace(" to None", f" to {where}")
        if "Connection error" in error:
            error += f" (nothing answered at {where}: is the target up?)"
    return error


def _load(url: str) -> "tuple[apprise.plugins.NotifyBase | None, str]":
    """An apprise URL's plugin (None: apprise cannot load it) and how it is shown, masked."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is not None:
        plugin.request_rate_per_sec = 0  # redalert owns rate limits (module docstring)
    return plugin, mask_plugin(plugin) if plugin else mask_url(url)


def _errors(result: "apprise.AppriseResult") -> str:
    messages = []
    for service in result.results:
        for attempt in service.attempts:
            for entry in attempt.logs:
                level = entry.level if isinstance(entry.level, int) else logging.WARNING
                if level >= logging.WARNING:
                    messages.append(str(entry.message).strip())
    return "; ".join(dict.fromkeys(messages))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
