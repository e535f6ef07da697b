"""The look-ahead guard in front of a rule's regexes: a shortcut that never changes a match."""

import json
import re

import pytest

from services.classify.rules import load_rules
from services.classify.rules.guard import guard
from tests.rules_helpers import SHIPPED
from tests.test_rules_quality import DATA


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\bfire[sd]?\s+(?:its|their)\b", "(?=[f])"),
        (r"\b(?:M|Mw|magnitude\s+)[6-9]", "(?=[Mm])"),
        (r"\?(?!\w)", r"(?=[\?])"),
        (r"\b\d{1,2}\s?%", r"(?=[\d])"),  # \d is any decimal digit, not only 0-9
        (r"(?=19)(?<=in )\d{4}", r"(?=[\d])"),  # look-arounds consume nothing
        (r"(?:no|not)?\s+x", ""),  # may start with a space: anything
        (r"\w+ing", ""),
        (r"[^a]b", ""),
        (r"x?", ""),  # may match nothing at all
    ],
)
def test_the_guard_names_what_a_match_can_start_with(pattern, expected):
    assert guard(pattern) == expected


def shipped_regexes() -> list[str]:
    rules = load_rules(SHIPPED)
    found = [*rules.ignore.regex]
    for rule in [*rules.cues, *rules.modifiers]:
        found += rule.regex
    return found


@pytest.mark.parametrize("pattern", shipped_regexes())
def test_a_guarded_regex_finds_what_it_found_before(pattern):
    texts = [
        json.loads(line)["text"]
        for path in sorted(DATA.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    plain = re.compile(pattern, re.I)
    guarded = re.compile(guard(pattern) + f"(?:{pattern})", re.I)
    for text in texts:
        for at in range(len(text)):
            a, b = plain.match(text, at), guarded.match(text, at)
            assert (a and a.span()) == (b and b.span()), (text, at)
