"""What new rules would change: recent posts re-classified, compared with what they got."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.classify.rules.engine import Engine
from shared.models import Classification


@dataclass
class Change:
    post_id: str
    source: str
    text: str
    before: str
    after: str
    old_version: str


@dataclass
class Backtest:
    version: str  # of the new rules
    n: int = 0
    changed: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # "red_alert -> assessing": n
    examples: dict[str, list[Change]] = field(default_factory=dict)
    old_versions: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "n": self.n,
            "changed": self.changed,
            "unchanged": self.n - self.changed,
            "changes": dict(self.counts.most_common()),
            "examples": {k: [vars(c) for c in v] for k, v in self.examples.items()},
            "old_versions": dict(self.old_versions),
        }


def backtest(engine: Engine, recorded: Iterable[Classification], examples: int = 3) -> Backtest:
    """Re-classify each recorded post with `engine`; count and sample the severity changes."""
    report = Backtest(engine.version)
    for old in recorded:
        report.n += 1
        report.old_versions[old.rules_version or "?"] += 1
        new = engine.classify(old.post)
        if new.severity is old.severity:
            continue
        report.changed += 1
        key = f"{old.severity.value} -> {new.severity.value}"
        report.counts[key] += 1
        sample = report.examples.setdefault(key, [])
        if len(sample) < examples:
            sample.append(
                Change(
                    post_id=old.post.id,
                    source=old.post.source,
                    text=old.post.text,
                    before=old.severity.value,
                    after=new.severity.value,
                    old_version=old.rules_version,
                )
            )
    return report
