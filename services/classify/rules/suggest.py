"""Phrase cues mined from posts the rules get wrong, each with its effect measured.

For every post whose label is above what the rules say (a red alert they called assessing, an
assessing post they called no danger), the word n-grams it contains are candidates for a cue of
its label. A candidate is worth proposing when it appears in more such posts than in posts
labelled below that severity; each is then tried — the rules plus that one cue — against every
labelled set given, and reported with what it fixes and what it breaks there. Nothing is
applied: a person reads the proposal and saves the rules.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.classify.rules.engine import Engine
from services.classify.rules.evaluate import Labelled
from services.classify.rules.schema import Cue, RulesFile
from shared.models import Classification
from shared.severity import Severity

WORD = re.compile(r"[a-z0-9][a-z0-9'’\-]*")
STOP = frozenset(
    """a an the and or but of to in on at by for with from as is are was were be been being it
    its this that these those there here has have had do does did not no so if then than too
    very just i we you he she they me us him her them my our your his their what which who whom
    when where why how all any some can could would should will shall may might must up out
    about into over after before again more most other such only own same s t via rt amp""".split()
)
CUE_SEVERITIES = (Severity.RED_ALERT, Severity.ASSESSING)
TRIED = 8


@dataclass
class Effect:
    before: float  # macro-F1 with the rules as they are
    after: float  # with the proposed cue added
    fixed: int  # posts it gets right that were wrong
    broken: int  # posts it gets wrong that were right

    def as_json(self) -> dict[str, Any]:
        return vars(self)


@dataclass
class Suggestion:
    phrase: str
    severity: Severity
    weight: float
    support: int  # mined posts it would help (labelled `severity`, called lower)
    against: int  # mined posts labelled lower that contain it
    examples: list[str] = field(default_factory=list)  # ids of posts it helps
    effects: dict[str, Effect] = field(default_factory=dict)  # labelled set -> effect
    traffic: int = 0  # recent posts measured
    traffic_changed: Counter[str] = field(default_factory=Counter)  # "no_danger -> red_alert": n

    @property
    def net(self) -> int:
        return sum(e.fixed - e.broken for e in self.effects.values())

    def yaml(self) -> str:
        rule_id = "suggested-" + re.sub(r"[^a-z0-9]+", "-", self.phrase.lower()).strip("-")
        return (
            f"  - id: {rule_id}\n    severity: {self.severity.value}\n"
            f"    weight: {self.weight:g}\n    phrases: [{_quoted(self.phrase)}]\n"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "phrase": self.phrase,
            "severity": self.severity.value,
            "weight": self.weight,
            "support": self.support,
            "against": self.against,
            "examples": self.examples,
            "net": self.net,
            "effects": {k: v.as_json() for k, v in self.effects.items()},
            "traffic": {"n": self.traffic, "changes": dict(self.traffic_changed)},
            "yaml": self.yaml(),
        }


def _quoted(phrase: str) -> str:
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ngrams(text: str, longest: int = 3) -> set[str]:
    """Word n-grams that neither start nor end with a stop word."""
    words = WORD.findall(text.lower())
    out = set()
    for n in range(1, longest + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if gram[0] in STOP or gram[-1] in STOP or len("".join(gram)) < 4:
                continue
            out.add(" ".join(gram))
    return out


def candidates(
    engine: Engine, mined: list[Labelled], limit: int = 30
) -> list[tuple[str, Severity, int, int, list[str]]]:
    """(phrase, severity, support, against, example ids), best first."""
    said = {item.post.key: engine.classify(item.post).severity for item in mined}
    grams = {item.post.key: ngrams(item.post.text) for item in mined}
    found = []
    for severity in CUE_SEVERITIES:
        missed = [i for i in mined if i.label is severity and said[i.post.key] < severity]
        lower = [i for i in mined if i.label < severity]
        support: Counter[str] = Counter(g for i in missed for g in grams[i.post.key])
        against: Counter[str] = Counter(g for i in lower for g in grams[i.post.key])
        for phrase, n in support.items():
            if n > against[phrase]:
                ids = [i.post.id for i in missed if phrase in grams[i.post.key]][:5]
                found.append((phrase, severity, n, against[phrase], ids))
    # More posts helped first; then fewer against; then longer (more specific) phrases.
    found.sort(key=lambda f: (-(f[2] - f[3]), f[3], -len(f[0].split()), f[0]))
    return found[:limit]


def with_cue(
    rules: RulesFile, phrase: str, severity: Severity, weight: float, version: str
) -> Engine:
    cue = Cue(id="suggested", severity=severity, weight=weight, phrases=[phrase])
    # A version given skips hashing the whole rules file: a third of compiling them.
    return Engine(rules.model_copy(update={"cues": [*rules.cues, cue]}), version=version)


def suggest(
    engine: Engine,
    mined: list[Labelled],
    sets: dict[str, list[Labelled]],
    limit: int = 10,
    tried: int = TRIED,
    traffic: list[Classification] | None = None,
) -> list[Suggestion]:
    """Proposed cues, each measured on every labelled set in `sets` (mined ones included).

    The best `tried` candidates are measured: each is a compile of the whole rules (about a
    second for the shipped rules), so measuring every n-gram would take minutes. With `traffic`
    (recent classifications), each also says which of those posts would change severity."""
    rules = engine.rules
    baseline = {name: _verdicts(engine, items) for name, items in sets.items()}
    lowered = {name: [i.post.text.lower() for i in items] for name, items in sets.items()}
    out = []
    for phrase, severity, support, against, ids in candidates(engine, mined, tried):
        weight = getattr(rules.thresholds, severity.value)
        draft = with_cue(rules, phrase, severity, weight, f"{engine.version}+{phrase}")
        s = Suggestion(phrase, severity, weight, support, against, ids)
        for name, items in sets.items():
            before = baseline[name]
            after = list(before)
            # Only a post with the phrase in it can change: the others keep their verdict.
            for n, text in enumerate(lowered[name]):
                if phrase in text:
                    after[n] = draft.classify(items[n].post).severity
            labels = [i.label for i in items]
            fixed = sum(1 for g, b, a in zip(labels, before, after, strict=True) if b != g == a)
            broken = sum(1 for g, b, a in zip(labels, before, after, strict=True) if b == g != a)
            s.effects[name] = Effect(
                macro_f1(labels, before), macro_f1(labels, after), fixed, broken
            )
        for old in traffic or []:
            s.traffic += 1
            if phrase in old.post.text.lower():
                new = draft.classify(old.post).severity
                if new is not old.severity:
                    s.traffic_changed[f"{old.severity.value} -> {new.value}"] += 1
        if any(e.fixed for e in s.effects.values()):
            out.append(s)
    out.sort(key=lambda s: (-s.net, -s.support, s.phrase))
    return out[:limit]


def macro_f1(labels: list[Severity], verdicts: list[Severity]) -> float:
    """As `evaluate` counts it: the mean F1 of the classes someone has or someone got."""
    scores = []
    for s in Severity:
        tp = sum(1 for g, v in zip(labels, verdicts, strict=True) if g is s and v is s)
        predicted = sum(1 for v in verdicts if v is s)
        support = sum(1 for g in labels if g is s)
        if not (predicted or support):
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return round(sum(scores) / len(scores), 4) if scores else 0.0


def _verdicts(engine: Engine, items: Iterable[Labelled]) -> list[Severity]:
    return [engine.classify(item.post).severity for item in items]
