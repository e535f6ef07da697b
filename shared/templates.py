"""Subscription message templates (Jinja2), sandboxed: templates come from API users.

The variables a template sees are built here, once, so the README, the validation of a new
subscription and notify's rendering all agree on them.

A user's template is hostile until proven otherwise, so `render_limited` runs it

- in the sandbox (no attribute access to internals, `range` capped),
- with a **time limit**, checked cooperatively as it runs (every call, attribute access,
  `range` step and output chunk) and enforced from outside: it renders on a small pool of its own
  threads, and the caller stops waiting at the limit;
- with a **size limit** on its output and on the strings and lists it builds (`*`, `**`).

A template that ran out of time without stopping by itself (a loop the checks do not see) keeps
a render thread busy until it ends; it is then quarantined for `QUARANTINE_S` — refused at once,
without using a thread — so it cannot take the pool. Every failure is a `TemplateError`: the
caller sends its default message instead.
"""

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, safe_range

from shared.models import Incident, IncidentEvent, Post
from shared.severity import Severity

__all__ = ["Limits", "RenderLimitError", "TemplateError", "check", "context", "render"]

RENDER_THREADS = 4
QUARANTINE_S = 300.0


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 0.5
    max_chars: int = 20_000


class RenderLimitError(TemplateError):
    """The template ran too long or made something too large."""


class _Budget(threading.local):
    deadline = math.inf
    max_chars = 1_000_000


_budget = _Budget()


def _check_time() -> None:
    if time.monotonic() > _budget.deadline:
        raise RenderLimitError("took longer than its time limit")


def _limited_range(*args: int) -> Any:
    for n, i in enumerate(safe_range(*args)):
        if n % 256 == 0:
            _check_time()
        yield i


class _LimitedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise RenderLimitError("exponent too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > _budget.max_chars:
                    raise RenderLimitError("builds something too large")
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)


@lru_cache(maxsize=2)
def _environment(html: bool) -> SandboxedEnvironment:
    # StrictUndefined: a misspelt variable is an error at validation, not a silent blank message.
    env = _LimitedEnvironment(
        undefined=StrictUndefined, autoescape=html, trim_blocks=True, lstrip_blocks=True
    )
    env.globals["range"] = _limited_range
    return env


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Any:
    return _environment(html).from_string(source)


def render(source: str, variables: dict[str, Any], *, html: bool = False) -> str:
    """Render a trusted template (the defaults); raises TemplateError."""
    return str(_compiled(source, html).render(variables)).strip()


_pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="render")
_quarantine: dict[tuple[str, bool], float] = {}


def _render_within(source: str, variables: dict[str, Any], html: bool, limits: Limits) -> str:
    _budget.deadline = time.monotonic() + limits.timeout_s
    _budget.max_chars = limits.max_chars
    try:
        out: list[str] = []
        size = 0
        for chunk in _compiled(source, html).generate(variables):
            size += len(chunk)
            if size > limits.max_chars:
                raise RenderLimitError(f"longer than {limits.max_chars} characters")
            _check_time()
            out.append(chunk)
        return "".join(out).strip()
    finally:
        _budget.deadline = math.inf


def render_limited(
    source: str, variables: dict[str, Any], *, html: bool = False, limits: Limits | None = None
) -> str:
    """Render a user's template within its limits; any failure is a TemplateError.

    Blocks the calling thread up to the time limit: call it off the event loop.
    """
    limits = limits or Limits()
    key = (source, html)
    if _quarantine.get(key, 0.0) > time.monotonic():
        raise RenderLimitError("ran out of time recently; skipped for a while")
    future = _pool.submit(_render_within, source, variables, html, limits)
    try:
        return future.result(timeout=limits.timeout_s + 0.1)
    except FutureTimeout:
        _quarantine[key] = time.monotonic() + QUARANTINE_S
        if len(_quarantine) > 1024:
            now = time.monotonic()
            for k in [k for k, until in list(_quarantine.items()) if until < now]:
                del _quarantine[k]
        raise RenderLimitError(f"took longer than {limits.timeout_s:g}s") from None
    except TemplateError:
        raise
    except Exception as e:  # ZeroDivisionError, OverflowError… on some incident: its failure
        raise TemplateError(f"{type(e).__name__}: {e}") from None


def context(
    event: IncidentEvent,
    *,
    kind: str,
    tag: str,
    links: dict[str, str | None],
    subscription: str,
) -> dict[str, Any]:
    """What a template can use: `incident`, `event`, `post`, `kind`, `tag`, `links`, …"""
    incident = event.incident
    post = event.post
    return {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "severity": incident.severity.label,
            "severity_id": incident.severity.value,
            "peak_severity": incident.peak_severity.label,
            "topics": incident.topics,
            "sources": incident.sources,
            "post_count": incident.post_count,
            "opened_at": incident.opened_at.isoformat(),
            "acknowledged_by": incident.acknowledged_by,
        },
        "event": {"id": event.id, "kind": event.kind.value, "reason": event.reason},
        "post": None
        if post is None
        else {
            "author": post.author or post.source,
            "source": post.source,
            "text": post.text,
            "url": post.url,
        },
        "kind": kind,
        "tag": tag,
        "severity": incident.severity.label,
        "links": links,
        "subscription": subscription,
    }


def sample_context() -> dict[str, Any]:
    now = datetime.now(UTC)
    incident = Incident(
        id="0a1b2c3d4e5f",
        title="ISS: there is a leak coming from the radiator on MLM",
        severity=Severity.RED_ALERT,
        peak_severity=Severity.RED_ALERT,
        topics=["iss"],
        sources=["mastodon"],
        opened_at=now,
        updated_at=now,
        post_count=1,
        version=1,
    )
    event = IncidentEvent(
        id="0a1b2c3d4e5f:1",
        kind="opened",
        incident=incident,
        reason="opened at red alert",
        post=Post(source="mastodon", author="watcher", text=incident.title),
    )
    base = "https://redalert.example/v1/incidents/0a1b2c3d4e5f"
    links = {"incident": base, "ack": f"{base}/ack/link", "resolve": f"{base}/resolve/link"}
    return context(event, kind="firing", tag="RED ALERT", links=links, subscription="sample")


def check(source: str, *, html: bool = False) -> str | None:
    """None when the template renders on a sample incident; otherwise what is wrong."""
    try:
        render_limited(source, sample_context(), html=html)
    except TemplateError as e:
        line = getattr(e, "lineno", None)
        where = f"line {line}: " if line else ""
        return f"{where}{e.message or type(e).__name__}"
    return None
