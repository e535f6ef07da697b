"""A broken rules file is refused with FILE:LINE: reason — by the loader and by `rules check`."""

from pathlib import Path

import pytest

from services.classify.rules import ConfigError, compile_rules, load_rules
from services.cli.main import main

GOOD = """\
cues:
  - id: leak
    severity: red_alert
    weight: 2
    phrases: [leak]
modifiers:
  - id: negation
    kind: negation
    phrases: [not]
    scope: {direction: forward, words: 4}
"""


def problems(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(ConfigError) as e:
        compile_rules(text, "rules.yaml")
    return [(line, reason) for _, line, reason in e.value.problems]


def test_good_rules_load():
    assert compile_rules(GOOD).rules.cues[0].id == "leak"


@pytest.mark.parametrize(
    ("broken", "line", "reason"),
    [
        (GOOD.replace("phrases: [leak]", "regex: ['(unclosed']"), 5, "bad regex '(unclosed'"),
        (GOOD.replace("severity: red_alert", "severity: panic"), 3, "cues.0.severity: Input"),
        (GOOD.replace("    scope: {direction: forward, words: 4}\n", ""), 7, "needs a `scope`"),
        (GOOD.replace("words: 4", "until: forever"), 10, "modifiers.0.scope.until"),
        (GOOD.replace("{direction: forward, words: 4}", "{direction: forward}"), 10, "a scope"),
        (GOOD.replace("kind: negation", "kind: maybe"), 8, "modifiers.0.kind"),
        (GOOD.replace("weight: 2", "wieght: 2"), 4, "Extra inputs are not permitted"),
        (GOOD.replace("phrases: [not]", 'phrases: [not, "  "]'), 9, "has no word in it"),
        (GOOD.replace("phrases: [not]", "phrases: [not, no]"), 9, "YAML read this as false"),
        (GOOD.replace("phrases: [leak]", "regex: ['(?i)leak']"), 5, "bad regex"),
        (GOOD.replace("phrases: [leak]", "regex: ['(a)\\1']"), 5, "backreferences"),
        (GOOD.replace("phrases: [leak]", "regex: ['(?P<x>a)']"), 5, "named groups"),
        (GOOD.replace("phrases: [leak]", "regex: ['a*']"), 5, "matches the empty string"),
        (GOOD.replace("weight: 2", "weight: -1"), 4, "greater than 0"),
        (GOOD + "    needs_subject: true\n", 7, "needs_subject applies to uncertainty"),
    ],
)
def test_each_mistake_names_its_line_and_reason(broken, line, reason):
    found = problems(broken)
    assert found, "no problem reported"
    assert found[0][0] == line, found
    assert reason in found[0][1], found


def test_a_duplicate_rule_id_names_both_lines():
    text = GOOD + "  - id: leak\n    kind: negation\n    phrases: [no-go]\n    scope: {words: 1}\n"
    assert problems(text) == [(11, "duplicate rule id 'leak' (first defined on line 2)")]


def test_a_repeated_section_is_not_silently_dropped():
    text = GOOD + "cues: []\n"
    assert problems(text) == [(11, "duplicate key 'cues' (first on line 1)")]


def test_invalid_yaml_and_empty_files():
    assert problems("cues: [unclosed\n")[0][1].startswith("invalid YAML")
    assert problems("") == [(None, "the rules file is empty")]
    assert problems("- a list\n") == [(1, "a rules file is a mapping (cues:, modifiers:, …)")]


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("severity: red_alert", "severity: panic").replace("words: 4", "words: 0")
    assert [line for line, _ in problems(text)] == [3, 10]


def test_rules_check_prints_file_line_reason_and_fails(tmp_path: Path, capsys):
    bad = tmp_path / "rules.yaml"
    bad.write_text(GOOD.replace("phrases: [leak]", "regex: ['(unclosed']"))
    assert main(["rules", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}:5: cues.0.regex.0: bad regex '(unclosed'")


def test_rules_check_accepts_a_good_file_and_reports_warnings(tmp_path: Path, capsys):
    good = tmp_path / "rules.yaml"
    good.write_text(GOOD.replace("phrases: [not]", "phrases: [not, leak]"))
    assert main(["rules", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}:9: warning: \"leak\" in rule 'negation' is also in rule 'leak' (line 5)" in out
    assert f"{good}: ok, rules version" in out
    assert main(["rules", "check", "--strict", str(good)]) == 1


def test_rules_check_of_a_missing_file(tmp_path: Path, capsys):
    assert main(["rules", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: cannot read: No such file or directory" in capsys.readouterr().out


def test_the_shipped_rules_check_clean(capsys):
    assert main(["rules", "check", "--strict"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_loader_and_compiler_agree_on_a_good_file():
    assert load_rules(GOOD).modifiers[0].scope.words == 4
