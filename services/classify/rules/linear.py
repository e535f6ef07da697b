"""Rule regexes on a linear-time engine (google-re2): an operator's regex cannot stall a process.

Python's `re` backtracks: `(a+)+$` on 26 characters takes seconds, doubling with each one more.
RE2 runs in time linear in the text, whatever the pattern, by giving up what needs backtracking:
backreferences and look-arounds. Rule regexes keep the syntax operators know, with two
adjustments made here:

- `\\w`, `\\d`, `\\s` mean what they mean in Python (Unicode letters, digits, spaces), not
  RE2's ASCII; `\\b` stays RE2's (a boundary between ASCII word characters and the rest);
- look-arounds are allowed at the edges of a regex only, where they are checked apart (each
  with RE2, anchored): leading `(?=…)`, `(?!…)`, fixed-width `(?<=…)`, `(?<!…)` (or a group of
  alternatives that are each one of those), and trailing `(?=…)`, `(?!…)`. A trailing one
  checks the match RE2 found (it does not make RE2 look for another, shorter one).

Anything else RE2 cannot run is refused when the rules are checked (`check`), with the reason.
"""

import re
from dataclasses import dataclass

import re2

# Python's Unicode classes, in RE2's syntax (inside a character class: without the brackets).
_CLASSES = {"w": r"\p{L}\p{N}\p{Mn}_", "d": r"\p{Nd}", "s": r"\s\p{Z}\x{85}\x{1c}-\x{1f}"}


def translate(pattern: str) -> str:
    """`pattern` with Python's Unicode meaning of \\w, \\d, \\s (and \\W, \\D, \\S) in RE2,
    and verbose groups `(?x:…)` written out (RE2 has no verbose mode)."""
    pattern = _unverbose(pattern)
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in _CLASSES:
                out.append(_CLASSES[e] if in_class else f"[{_CLASSES[e]}]")
            elif e.lower() in _CLASSES and not in_class:
                out.append(f"[^{_CLASSES[e.lower()]}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A "]" (after an optional "^") first in a class is a literal.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _unverbose(pattern: str) -> str:
    """`(?x:…)` groups without their layout: unescaped spaces and `#` comments, outside classes."""
    while (start := pattern.find("(?x:")) >= 0 and not _escaped(pattern, start):
        end = _group_end(pattern, start)
        body, out, i, in_class = pattern[start + 4 : end - 1], [], 0, False
        while i < len(body):
            c = body[i]
            if c == "\\":
                out.append(body[i : i + 2])
                i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
            elif c.isspace():
                i += 1
                continue
            elif c == "#":
                i = body.find("\n", i)
                i = len(body) if i < 0 else i
                continue
            out.append(c)
            i += 1
        pattern = pattern[:start] + "(?:" + "".join(out) + ")" + pattern[end:]
    return pattern


