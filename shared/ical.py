"""iCalendar (RFC 5545) export of on-call shifts, written by hand: a handful of properties.

Lines end in CRLF and are folded at 75 octets; text values escape `\\ ; ,` and newlines; times
are UTC (`…Z`), so no VTIMEZONE is needed.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

PRODID = "-//redalert//on-call//EN"


@dataclass(frozen=True)
class Event:
    uid: str
    start: datetime
    end: datetime
    summary: str
    description: str = ""


def calendar(name: str, events: Iterable[Event], now: datetime) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape(name)}",
    ]
    for e in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{escape(e.uid)}",
            f"DTSTAMP:{stamp(now)}",
            f"DTSTART:{stamp(e.start)}",
            f"DTEND:{stamp(e.end)}",
            f"SUMMARY:{escape(e.summary)}",
        ]
        if e.description:
            lines.append(f"DESCRIPTION:{escape(e.description)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (never inside a
    UTF-8 character)."""
    out, current, size = [], "", 0
    for ch in line:
        n = len(ch.encode())
        if size + n > 75:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)
