"""What an Alertmanager alert means to redalert: its severity and the incident it belongs to. Pure.

Severity comes from the `severity` label: the built-in table, extended (and overridden) by
REDALERT_ALERTMANAGER_SEVERITIES. A value in neither is kept as *assessing* — with a warning the
incident shows, never silently. An absent label is assessing without a warning (nothing was said).

Grouping: by default each alert (its fingerprint) is one incident; with
REDALERT_ALERTMANAGER_GROUP_BY=alertname,team every alert with the same values of those labels
joins one incident, as Alertmanager's own `group_by` groups notifications.
"""

import hashlib
from collections.abc import Mapping, Sequence

from shared.severity import Severity

BUILT_IN = {
    **dict.fromkeys(["critical", "page", "emergency", "error", "high"], Severity.RED_ALERT),
    **dict.fromkeys(["warning", "warn", "medium"], Severity.ASSESSING),
    **dict.fromkeys(["info", "informational", "low", "none", "ok"], Severity.NO_DANGER),
}
MAX_KEY = 200  # an incident key's bound (shared.models.Post.incident_key)


def severity(
    labels: Mapping[str, str], table: Mapping[str, Severity]
) -> tuple[Severity, str | None]:
    """The alert's severity, and a warning when its label says something nobody mapped."""
    raw = labels.get("severity", "").strip()
    if not raw:
        return Severity.ASSESSING, None
    key = raw.lower()
    found = table.get(key) or BUILT_IN.get(key)
    if found is not None:
        return found, None
    return Severity.ASSESSING, (
        f"unknown severity label {raw!r}: kept as assessing "
        "(map it with REDALERT_ALERTMANAGER_SEVERITIES, e.g. "
        f"{key[:40]}=red_alert)"
    )


def group_key(labels: Mapping[str, str], fingerprint: str, group_by: Sequence[str]) -> str:
    """The incident key of an alert: its fingerprint, or its group's label values."""
    if not group_by:
        return fingerprint
    values = ",".join(f"{name}={labels.get(name, '')}" for name in group_by)
    key = f"group:{{{values}}}"
    if len(key) <= MAX_KEY:
        return key
    return "group:" + hashlib.sha256(values.encode()).hexdigest()[:32]
