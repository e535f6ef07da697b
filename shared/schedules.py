"""On-call schedules: who is on call at a given moment. The computation is pure.

A schedule has rotations (layers) and overrides, all in the schedule's time zone:

- A rotation hands the pager from one member to the next every `length`, starting at `start`
  (its time of day replaced by `handoff` when given). Lengths in whole days or weeks (`1d`,
  `1w`) follow the wall clock: a weekly Monday 09:00 handoff stays at 09:00 local across a
  daylight-saving change (the shift that contains it is an hour shorter or longer). Other
  lengths (`12h`, `90s`) are elapsed time. A rotation may end (`end`) and may be restricted to
  daily hours (`hours: ["09:00-17:00"]`, on `days`): outside them it has nobody.
- Later rotations win: the last rotation with somebody on call at that moment decides.
- Overrides win over every rotation: `person` is on call from `start` to `end`; when overrides
  overlap, the one declared last wins.

Times without a zone are read in the schedule's time zone.
"""

import itertools
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio import Redis

from shared.keys import Keys
from shared.models import WEEKDAYS, ClockRanges, Weekdays, parse_clock_range, utcnow
from shared.people import NAME_PATTERN, known_zone

MAX_SCHEDULES = 1_000
MAX_SEGMENTS = 5_000  # one timeline (an iCalendar export) lists at most this many shifts
DAY = 86_400

_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_HANDOFF = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_length(value: Any) -> Any:
    """`"1w"`, `"1d"`, `"12h"`, `"90s"`, or seconds -> seconds."""
    if isinstance(value, str):
        m = _LENGTH.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a length (like 1w, 1d, 12h or 90s)")
        return float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]
    return value


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=1, max_length=100)
    start: datetime
    length: float = Field(ge=1, le=366 * DAY)  # seconds; written 1w, 1d, 12h, 90s
    handoff: str | None = None  # "09:00": the time of day shifts change hands
    end: datetime | None = None
    hours: ClockRanges = Field(default_factory=list, max_length=20)  # empty: all day
    days: Weekdays = Field(default_factory=lambda: list(WEEKDAYS))  # when `hours` apply

    @field_validator("length", mode="before")
    @classmethod
    def _length(cls, value: Any) -> Any:
        return parse_length(value)

    @field_validator("members")
    @classmethod
    def _names(cls, members: list[str]) -> list[str]:
        for i, name in enumerate(members):
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"members[{i}]: {name[:40]!r} is not a person's name")
        return members

    @field_validator("handoff")
    @classmethod
    def _clock(cls, value: str | None) -> str | None:
        if value is None:
            return None
        m = _HANDOFF.match(value.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"{value!r} is not a time of day like 09:00")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @property
    def calendar(self) -> bool:
        """Whole days follow the wall clock; anything else is elapsed time."""
        return self.length % DAY == 0


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: str = Field(pattern=NAME_PATTERN)
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> "Override":
        if _naive(self.end) <= _naive(self.start):
            raise ValueError("end: must be after start")
        return self


def _naive(t: datetime) -> datetime:
    # Only to order two times given alike (both with or both without a zone).
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


class ScheduleSpec(BaseModel):
    """`POST /v1/schedules`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    timezone: str = "UTC"
    rotations: list[Rotation] = Field(min_length=1, max_length=20)
    overrides: list[Override] = Field(default_factory=list, max_length=1_000)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, tz: str) -> str:
        return known_zone(tz)

    def people(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every person named, with where (for a 422 naming an unknown one)."""
        named: list[tuple[tuple[str | int, ...], str]] = []
        for r, rot in enumerate(self.rotations):
            named += [(("rotations", r, "members", i), m) for i, m in enumerate(rot.members)]
        named += [(("overrides", i, "person"), o.person) for i, o in enumerate(self.overrides)]
        return named


class Schedule(ScheduleSpec):
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# --- the computation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OnCall:
    """Who is on call, what decided it, and the stretch that decided it."""

    person: str
    via: str  # "override 2", "rotation 1" (1-based, as people count)
    start: datetime  # UTC
    end: datetime | None  # UTC; None: open-ended


def _aware(t: datetime, tz: ZoneInfo) -> datetime:
    """A declared time, in UTC: one without a zone is wall time in the schedule's zone."""
    return (t if t.tzinfo else t.replace(tzinfo=tz)).astimezone(UTC)


def _wall(t: datetime, tz: ZoneInfo) -> datetime:
    """UTC -> the schedule's wall clock, as a naive datetime (wall-clock arithmetic)."""
    return t.astimezone(tz).replace(tzinfo=None)


def _from_wall(wall: datetime, tz: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=tz).astimezone(UTC)


def _anchor_wall(rot: Rotation, tz: ZoneInfo) -> datetime:
    """The first handoff, as wall time in the schedule's zone."""
    start = _wall(rot.start, tz) if rot.start.tzinfo else rot.start
    if rot.handoff is not None:
        hour, minute = (int(x) for x in rot.handoff.split(":"))
        start = datetime.combine(start.date(), time(hour, minute))
    return start


