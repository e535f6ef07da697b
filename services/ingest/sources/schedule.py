"""When a source is polled next: its interval after a success, a growing backoff after failures."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def next_delay(
    interval_s: float,
    failures: int,
    *,
    backoff_s: float,
    backoff_max_s: float,
    retry_after_s: float | None = None,
) -> float:
    """Seconds until the next poll.

    After a success (`failures` = 0), the source's interval. After the n-th failure in a row,
    `backoff_s` doubled n-1 times, capped at `backoff_max_s` — and never sooner than the server's
    Retry-After (itself capped, so a bogus header cannot silence a source for days).
    """
    if failures <= 0:
        return interval_s
    delay = min(backoff_max_s, backoff_s * 2 ** min(failures - 1, 32))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, backoff_max_s))
    return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
