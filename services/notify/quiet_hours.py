"""Quiet hours: is a subscription's "do not disturb" on now, and until when? Pure.

Ranges are wall-clock times in the subscription's time zone and may cross midnight
(`22:00-07:00`); `days` names the days a range *starts* on. Adjacent ranges join
(`fri 18:00-24:00` then `sat 00:00-24:00` is one quiet stretch).
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.models import WEEKDAYS, QuietHours, parse_clock_range


def _periods(qh: QuietHours, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    if WEEKDAYS[day.weekday()] not in qh.days:
        return []
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    out = []
    for text in qh.ranges:
        start_s, end_s = parse_clock_range(text)
        if end_s <= start_s:
            end_s += 86_400  # crosses midnight
        # Wall-clock arithmetic: 22:00 stays 22:00 local on the days clocks change.
        out.append((midnight + timedelta(seconds=start_s), midnight + timedelta(seconds=end_s)))
    return out


def quiet_until(qh: QuietHours | None, now: datetime) -> datetime | None:
    """The end of the quiet stretch `now` falls in, or None when it is not quiet."""
    if qh is None:
        return None
    tz = ZoneInfo(qh.timezone)
    local = now.astimezone(tz)
    periods = [
        p for offset in (-1, 0, 1, 2) for p in _periods(qh, local.date() + timedelta(offset), tz)
    ]
    end = None
    for start, stop in periods:
        if start <= local < stop:
            end = stop if end is None else max(end, stop)
    if end is None:
        return None
    extended = True
    while extended:  # a range starting where this one stops continues the quiet
        extended = False
        for start, stop in periods:
            if start <= end < stop:
                end, extended = stop, True
    return end.astimezone(UTC)
