"""The rules file, as operators write it (see README, "Tuning severity rules")."""

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.severity import Severity

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=100)]


class Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored rule.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModifierKind(StrEnum):
    NEGATION = "negation"  # "not", "no", "without": cancels cues in scope
    UNCERTAINTY = "uncertainty"  # "unconfirmed", "still assessing": red alert -> assessing
    HISTORY = "history"  # "last time", "earlier this year": past events do not alarm
    ALL_CLEAR = "all_clear"  # "not in any danger", "operating normally": lowers severity
    STAND_DOWN = "stand_down"  # "secure from red alert", "false alarm": resolves the incident


class Direction(StrEnum):
    FORWARD = "forward"  # the words after the trigger
    BACKWARD = "backward"  # the words before it
    BOTH = "both"


class Scope(Strict):
    direction: Direction = Direction.FORWARD
    words: int | None = Field(default=None, ge=1, le=100)
    until: Literal["clause", "sentence", "post"] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "Scope":
        if self.words is None and self.until is None:
            raise ValueError("a scope needs `words` (a count) or `until` (clause, sentence, post)")
        return self


def _check_regex(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            compiled = re.compile(p)
        except re.error as e:
            raise ValueError(f"bad regex {p!r}: {e}") from None
        if compiled.groupindex:
            raise ValueError(f"regex {p!r}: named groups are not allowed")
        if compiled.match(""):
            raise ValueError(f"regex {p!r} matches the empty string")
    return patterns


def _check_phrases(phrases: list[str]) -> list[str]:
    for p in phrases:
        if not re.search(r"\w", p):
            raise ValueError(f"phrase {p!r} has no word in it")
    return phrases


class Matcher(Strict):
    phrases: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)

    _phrases = field_validator("phrases")(_check_phrases)
    _regex = field_validator("regex")(_check_regex)

    @model_validator(mode="after")
    def _not_empty(self) -> "Matcher":
        if not self.phrases and not self.regex:
            raise ValueError("give at least one of `phrases` or `regex`")
        return self


class Cue(Matcher):
    id: RuleId
    severity: Severity
    weight: float = Field(default=1.0, gt=0, le=100)
    description: str | None = None


class Modifier(Matcher):
    id: RuleId
    kind: ModifierKind
    scope: Scope
    # uncertainty: added to the assessing score; all_clear/stand_down: to the all-clear score.
    weight: float = Field(default=1.0, ge=0, le=100)
    description: str | None = None


class Thresholds(Strict):
    red_alert: float = Field(default=2.0, gt=0)
    assessing: float = Field(default=1.0, gt=0)
    all_clear: float = Field(default=1.0, gt=0)


class Trust(Strict):
    """How much a source or an author is believed; an all-clear counts in proportion."""

    default: float = Field(default=1.0, gt=0, le=10)
    sources: dict[str, float] = Field(default_factory=dict)
    authors: dict[str, float] = Field(default_factory=dict)


class RulesFile(Strict):
    version: Literal[1] = 1
    default_severity: Severity = Severity.NO_DANGER
    thresholds: Thresholds = Thresholds()
    cues: list[Cue] = Field(default_factory=list)
    modifiers: list[Modifier] = Field(default_factory=list)
    topics: dict[RuleId, list[str]] = Field(default_factory=dict)
    trust: Trust = Trust()
    # Rule ids are checked for uniqueness by the loader, which knows their lines.
