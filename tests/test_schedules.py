"""On-call schedules without Redis: rotations across handoffs and daylight-saving changes,
overrides, layers, hours, timelines and the iCalendar export (parsed by the icalendar package)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from pydantic import ValidationError

from shared import ical
from shared.schedules import ScheduleSpec, on_call, parse_length, timeline

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def schedule(**fields) -> ScheduleSpec:
    fields.setdefault("name", "db-primary")
    fields.setdefault("timezone", "Europe/Paris")
    fields.setdefault(
        "rotations",
        [
            # Weekly, Monday 09:00 Paris time; 2026-03-16 is a Monday.
            {"members": ["alice", "bob", "carol"], "start": "2026-03-16T00:00:00",
             "length": "1w", "handoff": "09:00"},
        ],
    )  # fmt: skip
    return ScheduleSpec.model_validate(fields)


def who(s: ScheduleSpec, at: datetime) -> str | None:
    found = on_call(s, at)
    return found.person if found else None


def test_a_weekly_rotation_hands_over_at_the_handoff_time():
    s = schedule()
    assert who(s, paris(2026, 3, 16, 8, 59)) is None  # before its first handoff
    assert who(s, paris(2026, 3, 16, 9, 0)) == "alice"
    assert who(s, paris(2026, 3, 23, 8, 59, 59)) == "alice"
    assert who(s, paris(2026, 3, 23, 9, 0)) == "bob"
    assert who(s, paris(2026, 4, 6, 9, 0)) == "alice"  # round again after three weeks
    found = on_call(s, paris(2026, 3, 18, 12, 0))
    assert found is not None
    assert found.via == "rotation 1"
    assert (found.start, found.end) == (paris(2026, 3, 16, 9, 0), paris(2026, 3, 23, 9, 0))


def test_the_handoff_stays_at_local_time_across_daylight_saving_changes():
    s = schedule()
    # Clocks go forward on Sunday 2026-03-29: Monday 09:00 is 07:00 UTC, no longer 08:00.
    assert who(s, utc(2026, 3, 30, 6, 59)) == "bob"
    assert who(s, utc(2026, 3, 30, 7, 0)) == "carol"  # elapsed-time weeks would say bob
    shift = on_call(s, utc(2026, 3, 28, 12, 0))
    assert shift is not None
    assert shift.end - shift.start == timedelta(days=7, hours=-1)  # the short week
    # Clocks go back on Sunday 2026-10-25: Monday 09:00 is 08:00 UTC again.
    assert who(s, utc(2026, 10, 26, 7, 59)) == who(s, utc(2026, 10, 20, 12, 0))
    assert who(s, utc(2026, 10, 26, 8, 0)) != who(s, utc(2026, 10, 26, 7, 59))
    long_week = on_call(s, utc(2026, 10, 24, 12, 0))
    assert long_week is not None
    assert long_week.end - long_week.start == timedelta(days=7, hours=1)


def test_an_override_wins_across_a_handoff_and_only_inside_its_window():
    s = schedule(
        overrides=[{"person": "dave", "start": "2026-03-22T20:00:00", "end": "2026-03-23T12:00:00"}]
    )
    assert who(s, paris(2026, 3, 22, 19, 59)) == "alice"
    assert who(s, paris(2026, 3, 22, 20, 0)) == "dave"
    assert who(s, paris(2026, 3, 23, 9, 30)) == "dave"  # past the handoff to bob: still dave
    assert who(s, paris(2026, 3, 23, 12, 0)) == "bob"  # the window is [start, end)
    found = on_call(s, paris(2026, 3, 23, 10, 0))
    assert found is not None
    assert found.via == "override 1"
    assert found.end == paris(2026, 3, 23, 12, 0)


def test_overlapping_overrides_the_last_declared_wins_and_zones_are_honoured():
    s = schedule(
        overrides=[
            {"person": "dave", "start": "2026-03-18T00:00:00Z", "end": "2026-03-19T00:00:00Z"},
            {"person": "erin", "start": "2026-03-18T10:00:00Z", "end": "2026-03-18T11:00:00Z"},
        ]
    )
    assert who(s, utc(2026, 3, 18, 9, 0)) == "dave"
    assert who(s, utc(2026, 3, 18, 10, 30)) == "erin"
    assert who(s, utc(2026, 3, 18, 11, 0)) == "dave"
    assert who(s, utc(2026, 3, 17, 23, 30)) == "alice"  # 00:30 Paris, but the override said Z


def test_later_rotations_win_where_they_have_someone():
    s = schedule(
        rotations=[
            {"members": ["alice", "bob"], "start": "2026-03-16", "length": "1w",
             "handoff": "09:00"},
            # Nights on weekdays: a second layer, only 22:00-07:00 on the days it starts.
            {"members": ["nina", "omar"], "start": "2026-03-16", "length": "1d",
             "handoff": "22:00", "hours": ["22:00-07:00"],
             "days": ["mon", "tue", "wed", "thu", "fri"]},
        ]
    )  # fmt: skip
    assert who(s, paris(2026, 3, 17, 12, 0)) == "alice"
    assert who(s, paris(2026, 3, 17, 23, 0)) == "omar"  # day 1 of the daily rotation
    assert who(s, paris(2026, 3, 18, 6, 59)) == "omar"  # the range crosses midnight
    assert who(s, paris(2026, 3, 18, 7, 0)) == "alice"
    assert who(s, paris(2026, 3, 21, 23, 0)) == "alice"  # saturday: no night layer
    night = on_call(s, paris(2026, 3, 17, 23, 0))
    assert night is not None
    assert night.via == "rotation 2"
    assert (night.start, night.end) == (paris(2026, 3, 17, 22, 0), paris(2026, 3, 18, 7, 0))


def test_elapsed_lengths_and_an_end():
    s = schedule(
        timezone="UTC",
        rotations=[
            {"members": ["a", "b"], "start": "2026-01-01T00:00:00Z", "length": "3s"},
            {"members": ["x"], "start": "2026-01-01T00:00:00Z", "length": "12h",
             "end": "2026-01-01T00:00:10Z"},
        ],
    )  # fmt: skip
    assert who(s, utc(2026, 1, 1, 0, 0, 5)) == "x"  # the later layer, until its end
    assert who(s, utc(2026, 1, 1, 0, 0, 10)) == "b"  # 10 s: shift 3 (9-12 s) of a, b
    assert who(s, utc(2026, 1, 1, 0, 0, 12)) == "a"
    assert who(s, utc(2025, 12, 31, 23, 59)) is None


def test_a_timeline_lists_shifts_split_by_overrides():
    s = schedule(
        overrides=[{"person": "dave", "start": "2026-03-22T20:00:00", "end": "2026-03-23T12:00:00"}]
    )
    segments = timeline(s, paris(2026, 3, 16, 0, 0), paris(2026, 4, 6, 0, 0))
    assert [(g.person, g.start, g.end) for g in segments] == [
        ("alice", paris(2026, 3, 16, 9, 0), paris(2026, 3, 22, 20, 0)),
        ("dave", paris(2026, 3, 22, 20, 0), paris(2026, 3, 23, 12, 0)),
        ("bob", paris(2026, 3, 23, 12, 0), paris(2026, 3, 30, 9, 0)),
        ("carol", paris(2026, 3, 30, 9, 0), paris(2026, 4, 6, 0, 0)),
    ]


def test_the_icalendar_export_parses_with_the_right_events():
    s = schedule(
        overrides=[{"person": "dave", "start": "2026-03-22T20:00:00", "end": "2026-03-23T12:00:00"}]
    )
    segments = timeline(s, paris(2026, 3, 16, 0, 0), paris(2026, 3, 30, 0, 0))
    events = [
        ical.Event(
            uid=f"{g.start:%s}-{g.person}@redalert",
            start=g.start,
            end=g.end,
            summary=f"On call: {g.person} (db-primary; é, ü; long {'x' * 80})",
            description=f"{g.via}\nsecond line",
        )
        for g in segments
    ]
    text = ical.calendar("db-primary on call", events, now=utc(2026, 3, 1))
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    cal = icalendar.Calendar.from_ical(text)
    assert str(cal["X-WR-CALNAME"]) == "db-primary on call"
    parsed = [
        (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND")) for e in cal.walk("VEVENT")
    ]
    assert [p[1:] for p in parsed] == [(g.start, g.end) for g in segments]
    assert parsed[0][0].startswith("On call: alice (db-primary; é, ü; long xxx")
    assert str(next(iter(cal.walk("VEVENT")))["DESCRIPTION"]) == "rotation 1\nsecond line"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"rotations": []}, "at least 1 item"),
        ({"rotations": [{"members": [], "start": "2026-01-01", "length": "1w"}]},
         "rotations.0.members"),
        ({"rotations": [{"members": ["a"], "start": "2026-01-01", "length": "1 fortnight"}]},
         "'1 fortnight' is not a length"),
        ({"rotations": [{"members": ["a"], "start": "2026-01-01", "length": "1w",
                         "handoff": "25:00"}]},
         "'25:00' is not a time of day"),
        ({"rotations": [{"members": ["a b"], "start": "2026-01-01", "length": "1w"}]},
         "members[0]: 'a b' is not a person's name"),
        ({"overrides": [{"person": "a", "start": "2026-01-02", "end": "2026-01-01"}]},
         "end: must be after start"),
    ],
)  # fmt: skip
def test_a_bad_schedule_is_refused_naming_what_is_wrong(change, message):
    with pytest.raises(ValidationError) as e:
        schedule(**change)
    assert message in str(e.value)


def test_lengths_read_like_people_write_them():
    assert parse_length("1w") == 7 * 86_400
    assert parse_length("2d") == 2 * 86_400
    assert parse_length("12h") == 43_200
    assert parse_length("90s") == 90
    assert parse_length(30) == 30
