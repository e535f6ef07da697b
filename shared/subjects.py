"""Subjects: what an incident is about, part by part (a status page's components, a warning's
areas), named in a post's labels as `component:<name>` or `area:<name>` with a status
(`component:Git_Operations=degraded_performance`: label names allow no spaces, so a name's
other characters become `_`; see `label`).

An all-clear about some subjects does not clear an incident while another is still affected.
Sources write these labels (ingest); the incident state machine reads them (classify).
"""

import re
from collections.abc import Mapping

from shared.labels import MAX_NAME

PREFIXES = ("component:", "area:")

# Statuses that mean "this part is fine" (Statuspage's `operational`; what CAP sources and
# mapped JSON write for an area or a component that is no longer affected).
CLEAR = frozenset({"operational", "clear", "ok", "normal", "resolved", "all_clear"})
AFFECTED = "affected"


_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.:/\-]+")


def label(prefix: str, name: str) -> str:
    """The label naming a subject: `label("component:", "Git Operations")` ->
    `component:Git_Operations` (a valid label name whatever the subject is called)."""
    slug = _NOT_IN_NAME.sub("_", name.strip()).strip("_") or "unnamed"
    return (prefix + slug)[:MAX_NAME]


def subjects_of(labels: Mapping[str, str]) -> dict[str, str]:
    """The subject labels of a post: `{"component:Actions": "degraded_performance", …}`."""
    return {k: v for k, v in labels.items() if k.startswith(PREFIXES)}


def is_affected(status: str) -> bool:
    return status.strip().lower() not in CLEAR


def name_of(subject: str) -> str:
    """`component:Git_Operations` -> `Git Operations`, as a text would name it."""
    return (subject.partition(":")[2] or subject).replace("_", " ")


def still_affected(subjects: Mapping[str, str]) -> list[str]:
    return sorted(s for s, status in subjects.items() if is_affected(status))
