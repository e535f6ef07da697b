"""Rule regexes on RE2: what they match is what Python's `re` matched; nothing can stall."""

import json
import re
import time

import pytest

from services.classify.rules import ConfigError, compile_rules, load_rules
from services.classify.rules.engine import _STARTS, lower
from services.classify.rules.linear import Encoded, check, compile_rule, translate
from shared.models import Post
from shared.severity import Severity
from tests.rules_helpers import SHIPPED
from tests.test_rules_quality import DATA

CATASTROPHIC = """\
cues:
  - id: aaa
    severity: red_alert
    weight: 2
    regex: ['(a+)+$', '(x|xx)+y', '(?:\\\\w+\\\\s?)*!z']
"""


def shipped_regexes() -> list[str]:
    rules = load_rules(SHIPPED)
    found = list(rules.ignore.regex)
    for rule in [*rules.cues, *rules.modifiers]:
        found += rule.regex
    return found


def corpus() -> list[str]:
    rows = [
        json.loads(line)
        for path in sorted(DATA.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return [lower(row["text"]) for row in rows if isinstance(row.get("text"), str)]


@pytest.mark.parametrize("pattern", shipped_regexes())
def test_each_shipped_regex_matches_on_re2_what_it_matched_on_python_re(pattern):
    """At every position the engine tries (word starts and marks), over the labelled posts."""
    python = re.compile(pattern, re.I)
    parts = compile_rule([pattern])
    for text in corpus():
        encoded = Encoded(text)
        for start in _STARTS.finditer(text):
            at = start.start()
            expected = python.match(text, at)
            got = next((e for p in parts if (e := p.match_at(encoded, at)) is not None), None)
            assert (expected.end() if expected else None) == got, (pattern, text, at)


def test_catastrophic_regexes_run_in_linear_time():
    engine = compile_rules(CATASTROPHIC)
    # Each of these takes Python's backtracking `re` longer than the age of the universe.
    posts = ["a" * 9_999 + "!", "x" * 9_999 + "!", "word " * 1_999 + "!!"]
    for text in posts:
        started = time.perf_counter()
        result = engine.classify(Post(text=text))
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"{text[:12]!r}…: {elapsed_ms:.1f} ms")
        assert result.severity is Severity.NO_DANGER
        assert elapsed_ms < 2_000  # linear: milliseconds; backtracking: never ends
    assert engine.classify(Post(text="aaaa")).severity is Severity.RED_ALERT


def test_the_shipped_rules_classify_an_adversarial_post_in_milliseconds():
    engine = compile_rules(SHIPPED)
    # Many regex hits (questions, years, "no … threat") and long runs without a word break.
    text = "no threat? in 1999 " * 420 + "a" * 2_020
    assert len(text) == 10_000
    started = time.perf_counter()
    result = engine.classify(Post(text=text))
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"10,000 adversarial characters: {elapsed_ms:.1f} ms, {len(result.hits)} hits")
    assert len(result.hits) > 400
    assert elapsed_ms < 5_000


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"x(?=y)z", "look-arounds only at the start or end"),
        (r"(a)\1", "backreferences (\\1) are not allowed"),
        (r"(?<=a+)b", "fixed-width"),
    ],
)
def test_what_re2_cannot_run_is_refused_at_check_time_with_file_and_line(pattern, reason):
    text = f"cues:\n  - id: c\n    severity: red_alert\n    weight: 2\n    regex: ['{pattern}']\n"
    with pytest.raises(ConfigError) as e:
        compile_rules(text, "my-rules.yaml")
    assert str(e.value).startswith("my-rules.yaml:5: ")
    assert reason in str(e.value)


def test_python_meanings_are_kept():
    assert check(r"\bcaf\w\b") is None
    [part] = compile_rule([r"caf\w+ noir"])
    assert part.match_at(Encoded("un café noir"), 3) == 12  # \w is Unicode, as in Python
    assert translate("(?x: a  b # comment\n c)") == "(?:abc)"
    [verbose] = compile_rule(["(?x: fire \\s+ out  # the fire is out\n)"])
    assert verbose.match_at(Encoded("fire out"), 0) == 8
    [edge] = compile_rule([r"(?:(?<=in )|(?<=of ))\d{4}(?![-/:]\d)"])
    assert edge.match_at(Encoded("in 1998."), 3) == 7
    assert edge.match_at(Encoded("by 1998."), 3) is None
    assert edge.match_at(Encoded("in 1998-05"), 3) is None
    assert edge.match_at(Encoded("née in 1998"), 7) == 11  # offsets in characters


def test_label_matchers_run_on_re2_too():
    from shared.matchers import MatcherError, parse

    matcher = parse('service=~"(a+)+$"')
    started = time.perf_counter()
    assert not matcher.matches({"service": "a" * 5_000 + "!"})
    assert (time.perf_counter() - started) * 1000 < 2_000  # Python's re: never ends
    assert matcher.matches({"service": "aaa"})
    with pytest.raises(MatcherError, match="bad regex"):
        parse(r'service=~"(a)\1"')
