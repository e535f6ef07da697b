"""Subjects: what an incident is about, part by part (a status page's components, a warning's
areas), named in a post's labels as `component:<name>` or `area:<name>` with a status.

An all-clear about some subjects does not clear an incident while another is still affected.
Sources write these labels (ingest); the incident state machine reads them (classify).
"""

from collections.abc import Mapping

PREFIXES = ("component:", "area:")

# Statuses that mean "this part is fine" (Statuspage's `operational`; what CAP sources and
# mapped JSON write for an area or a component that is no longer affected).
CLEAR = frozenset({"operational", "clear", "ok", "normal", "resolved", "all_clear"})
AFFECTED = "affected"


def subjects_of(labels: Mapping[str, str]) -> dict[str, str]:
    """The subject labels of a post: `{"component:Actions": "degraded_performance", …}`."""
    return {k: v for k, v in labels.items() if k.startswith(PREFIXES)}


def is_affected(status: str) -> bool:
    return status.strip().lower() not in CLEAR


def name_of(subject: str) -> str:
    """`component:Actions` -> `Actions`."""
    return subject.partition(":")[2] or subject


def still_affected(subjects: Mapping[str, str]) -> list[str]:
    return sorted(s for s, status in subjects.items() if is_affected(status))
