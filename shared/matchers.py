"""Label matchers in Alertmanager's syntax: `team="db"`, `env!="dev"`, `service=~"api|web"`,
`service!~"batch.*"`. Pure.

As in Alertmanager: a regex is anchored at both ends (`=~"api"` does not match `api-2`); a label
that is absent has the value "" (so `env!="dev"` matches an incident without `env`, and
`env=""` matches only those); values may be quoted (with `\\"`, `\\\\` and `\\n` escapes, any
other backslash kept as written, so `"a\\.b"` is the regex `a\\.b`) or bare. A list is written
one matcher per item, or as one string `{team="db", env!="dev"}`; all of a list must match.

A bad matcher raises MatcherError naming the matcher and what is wrong with it.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

import re2
from pydantic import AfterValidator, BeforeValidator, Field

MAX_TEXT = 1_024  # one matcher, as written
MAX_MATCHERS = 32  # in one list
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/\-]*")


class MatchType(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher that cannot be parsed; the message names it."""


@dataclass(frozen=True)
class Matcher:
    name: str
    type: MatchType
    value: str
    _regex: "re2._Regexp | None" = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.type is MatchType.EQUAL:
            return actual == self.value
        if self.type is MatchType.NOT_EQUAL:
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.type is MatchType.REGEX else not found

    def __str__(self) -> str:
        value = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.type.value}"{value}"'


def matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


def first_mismatch(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> Matcher | None:
    """The first matcher that does not match, to explain a routing decision."""
    return next((m for m in matchers if not m.matches(labels)), None)


@dataclass(frozen=True)
class MatcherSet:
    """A parsed list of matchers: all must match."""

    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches(self.matchers, labels)

    def first_mismatch(self, labels: Mapping[str, str]) -> Matcher | None:
        return first_mismatch(self.matchers, labels)


def compiled(items: Iterable[str]) -> MatcherSet:
    """Stored (already validated) matcher strings, parsed once and cached: notify matches every
    event against every subscription."""
    return _compiled(tuple(items))


@lru_cache(maxsize=4_096)
def _compiled(items: tuple[str, ...]) -> MatcherSet:
    return MatcherSet(tuple(parse(i) for i in items))


_RE2 = re2.Options()
_RE2.log_errors = False


@lru_cache(maxsize=4_096)
def _compile(pattern: str) -> "re2._Regexp":
    # RE2, as in Alertmanager: linear time, so an operator's regex cannot stall matching.
    return re2.compile(pattern, options=_RE2)


def parse(text: str) -> Matcher:
    """One matcher, like `team="db"`; MatcherError (naming it) when it is not one."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    if len(text) > MAX_TEXT:
        raise MatcherError(f"matcher {shown!r}: longer than {MAX_TEXT} characters")
    try:
        matcher, rest = _parse_body(text.strip())
    except _Syntax as e:
        raise MatcherError(f"matcher {shown!r}: {e}") from None
    if rest.strip():
        raise MatcherError(f"matcher {shown!r}: unexpected {rest.strip()[:20]!r} after the value")
    return matcher


def parse_all(items: str | Iterable[str]) -> list[Matcher]:
    """A list of matchers: a list of strings, or one string `{a="1", b!="2"}` (braces optional)."""
    if isinstance(items, str):
        items = split_list(items)
    out = [parse(item) for item in items]
    if len(out) > MAX_MATCHERS:
        raise MatcherError(f"{len(out)} matchers; at most {MAX_MATCHERS}")
    return out


def split_list(text: str) -> list[str]:
    """`{a="1", b=~"x,y"}` -> ['a="1"', 'b=~"x,y"']: commas inside quotes do not split."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"matchers {text[:80]!r}: '{{' without a closing '}}'")
        body = body[1:-1]
    parts, current, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    if quoted:
        raise MatcherError(f"matchers {text[:80]!r}: a quote is not closed")
    return [p.strip() for p in parts if p.strip()]


class _Syntax(Exception):
    pass


def _parse_body(text: str) -> tuple[Matcher, str]:
    m = _NAME.match(text)
    if not m:
        if not text:
            raise _Syntax("empty")
        raise _Syntax(
            'a label name first (a letter or _, then letters, digits or _ . : / -), like team="db"'
        )
    name, rest = m.group(), text[m.end() :].lstrip()
    op = next((o for o in ("=~", "!=", "!~", "=") if rest.startswith(o)), None)
    if op is None:
        raise _Syntax(f"after {name!r} comes an operator: =, !=, =~ or !~")
    rest = rest[len(op) :].lstrip()
    if rest.startswith("="):
        raise _Syntax("'==' is not an operator: use =, !=, =~ or !~")
    if rest.startswith('"'):
        value, rest = _quoted(rest)
    else:
        if any(c in rest for c in '"{}'):
            raise _Syntax("a bare value cannot hold quotes or braces: quote it")
        value, rest = rest.strip(), ""
    mtype = MatchType(op)
    regex = None
    if mtype in (MatchType.REGEX, MatchType.NOT_REGEX):
        try:
            regex = _compile(value)
        except re2.error as e:
            reason = str(e).removeprefix("b'").removesuffix("'")
            raise _Syntax(f"bad regex {value!r}: {reason}") from None
    return Matcher(name, mtype, value, regex), rest


def _quoted(text: str) -> tuple[str, str]:
    """The value of `"…"` at the start of text, and what follows its closing quote."""
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1 :]
        out.append(ch)
        i += 1
    raise _Syntax("the value's quote is not closed")


def _validated(items: list[str]) -> list[str]:
    """For models: every matcher parses (the error names it and its index); kept as written
    in canonical form, so what is stored is what GET shows."""
    if len(items) > MAX_MATCHERS:
        raise ValueError(f"{len(items)} matchers; at most {MAX_MATCHERS}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(str(parse(item)))
        except MatcherError as e:
            raise ValueError(f"matchers[{i}]: {e}") from None
    return out


def _listed(value: object) -> object:
    """One string `{team="db", env!="dev"}` is a list too."""
    if isinstance(value, str):
        try:
            return split_list(value)
        except MatcherError as e:
            raise ValueError(str(e)) from None
    return value


# A model field: a list of matchers as strings (`["team=\"db\"", "env!=\"dev\""]`).
MatcherList = Annotated[
    list[Annotated[str, Field(max_length=MAX_TEXT)]],
    BeforeValidator(_listed),
    AfterValidator(_validated),
]