def shift_at(rot: Rotation, tz: ZoneInfo, at: datetime) -> tuple[int, datetime, datetime] | None:
    """The rotation's shift containing `at`: (index, start, end) in UTC; None before it starts
    or after it ends. (Hours restrictions are applied by `rotation_at`.)"""
    anchor = _anchor_wall(rot, tz)
    if rot.calendar:
        days = int(rot.length // DAY)
        n = math.floor((_wall(at, tz) - anchor) / timedelta(days=days))
        start = _from_wall(anchor + timedelta(days=days * n), tz)
        end = _from_wall(anchor + timedelta(days=days * (n + 1)), tz)
    else:
        origin = _from_wall(anchor, tz)
        n = math.floor((at - origin).total_seconds() / rot.length)
        start = origin + timedelta(seconds=rot.length * n)
        end = start + timedelta(seconds=rot.length)
    if n < 0:
        return None
    if rot.end is not None:
        stop = _aware(rot.end, tz)
        if at >= stop:
            return None
        end = min(end, stop)
    return n, start, end


def _windows(rot: Rotation, tz: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
    """The rotation's hours on a local day, in UTC (a range may cross midnight)."""
    if WEEKDAYS[day.weekday()] not in rot.days:
        return []
    midnight = datetime.combine(day, time(0))
    out = []
    for text in rot.hours:
        start_s, end_s = parse_clock_range(text)
        if end_s <= start_s:
            end_s += DAY
        out.append(
            (
                _from_wall(midnight + timedelta(seconds=start_s), tz),
                _from_wall(midnight + timedelta(seconds=end_s), tz),
            )
        )
    return out


def _window_at(rot: Rotation, tz: ZoneInfo, at: datetime) -> tuple[datetime, datetime] | None:
    if not rot.hours:
        return at, at  # all day: no restriction
    today = _wall(at, tz).date()
    for offset in (-1, 0):
        for start, end in _windows(rot, tz, today + timedelta(days=offset)):
            if start <= at < end:
                return start, end
    return None


def rotation_at(rot: Rotation, tz: ZoneInfo, at: datetime) -> OnCall | None:
    shift = shift_at(rot, tz, at)
    if shift is None:
        return None
    n, start, end = shift
    window = _window_at(rot, tz, at)
    if window is None:
        return None
    if rot.hours:
        start, end = max(start, window[0]), min(end, window[1])
    return OnCall(rot.members[n % len(rot.members)], "", start, end)


def on_call(schedule: ScheduleSpec, at: datetime) -> OnCall | None:
    """Who is on call at `at` (aware), or None when nobody is."""
    tz = ZoneInfo(schedule.timezone)
    at = at.astimezone(UTC)
    for i in range(len(schedule.overrides) - 1, -1, -1):
        o = schedule.overrides[i]
        start, end = _aware(o.start, tz), _aware(o.end, tz)
        if start <= at < end:
            return OnCall(o.person, f"override {i + 1}", start, end)
    for i in range(len(schedule.rotations) - 1, -1, -1):
        found = rotation_at(schedule.rotations[i], tz, at)
        if found is not None:
            return OnCall(found.person, f"rotation {i + 1}", found.start, found.end)
    return None


@dataclass(frozen=True)
class Segment:
    person: str
    via: str
    start: datetime
    end: datetime


def timeline(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[Segment]:
    """Who is on call from `start` to `end`, as consecutive segments (nobody: no segment);
    at most MAX_SEGMENTS, the earliest."""
    tz = ZoneInfo(schedule.timezone)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    cuts = sorted(t for t in _boundaries(schedule, tz, start, end) if start < t < end)
    points = [start, *dict.fromkeys(cuts), end]
    segments: list[Segment] = []
    for a, b in itertools.pairwise(points):
        who = on_call(schedule, a)
        if who is None:
            continue
        last = segments[-1] if segments else None
        if last is not None and last.end == a and (last.person, last.via) == (who.person, who.via):
            segments[-1] = Segment(last.person, last.via, last.start, b)
        elif len(segments) < MAX_SEGMENTS:
            segments.append(Segment(who.person, who.via, a, b))
        else:
            break
    return segments


def _boundaries(schedule: ScheduleSpec, tz: ZoneInfo, start: datetime, end: datetime):
    """Every moment in (start, end) where who is on call may change."""
    for o in schedule.overrides:
        yield _aware(o.start, tz)
        yield _aware(o.end, tz)
    for rot in schedule.rotations:
        if rot.end is not None:
            yield _aware(rot.end, tz)
        first = shift_at(rot, tz, start)
        t = first[1] if first is not None else _from_wall(_anchor_wall(rot, tz), tz)
        if first is None and t < start:
            t = end  # it ended before the window: no handoffs in it
        for _ in range(MAX_SEGMENTS * 2):
            if t >= end:
                break
            yield t
            shift = shift_at(rot, tz, t)
            if shift is None:
                break
            t = shift[2]
        if rot.hours:
            day = _wall(start, tz).date() - timedelta(days=1)
            while _from_wall(datetime.combine(day, time(0)), tz) < end:
                for a, b in _windows(rot, tz, day):
                    yield a
                    yield b
                day += timedelta(days=1)


# --- storage -------------------------------------------------------------------------------------


class ScheduleStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def all(self) -> list[Schedule]:
        raw = await self.redis.hgetall(self.keys.schedules)
        return sorted((Schedule.model_validate_json(v) for v in raw.values()), key=lambda s: s.name)

    async def get(self, name: str) -> Schedule | None:
        raw = await self.redis.hget(self.keys.schedules, name)
        return Schedule.model_validate_json(raw) if raw else None

    async def count(self) -> int:
        return int(await self.redis.hlen(self.keys.schedules))

    async def put(self, schedule: Schedule) -> None:
        await self.redis.hset(self.keys.schedules, schedule.name, schedule.model_dump_json())

    async def delete(self, name: str) -> bool:
        return bool(await self.redis.hdel(self.keys.schedules, name))
