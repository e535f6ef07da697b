"""What a regex can start with: a cheap look-ahead in front of each rule's regexes.

The engine tries every rule's regexes at every word of a post before its phrases. Most regexes
can start with a few letters only ("\\bno\\s+…", "\\bfire[sd]?…"); a `(?=[fn])` in front lets the
regular expression engine skip them in one step at the other words. When the set cannot be
worked out (a regex that may start with any letter, or with nothing at all), there is no guard:
the guard is only ever a shortcut, never a change in what matches.
"""

import re

try:  # the parser behind `re`; private, so everything below falls back to "no guard"
    import re._constants as _c
    import re._parser as _p
except ImportError:  # pragma: no cover - another Python
    _c = _p = None  # type: ignore[assignment]

# Larger sets are not worth a guard: they would let almost every word through.
_MAX_CHARS = 40
_DIGIT = "\\d"  # as \d matches: any decimal digit, not only 0-9


_REPEATS = tuple(
    getattr(_c, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(_c, name)
)


class _Unknown(Exception):
    pass


def guard(pattern: str) -> str:
    """`(?=[…])` for the characters a match of `pattern` can start with, or "" if unknown."""
    if _p is None:
        return ""
    try:
        chars, can_be_empty = _sequence(list(_p.parse(pattern, re.IGNORECASE)))
    except (_Unknown, re.error, TypeError, ValueError, AttributeError):
        return ""
    if can_be_empty or not chars or len(chars) > _MAX_CHARS:
        return ""
    return "(?=[" + "".join(c if c == _DIGIT else re.escape(c) for c in sorted(chars)) + "])"


def _sequence(items: list) -> tuple[set[str], bool]:
    """First characters of a sequence, and whether it can match the empty string."""
    out: set[str] = set()
    for op, arg in items:
        chars, can_be_empty = _item(op, arg)
        out |= chars
        if not can_be_empty:
            return out, False
    return out, True


def _item(op, arg) -> tuple[set[str], bool]:
    if op is _c.LITERAL:
        return {chr(arg)}, False
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):  # \b, ^, look-arounds: consume nothing
        return set(), True
    if op is _c.SUBPATTERN:
        return _sequence(list(arg[-1]))
    if op is _c.BRANCH:
        out: set[str] = set()
        can_be_empty = False
        for branch in arg[1]:
            chars, empty = _sequence(list(branch))
            out |= chars
            can_be_empty |= empty
        return out, can_be_empty
    if op in _REPEATS:
        low, _high, sub = arg
        chars, can_be_empty = _sequence(list(sub))
        return chars, can_be_empty or low == 0
    if op is _c.IN:
        return _in(arg), False
    raise _Unknown(op)


def _in(members: list) -> set[str]:
    out: set[str] = set()
    for op, arg in members:
        if op is _c.LITERAL:
            out.add(chr(arg))
        elif op is _c.RANGE and arg[1] - arg[0] < _MAX_CHARS:
            out.update(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is _c.CATEGORY and arg is _c.CATEGORY_DIGIT:
            out.add(_DIGIT)
        else:  # negated sets, \w, \s, wide ranges: could be anything
            raise _Unknown(op)
    return out
