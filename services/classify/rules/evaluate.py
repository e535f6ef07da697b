"""How well rules agree with labelled posts: precision, recall and F1 per severity, confusion."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from services.classify.rules.engine import Engine
from shared.models import Classification, Post
from shared.severity import Severity
from shared.yamlfile import ConfigError

SEVERITIES = list(Severity)  # no_danger, assessing, red_alert: the order of every table


class Classifier(Protocol):
    """The rules alone (Engine), the model alone, or both (services.classify.model.combine)."""

    version: str

    def classify(self, post: Post) -> Classification: ...


@dataclass(frozen=True)
class Labelled:
    post: Post
    label: Severity
    # The line's other fields (`register`, `kind`, `tags`…), for reports grouped by one of them.
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    def groups(self, name: str) -> list[str]:
        """The groups this post is in by field `name`: one per value of a list (tags)."""
        value = self.fields.get(name)
        if value is None:
            return ["(none)"]
        if isinstance(value, list):
            return [str(v) for v in value] or ["(none)"]
        return [str(value)]


def as_labelled(raw: dict[str, Any]) -> Labelled:
    """One labelled-set line, already parsed (an exported correction is one too)."""
    fields = {k: raw[k] for k in ("id", "source", "author", "text") if raw.get(k) is not None}
    extra = {k: v for k, v in raw.items() if k not in ("text", "label")}
    return Labelled(Post.model_validate(fields), Severity(raw["label"]), extra)


def read_labelled(path: Path) -> list[Labelled]:
    """JSONL with `text` and `label` per line (and optionally `id`, `source`, `author`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError([(str(path), None, f"cannot read: {reason}")]) from None
    items, problems = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("each line is a JSON object with `text` and `label`")
            if "label" not in raw:
                raise ValueError("label: missing (no_danger, assessing or red_alert)")
            label = Severity(raw["label"])
            fields = {k: raw[k] for k in ("id", "source", "author", "text") if k in raw}
            fields.setdefault("id", f"line-{n}")
            extra = {k: v for k, v in raw.items() if k not in ("text", "label")}
            items.append(Labelled(Post.model_validate(fields), label, extra))
        except json.JSONDecodeError as e:
            problems.append((str(path), n, f"not JSON: {e.msg}"))
        except ValidationError as e:
            err = e.errors()[0]
            problems.append((str(path), n, f"{'.'.join(map(str, err['loc']))}: {err['msg']}"))
        except ValueError as e:
            problems.append((str(path), n, str(e)))
    if problems:
        raise ConfigError(problems)
    return items


@dataclass
class ClassScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScore]
    confusion: dict[str, dict[str, int]]  # label -> predicted -> count
    misclassified: list[tuple[Labelled, Classification]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {k: vars(v) for k, v in self.per_class.items()},
            "confusion": self.confusion,
            "misclassified": [
                {
                    "id": item.post.id,
                    "text": item.post.text,
                    "label": item.label.value,
                    "predicted": c.severity.value,
                    "fired": [f"{h.rule}:{h.text}:{h.effect}" for h in c.hits],
                }
                for item, c in self.misclassified
            ],
        }


def group_by(items: Iterable[Labelled], name: str) -> dict[str, list[Labelled]]:
    """Posts by the value of one field of their line, groups in sorted order."""
    groups: dict[str, list[Labelled]] = {}
    for item in items:
        for g in item.groups(name):
            groups.setdefault(g, []).append(item)
    return dict(sorted(groups.items()))


def evaluate(engine: Engine | Classifier, items: Iterable[Labelled]) -> Report:
    confusion = {g.value: {p.value: 0 for p in SEVERITIES} for g in SEVERITIES}
    wrong = []
    n = 0
    for item in items:
        c = engine.classify(item.post)
        confusion[item.label.value][c.severity.value] += 1
        n += 1
        if c.severity is not item.label:
            wrong.append((item, c))
    per_class, counted = {}, []
    for s in SEVERITIES:
        tp = confusion[s][s]
        predicted = sum(confusion[g][s] for g in confusion)
        support = sum(confusion[s].values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[s.value] = ClassScore(_r(precision), _r(recall), _r(f1), support)
        if support or predicted:  # as scikit-learn: a class nobody has and nobody got is left out
            counted.append(f1)
    correct = sum(confusion[s][s] for s in confusion)
    return Report(
        n=n,
        accuracy=_r(correct / n) if n else 0.0,
        macro_f1=_r(sum(counted) / len(counted)) if counted else 0.0,
        per_class=per_class,
        confusion=confusion,
        misclassified=wrong,
    )


def _r(x: float) -> float:
    return round(x, 4)
