"""Severity rules: the file format (schema), loading with line numbers, and the engine."""

from pathlib import Path

from pydantic import ValidationError

from services.classify.rules.engine import Engine, rules_version
from services.classify.rules.schema import RulesFile
from shared.yamlfile import ConfigError, Lines, parse, validation_problems

__all__ = ["ConfigError", "Engine", "RulesFile", "load_rules", "load_rules_file", "rules_version"]


def load_rules(text: str, name: str = "<rules>") -> RulesFile:
    """Parse and validate a rules file; every problem is reported as `NAME:LINE: reason`."""
    data, lines = parse(text, name)
    if data is None:
        raise ConfigError([(name, None, "the rules file is empty")])
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_problems(e, lines, name)) from None
    _check_unique_ids(rules, lines, name)
    return rules


def load_rules_file(path: Path) -> RulesFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([(str(path), None, f"cannot read: {e.strerror}")]) from None
    return load_rules(text, str(path))


def _check_unique_ids(rules: RulesFile, lines: Lines, name: str) -> None:
    seen: dict[str, int | None] = {}
    problems = []
    for section, items in (("cues", rules.cues), ("modifiers", rules.modifiers)):
        for i, rule in enumerate(items):
            line = lines.get((section, i, "id"))
            if rule.id in seen:
                first = seen[rule.id]
                problems.append(
                    (name, line, f"duplicate rule id {rule.id!r} (first defined on line {first})")
                )
            else:
                seen[rule.id] = line
    if problems:
        raise ConfigError(problems)