class Encoded:
    """A text as RE2 reads it (UTF-8 bytes), with offsets both ways. Given a `str`, the RE2
    module encodes the whole text again on every call: a thousand calls on a long post would
    cost a million steps. Offsets in and out are those of the `str`."""

    __slots__ = ("_b2c", "_c2b", "data", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode()
        self._c2b: list[int] | None = None
        self._b2c: dict[int, int] | None = None
        if len(self.data) != len(text):  # not ASCII: offsets differ
            c2b = [0]
            for ch in text:
                c2b.append(c2b[-1] + len(ch.encode()))
            self._c2b, self._b2c = c2b, {b: c for c, b in enumerate(c2b)}

    def byte(self, at: int) -> int:
        return at if self._c2b is None else self._c2b[at]

    def char(self, at: int) -> int:
        return at if self._b2c is None else self._b2c[at]


@dataclass(frozen=True)
class Look:
    """A look-around at an edge: `ahead` (at a position) or behind (the `width` chars before)."""

    ahead: bool
    negate: bool
    pattern: "re2._Regexp"
    width: int = 0

    def holds(self, t: Encoded, at: int) -> bool:
        if self.ahead:
            found = _span(self.pattern, _ANCHOR.ANCHOR_START, t.data, t.byte(at)) is not None
        else:
            found = at >= self.width and (
                _span(
                    self.pattern,
                    _ANCHOR.ANCHOR_BOTH,
                    t.data,
                    t.byte(at - self.width),
                    t.byte(at),
                )
                is not None
            )
        return found != self.negate


@dataclass(frozen=True)
class Split:
    leading: list[list[str]]  # each: alternatives, one must hold (a plain look-around: one)
    core: str
    trailing: list[str]


def _group_end(pattern: str, start: int) -> int:
    """Index just past the group that opens at `start` (a "(")."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


_LOOK = ("(?=", "(?!", "(?<=", "(?<!")


def _alternatives(body: str) -> list[str]:
    """Top-level alternatives of a group body."""
    parts, depth, last, i, in_class = [], 0, 0, 0, False
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(body[last:i])
            last = i + 1
        i += 1
    return [*parts, body[last:]]


def split(pattern: str) -> Split:
    """The edge look-arounds of a pattern, and what is between them."""
    leading: list[list[str]] = []
    i = 0
    while i < len(pattern) and pattern[i] == "(":
        end = _group_end(pattern, i)
        group = pattern[i:end]
        if group.startswith(_LOOK):
            leading.append([group])
        elif group.startswith("(?:") and all(
            a.startswith(_LOOK) and _group_end(a, 0) == len(a) for a in _alternatives(group[3:-1])
        ):
            leading.append(_alternatives(group[3:-1]))
        else:
            break
        i = end
    trailing: list[str] = []
    core_end = len(pattern)
    while True:
        start = _trailing_group(pattern, i, core_end)
        if start is None:
            break
        trailing.insert(0, pattern[start:core_end])
        core_end = start
    return Split(leading, pattern[i:core_end], trailing)


def _trailing_group(pattern: str, lo: int, hi: int) -> int | None:
    """Where a look-ahead that ends exactly at `hi` starts, if one does (and is not all)."""
    if hi <= lo or pattern[hi - 1] != ")":
        return None
    for start in range(hi - 2, lo, -1):
        if pattern.startswith(("(?=", "(?!"), start):
            try:
                if _group_end(pattern, start) == hi and not _escaped(pattern, start):
                    return start
            except ValueError:
                continue
    return None


def _escaped(pattern: str, at: int) -> bool:
    backslashes = 0
    while at - backslashes - 1 >= 0 and pattern[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


OPTIONS = re2.Options()
OPTIONS.case_sensitive = False  # rule regexes match case-insensitively, as they always did
OPTIONS.max_mem = 64 << 20  # a pattern whose automaton would need more is refused
OPTIONS.log_errors = False  # a refused pattern is reported by `check`, not on stderr
OPTIONS.never_capture = True  # only where a match is counts: RE2 can then use its DFA alone

# The module's match objects are built in Python on every call (≈10 µs); the engine makes many
# small calls, so it asks RE2 for the span only. Private, but pinned by the tests' use of it.
_ANCHOR = re2._re2.RE2.Anchor


def _span(
    pattern: "re2._Regexp", anchor: object, data: bytes, pos: int, end: int | None = None
) -> tuple[int, int] | None:
    start, stop = pattern._regexp.Match(anchor, data, pos, len(data) if end is None else end)[0]
    return None if start < 0 else (start, stop)


def _compile(pattern: str) -> "re2._Regexp":
    try:
        return re2.compile(translate(pattern), options=OPTIONS)
    except re2.error as e:
        raise ValueError(str(e)) from None


def _look(group: str) -> Look:
    ahead = group.startswith(("(?=", "(?!"))
    negate = group.startswith(("(?!", "(?<!"))
    body = group[3:-1] if ahead else group[4:-1]
    width = 0
    if not ahead:
        re.compile(body)  # a syntax error is reported as Python's `re` words it
        low, high = _width(body)
        if low != high:
            raise ValueError(f"look-behind {group!r} must have a fixed width")
        width = low
    return Look(ahead, negate, _compile(body), width)


def _width(body: str) -> tuple[int, int]:
    import re._parser as parser  # the parser behind `re`, for a look-behind's width

    return parser.parse(body).getwidth()


@dataclass(frozen=True)
class RuleRegex:
    """One rule's regexes, as one RE2 pattern with its edge look-arounds."""

    core: "re2._Regexp"
    leading: list[list[Look]]
    trailing: list[Look]

    def match_at(self, t: Encoded, at: int) -> int | None:
        """The end of the match that starts exactly at `at`, or None."""
        if not all(any(look.holds(t, at) for look in alts) for alts in self.leading):
            return None
        span = _span(self.core, _ANCHOR.ANCHOR_START, t.data, t.byte(at))
        if span is None:
            return None
        end = t.char(span[1])
        if end == at or not all(look.holds(t, end) for look in self.trailing):
            return None
        return end

    def search(self, t: Encoded, pos: int) -> int | None:
        """Where the next match of the regex without its look-arounds starts, from `pos`."""
        span = _span(self.core, _ANCHOR.UNANCHORED, t.data, t.byte(pos))
        return None if span is None else t.char(span[0])


def compile_rule(patterns: list[str]) -> list[RuleRegex]:
    """A rule's regexes, in order: the first that matches at a position wins, as in an
    alternation. Neighbours without look-arounds share one RE2 pattern."""
    out: list[RuleRegex] = []
    plain: list[str] = []  # consecutive regexes without look-arounds, joined in order
    for p in patterns:
        s = split(p)
        if not s.leading and not s.trailing:
            plain.append(p)
            continue
        if plain:
            out.append(RuleRegex(_compile("|".join(f"(?:{q})" for q in plain)), [], []))
            plain = []
        leading = [[_look(g) for g in alts] for alts in s.leading]
        out.append(RuleRegex(_compile(s.core), leading, [_look(g) for g in s.trailing]))
    if plain:
        out.append(RuleRegex(_compile("|".join(f"(?:{q})" for q in plain)), [], []))
    return out


def check(pattern: str) -> str | None:
    """Why RE2 cannot run this rule regex (None: it can)."""
    try:
        s = split(pattern)
        if not s.core:
            return "it is only look-arounds"
        core = _compile(s.core)
        for alts in s.leading:
            for group in alts:
                _look(group)
        for group in s.trailing:
            _look(group)
    except ValueError as e:
        reason = str(e).removeprefix("b'").removesuffix("'")
        if "invalid perl operator" in reason or "missing argument to repetition" in reason:
            reason += " (look-arounds only at the start or end; no backreferences)"
        return f"the linear-time engine (RE2) cannot run it: {reason}"
    if core.match("") is not None:
        return "it matches the empty string"
    return None
