"""Urgency where the channel has it: a message's urgency as the channel's own priority.

A red alert is `urgent`, assessing `normal`, no danger, all-clear and resolved news `low`
— unless the subscription sets `urgency` for all its messages. Each channel that has a notion
of priority gets its own value: ntfy `priority`, Gotify `priority`, Pushover `priority`, email
`Importance` / `X-Priority` headers. A priority written in the URL itself (`?priority=…`) wins.
Pure: `apply` returns a copy of the plugin for one message; the cached one is never changed.
"""

import copy
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from services.notify.firing import NoticeKind
from shared.severity import Severity


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


def of(severity: Severity, kind: NoticeKind) -> Urgency:
    """How urgent a message about an incident at this severity is."""
    if kind in (NoticeKind.RESOLVED, NoticeKind.ALL_CLEAR, NoticeKind.TEST):
        return Urgency.LOW
    if severity is Severity.RED_ALERT:
        return Urgency.URGENT
    if severity is Severity.NO_DANGER:
        return Urgency.LOW
    return Urgency.NORMAL  # assessing (`high` is there for a subscription's own `urgency`)


# Each channel's own scale (apprise's values). Pushover's top (2, "emergency") repeats until
# acknowledged on the device and needs retry/expire settings: urgent stays at 1 unless the URL
# asks for it.
NTFY = {Urgency.LOW: "low", Urgency.NORMAL: "default", Urgency.HIGH: "high", Urgency.URGENT: "max"}
GOTIFY = {Urgency.LOW: 3, Urgency.NORMAL: 5, Urgency.HIGH: 8, Urgency.URGENT: 10}
PUSHOVER = {Urgency.LOW: -1, Urgency.NORMAL: 0, Urgency.HIGH: 1, Urgency.URGENT: 1}
EMAIL = {
    Urgency.LOW: {"Importance": "low", "X-Priority": "5"},
    Urgency.NORMAL: {"Importance": "normal", "X-Priority": "3"},
    Urgency.HIGH: {"Importance": "high", "X-Priority": "2"},
    Urgency.URGENT: {"Importance": "high", "X-Priority": "1"},
}


def apply(plugin: Any, url: str, urgency: Urgency) -> Any:
    """The plugin to send one message with, at this urgency (the same one if not applicable)."""
    kind = type(plugin).__name__
    if kind not in ("NotifyNtfy", "NotifyGotify", "NotifyPushover") and not _is_email(plugin):
        return plugin
    if "priority" in parse_qs(urlsplit(url).query):
        return plugin  # the URL says so itself
    out = copy.copy(plugin)
    if kind == "NotifyNtfy":
        out.priority = NTFY[urgency]
    elif kind == "NotifyGotify":
        out.priority = GOTIFY[urgency]
    elif kind == "NotifyPushover":
        out.priority = PUSHOVER[urgency]
    else:
        out.headers = {**EMAIL[urgency], **plugin.headers}  # a header in the URL wins
    return out


def _is_email(plugin: Any) -> bool:
    return any(c.__name__ == "NotifyEmail" for c in type(plugin).__mro__) and isinstance(
        getattr(plugin, "headers", None), dict
    )
