"""Severity rules: the file format (schema), loading with line numbers, and the engine."""

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from services.classify.rules.engine import Engine, rules_version
from services.classify.rules.schema import RulesFile
from shared.yamlfile import ConfigError, Lines, parse, validation_problems

__all__ = [
    "ConfigError",
    "Engine",
    "RulesFile",
    "compile_rules",
    "load_rules",
    "load_rules_file",
    "read_rules_file",
    "rules_version",
]


def load_rules(text: str, name: str = "<rules>") -> RulesFile:
    """Parse and validate a rules file; every problem is reported as `NAME:LINE: reason`."""
    data, lines = parse(text, name)
    if data is None:
        raise ConfigError([(name, None, "the rules file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([(name, 1, "a rules file is a mapping (cues:, modifiers:, …)")])
    _check_duplicate_keys(text, name)
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_problems(e, lines, name)) from None
    _check_unique_ids(rules, lines, name)
    return rules


def compile_rules(text: str, name: str = "<rules>") -> Engine:
    """Validate and compile: what a running service checks before it swaps its rules."""
    rules = load_rules(text, name)
    try:
        return Engine(rules)
    except (re.error, RecursionError, OverflowError) as e:  # limits of the joined pattern
        raise ConfigError([(name, None, f"the rules do not compile: {e}")]) from None


def read_rules_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError([(str(path), None, f"cannot read: {reason}")]) from None


def load_rules_file(path: Path) -> RulesFile:
    return load_rules(read_rules_file(path), str(path))


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


def _check_duplicate_keys(text: str, name: str) -> None:
    """YAML lets a key repeat and keeps the last: a second `cues:` would silently drop the first."""
    problems = []
    stack = [yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        problems.append(
                            (
                                name,
                                line,
                                f"duplicate key {key.value!r} (first on line {seen[key.value]})",
                            )
                        )
                    seen.setdefault(key.value, line)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p[1] or 0))
