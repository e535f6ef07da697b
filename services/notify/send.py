"""Sending through apprise: one URL at a time, so each URL succeeds, fails and retries on its own.

apprise's per-service throttle (5.5 s between messages for email, ntfy, …) is switched off on
every plugin: redalert owns rate limiting, and fan-out must not crawl. Errors are reported with
URLs masked and known secrets redacted.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass

import apprise

from services.notify.render import Notification
from shared import targets
from shared.secrets import mask_url, redact, url_secrets
from shared.settings import Settings

log = logging.getLogger("redalert.notify")


@dataclass
class UrlResult:
    index: int  # position of the URL in the subscription's list
    url: str  # masked
    ok: bool
    attempts: int
    latency_ms: float
    error: str | None = None


class Sender:
    def __init__(self, settings: Settings) -> None:
        targets.register()
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.send_concurrency)

    async def send(
        self, urls: list[str], n: Notification, indices: list[int] | None = None
    ) -> list[UrlResult]:
        """Send to each URL (or only those at `indices`), retrying each failed URL alone."""
        wanted = range(len(urls)) if indices is None else indices
        return list(await asyncio.gather(*(self._send_with_retry(urls[i], i, n) for i in wanted)))

    async def _send_with_retry(self, url: str, index: int, n: Notification) -> UrlResult:
        attempts = self.settings.send_attempts
        started = time.perf_counter()
        error = None
        for attempt in range(1, attempts + 1):
            error = await self._send_once(url, n)
            if error is None:
                return UrlResult(index, mask_url(url), True, attempt, _ms(started))
            if attempt < attempts:
                delay = self.settings.send_backoff_s * 2 ** (attempt - 1)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: no thundering herd
        return UrlResult(index, mask_url(url), False, attempts, _ms(started), error)

    async def _send_once(self, url: str, n: Notification) -> str | None:
        """None on success, else the error (masked)."""
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return "apprise cannot load this URL"
        plugin.request_rate_per_sec = 0  # type: ignore[attr-defined]
        ap = apprise.Apprise()
        ap.add(plugin)
        async with self._slots:
            try:
                result = await asyncio.wait_for(
                    ap.async_notify(body=n.body, title=n.title, notify_type=n.notify_type),
                    timeout=self.settings.send_timeout_s,
                )
            except TimeoutError:
                return f"timed out after {self.settings.send_timeout_s:g}s"
            except Exception as e:  # a plugin bug is this URL's failure, not the batch's
                return redact(f"{type(e).__name__}: {e}", url_secrets(url))
        if result:
            return None
        return redact(_errors(result) or f"apprise status {result.status.name}", url_secrets(url))


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
