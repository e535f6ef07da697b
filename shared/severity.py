"""Severity: the ordered scale every post and incident is placed on."""

from enum import StrEnum


class Severity(StrEnum):
    NO_DANGER = "no_danger"
    ASSESSING = "assessing"
    RED_ALERT = "red_alert"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label(self) -> str:
        """How people read it: "no danger", "assessing", "red alert"."""
        return self.value.replace("_", " ")

    @property
    def apprise_type(self) -> str:
        return _APPRISE_TYPE[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    # StrEnum would otherwise compare alphabetically; every comparison goes by rank.
    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    __hash__ = StrEnum.__hash__


_RANK = {Severity.NO_DANGER: 0, Severity.ASSESSING: 1, Severity.RED_ALERT: 2}
_APPRISE_TYPE = {
    Severity.NO_DANGER: "success",
    Severity.ASSESSING: "warning",
    Severity.RED_ALERT: "failure",
}
