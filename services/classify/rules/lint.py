"""Warnings about a valid rules file: things that are allowed but probably not meant."""

from services.classify.rules.engine import normalise
from services.classify.rules.schema import RulesFile
from shared.yamlfile import parse


def lint(rules: RulesFile, text: str, name: str) -> list[str]:
    """`NAME:LINE: warning: …` for phrases listed twice, or hidden by an `ignore` entry."""
    _, lines = parse(text, name)
    first: dict[str, tuple[str, int | None]] = {}
    warnings = []

    def seen(phrase: str, rule: str, line: int | None) -> None:
        key = normalise(phrase)
        if key in first:
            other, other_line = first[key]
            where = f"rule {other!r}" + (f" (line {other_line})" if other_line else "")
            if other == "ignore":
                warnings.append(_w(name, line, f'"{phrase}" never fires: ignored by {where}'))
            else:
                also = "listed twice" if other == rule else f"also in {where}: both fire"
                warnings.append(_w(name, line, f'"{phrase}" in rule {rule!r} is {also}'))
        else:
            first[key] = (rule, line)

    for j, phrase in enumerate(rules.ignore.phrases):
        seen(phrase, "ignore", lines.get(("ignore", "phrases", j)))
    for section, items in (("cues", rules.cues), ("modifiers", rules.modifiers)):
        for i, rule in enumerate(items):
            for j, phrase in enumerate(rule.phrases):
                seen(phrase, rule.id, lines.get((section, i, "phrases", j)))
    return warnings


def _w(name: str, line: int | None, message: str) -> str:
    return f"{name}:{line}: warning: {message}" if line else f"{name}: warning: {message}"
