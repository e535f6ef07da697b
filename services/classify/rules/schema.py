"""The rules file, as operators write it (see README, "Tuning severity rules")."""

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.classify.rules import linear
from shared.severity import Severity

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=100)]

# A backreference by number would point at the wrong group once every rule's regex is joined
# into one pattern.
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


def _yaml_scalar(value: Any) -> Any:
    # YAML 1.1 reads no, yes, on, off, true and false as booleans, and 10 as a number.
    if isinstance(value, bool):
        raise ValueError(
            f'YAML read this as {str(value).lower()}: put the phrase in quotes, e.g. "no"'
        )
    if isinstance(value, int | float):
        raise ValueError(f'YAML read this as the number {value}: put it in quotes, e.g. "7700"')
    return value


def _check_phrase(phrase: str) -> str:
    if not re.search(r"\w", phrase):
        raise ValueError(f"phrase {phrase!r} has no word in it")
    return phrase


def _check_regex(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
        # Joined with the others inside a group: inline global flags such as (?i) must fail here.
        re.compile(f"x|(?:{pattern})")
    except re.error as e:
        raise ValueError(f"bad regex {pattern!r}: {e}") from None
    if compiled.groupindex:
        raise ValueError(f"regex {pattern!r}: named groups are not allowed, use (?:...)")
    if _NUMBERED_BACKREF.search(pattern):
        raise ValueError(f"regex {pattern!r}: backreferences (\\1) are not allowed")
    if compiled.match(""):
        raise ValueError(f"regex {pattern!r} matches the empty string")
    if problem := linear.check(pattern):
        raise ValueError(f"regex {pattern!r}: {problem}")
    return pattern


Phrase = Annotated[
    str,
    BeforeValidator(_yaml_scalar),
    Field(min_length=1, max_length=200),
    AfterValidator(_check_phrase),
]
Regex = Annotated[
    str,
    BeforeValidator(_yaml_scalar),
    Field(min_length=1, max_length=1000),
    AfterValidator(_check_regex),
]


class Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored rule.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModifierKind(StrEnum):
    NEGATION = "negation"  # "not", "no", "without": cancels cues (and all-clears) in scope
    HISTORY = "history"  # "last time", "earlier this year": past events do not alarm
    UNCERTAINTY = "uncertainty"  # "unconfirmed", "reports of": red alert -> assessing
    ALL_CLEAR = "all_clear"  # "not in any danger", "contained": lowers severity
    STAND_DOWN = "stand_down"  # "secure from red alert", "lifted": resolves the incident


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


class Matcher(Strict):
    phrases: list[Phrase] = Field(default_factory=list)
    regex: list[Regex] = Field(default_factory=list)

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
    # uncertainty: the weight counts only in a post about something (a cue or a topic word):
    # "might be gunshots near the school", not "might be late tomorrow".
    needs_subject: bool = False
    description: str | None = None

    @model_validator(mode="after")
    def _subject_for_hedges(self) -> "Modifier":
        if self.needs_subject and self.kind is not ModifierKind.UNCERTAINTY:
            raise ValueError("needs_subject applies to uncertainty modifiers only")
        return self

    @model_validator(mode="before")
    @classmethod
    def _needs_scope(cls, data: Any) -> Any:
        if isinstance(data, dict) and "scope" not in data:
            raise ValueError(
                "a modifier needs a `scope`, e.g. {direction: forward, words: 4, until: clause}"
            )
        return data


class Ignore(Strict):
    """Phrases that contain a cue or a trigger but mean nothing: "fire drill", "no doubt"."""

    phrases: list[Phrase] = Field(default_factory=list)
    regex: list[Regex] = Field(default_factory=list)


class Thresholds(Strict):
    red_alert: float = Field(default=2.0, gt=0)
    assessing: float = Field(default=1.0, gt=0)
    all_clear: float = Field(default=1.0, gt=0)


class Trust(Strict):
    """How much a source or an author is believed; an all-clear counts in proportion."""

    default: float = Field(default=1.0, gt=0, le=10)
    sources: dict[str, Annotated[float, Field(gt=0, le=10)]] = Field(default_factory=dict)
    authors: dict[str, Annotated[float, Field(gt=0, le=10)]] = Field(default_factory=dict)


HintValue = Annotated[str, BeforeValidator(_yaml_scalar), Field(min_length=1, max_length=200)]
HintField = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", max_length=64)]


class HintRow(Strict):
    """One row of a source-hint table: when the hint's fields have these values (any of each
    list, compared without case; every field listed must match), the post gets this severity,
    or this effect (`resolve`: the incident is resolved; `all_clear`: it may come down to no
    danger). The first row that matches wins; a row without `when` matches every hint."""

    when: dict[HintField, list[HintValue]] = Field(default_factory=dict)
    severity: Severity | None = None
    effect: Literal["resolve", "all_clear"] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> "HintRow":
        if (self.severity is None) == (self.effect is None):
            raise ValueError("a hint row gives exactly one of `severity` or `effect`")
        if any(not values for values in self.when.values()):
            raise ValueError("each field in `when` lists at least one value")
        return self


def _row(then: str, **when: list[str]) -> HintRow:
    key = "effect" if then in ("resolve", "all_clear") else "severity"
    return HintRow.model_validate({"when": when, key: then})


# The tables used for a scheme the rules file does not give (README: "Structured sources").
DEFAULT_HINTS: dict[str, list[HintRow]] = {
    "statuspage": [
        _row("resolve", status=["resolved", "postmortem"]),
        _row("all_clear", status=["monitoring"]),
        _row("red_alert", impact=["critical", "major"]),
        _row("assessing"),
    ],
    "cap": [
        _row("no_danger", status=["Test", "Exercise", "Draft", "System"]),
        _row("no_danger", msg_type=["Ack", "Error"]),
        _row("resolve", msg_type=["Cancel"]),
        _row("resolve", response_type=["AllClear"]),
        _row("resolve", expires=["past"]),
        _row(
            "red_alert",
            severity=["Extreme", "Severe"],
            certainty=["Observed", "Likely"],
            urgency=["Immediate", "Expected"],
        ),
        _row("no_danger", certainty=["Unlikely"]),
        _row("no_danger", urgency=["Past"]),
        _row("assessing"),
    ],
    "grafana": [
        _row("resolve", status=["resolved"]),
        _row("red_alert", severity=["critical", "page", "emergency", "error", "high"]),
        _row("no_danger", severity=["info", "informational", "low", "none", "ok"]),
        _row("assessing"),
    ],
    "json": [
        _row("resolve", status=["resolved", "ok", "closed", "recovered", "cancelled"]),
        _row("red_alert", severity=["critical", "fatal", "emergency", "error", "high", "major"]),
        _row("red_alert", severity=["p1", "sev1", "sev-1"]),
        _row("no_danger", severity=["info", "informational", "low", "none", "ok", "debug"]),
        _row("assessing"),
    ],
}


class RulesFile(Strict):
    version: Literal[1] = 1
    default_severity: Severity = Severity.NO_DANGER
    thresholds: Thresholds = Thresholds()
    cues: list[Cue] = Field(default_factory=list)
    modifiers: list[Modifier] = Field(default_factory=list)
    ignore: Ignore = Ignore()
    topics: dict[RuleId, list[Phrase]] = Field(default_factory=dict)
    trust: Trust = Trust()
    # Source hints (status pages, CAP, Grafana, mapped JSON) to severities, one table per
    # scheme; a scheme left out uses DEFAULT_HINTS.
    hints: dict[RuleId, list[HintRow]] = Field(default_factory=dict)
    # Rule ids are checked for uniqueness by the loader, which knows their lines.
