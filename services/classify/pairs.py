"""Labelled pairs for correlation: "does this post belong to that incident?", and how often the
correlation gets it right (precision and recall of "same incident").

A pair is a JSON line: `{"incident": [texts of its posts], "post": text, "same": true|false}`.
Every text is taken as an alarm on one shared topic — what is measured is the wording alone, the
hard case: the same topic, similar words, another place or object, or the same event told
differently (tests/data/pairs/tune.jsonl tunes, tests/data/pairs/heldout.jsonl measures).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.classify import incidents
from services.classify.correlation import Policy, choose
from shared.models import Classification, Hit, Post
from shared.severity import Severity

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Pair:
    incident: list[str]
    post: str
    same: bool


@dataclass(frozen=True)
class Score:
    pairs: int
    precision: float
    recall: float
    wrong: list[Pair]

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_pairs(path: Path) -> list[Pair]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Pair(r["incident"], r["post"], bool(r["same"])) for r in rows]


def _alarm(text: str, n: int) -> Classification:
    post = Post(id=f"p{n}", source="pairs", text=text, received_at=T0 + timedelta(minutes=n))
    hit = Hit(rule="alarm", kind="cue", text=text[:1], start=0, end=1)
    return Classification(post=post, severity=Severity.RED_ALERT, topics=["topic"], hits=[hit])


def joins(pair: Pair, policy: Policy) -> bool:
    incident = None
    for n, text in enumerate(pair.incident):
        c = _alarm(text, n)
        incident = incidents.apply_post(incident, c, new_id="i", now=c.post.received_at).incident
    assert incident is not None
    c = _alarm(pair.post, len(pair.incident))
    now = c.post.received_at
    choice = choose(c, by_key=None, candidates=[incident], now=now, policy=policy)
    return choice.incident_id == incident.id


def score(pairs: list[Pair], policy: Policy) -> Score:
    said = [joins(p, policy) for p in pairs]
    tp = sum(1 for p, s in zip(pairs, said, strict=True) if s and p.same)
    fp = sum(1 for p, s in zip(pairs, said, strict=True) if s and not p.same)
    fn = sum(1 for p, s in zip(pairs, said, strict=True) if not s and p.same)
    wrong = [p for p, s in zip(pairs, said, strict=True) if s != p.same]
    return Score(
        pairs=len(pairs),
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        wrong=wrong,
    )
