"""A trained severity model as a file: weights per feature, read back and applied without numpy.

The file is JSON (sorted keys, rounded weights), so the same training gives the same bytes and
its version — a digest of the content, as a rules version is — names exactly what decided.
Applying it is a sum of weights over the post's features and a softmax: tens of microseconds,
with nothing but the standard library.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.classify.model.features import (
    CHARS,
    WORD,
    features,
    letter_groups,
    pairs,
    readable,
    tokens,
)
from shared.severity import Severity

FORMAT = "redalert-severity-model/1"
CLASSES = [s.value for s in Severity]  # no_danger, assessing, red_alert
DEFAULT_CONFIDENCE = 0.6
WORDS_KEPT = 100_000  # summed weights of this many distinct words, then start again


class ModelError(Exception):
    """The model file cannot be used: missing, unreadable, or not a model this code can apply."""


@dataclass(frozen=True)
class Prediction:
    severity: Severity
    probabilities: dict[str, float]
    words: list[tuple[str, float]]  # what pushed towards `severity` most, by how much


@dataclass(frozen=True)
class ModelArtifact:
    weights: dict[str, tuple[float, float, float]]
    intercept: tuple[float, float, float]
    confidence: float  # the model decides for unsure rules only when this sure (see combine)
    trained: dict[str, Any]  # what it learnt from: sets, posts, corrections, digest, settings
    version: str = ""
    # word -> its weights and its letter groups' summed, and how many the model knows
    _words: dict[str, tuple[float, float, float, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    # --- file ------------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "classes": CLASSES,
            "intercept": list(self.intercept),
            "confidence": self.confidence,
            "trained": self.trained,
            "weights": {f: list(w) for f, w in sorted(self.weights.items())},
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps() + "\n", encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a file

    @classmethod
    def loads(cls, text: str, name: str = "<model>") -> "ModelArtifact":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError(f"{name}: not JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ModelError(f"{name}: not a severity model (format must be {FORMAT!r})")
        if raw.get("classes") != CLASSES:
            raise ModelError(f"{name}: classes must be {CLASSES}")
        try:
            intercept = _three(raw["intercept"])
            weights = {str(f): _three(w) for f, w in raw["weights"].items()}
            confidence = float(raw.get("confidence", DEFAULT_CONFIDENCE))
            trained = dict(raw.get("trained") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{name}: malformed model ({type(e).__name__}: {e})") from None
        if not 0.0 < confidence <= 1.0:
            raise ModelError(f"{name}: confidence must be in (0, 1], not {confidence}")
        return cls(weights, intercept, confidence, trained, version=digest(text))

    @classmethod
    def load(cls, path: Path) -> "ModelArtifact":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ModelError(f"{path}: cannot read ({reason})") from None
        return cls.loads(text.strip(), str(path))

    # --- applying it ---------------------------------------------------------------------------

    def predict(self, text: str, words: int = 0) -> Prediction:
        """The model's answer; with `words`, the words that weighed most for it (slower)."""
        if words:
            return self._explained(text, words)
        weights, cache = self.weights, self._words
        s0 = s1 = s2 = 0.0
        n = 0
        toks = tokens(text)
        for t in set(toks):
            v = cache.get(t)
            if v is None:
                v = self._word(t)
            s0 += v[0]
            s1 += v[1]
            s2 += v[2]
            n += v[3]
        for p in pairs(toks):
            w = weights.get(p)
            if w is not None:
                s0 += w[0]
                s1 += w[1]
                s2 += w[2]
                n += 1
        return self._answer((s0, s1, s2), n, [])

    def _word(self, token: str) -> tuple[float, float, float, int]:
        """A word's own weight and its letter groups', summed once and kept."""
        s0 = s1 = s2 = 0.0
        n = 0
        for f in [WORD + token, *(CHARS + g for g in letter_groups(token))]:
            w = self.weights.get(f)
            if w is not None:
                s0 += w[0]
                s1 += w[1]
                s2 += w[2]
                n += 1
        if len(self._words) >= WORDS_KEPT:
            self._words.clear()
        v = self._words[token] = (s0, s1, s2, n)
        return v

    def _explained(self, text: str, words: int) -> Prediction:
        present = [
            (f, w, k) for f, k in features(text).items() if (w := self.weights.get(f)) is not None
        ]
        sums = tuple(sum(w[i] * k for _, w, k in present) for i in range(3))
        n = sum(k for _, _, k in present)
        p = self._answer(sums, n, [])  # type: ignore[arg-type]
        best = CLASSES.index(p.severity.value)
        scale = 1 / math.sqrt(n) if n else 0.0
        return Prediction(p.severity, p.probabilities, _weighed(present, best, scale, words))

    def _answer(self, sums: tuple[float, float, float], n: int, top: list) -> Prediction:
        scale = 1 / math.sqrt(n) if n else 0.0
        scores = [b + s * scale for b, s in zip(self.intercept, sums, strict=True)]
        high = max(scores)
        exp = [math.exp(s - high) for s in scores]
        total = sum(exp)
        probs = {c: round(e / total, 4) for c, e in zip(CLASSES, exp, strict=True)}
        return Prediction(Severity(CLASSES[scores.index(high)]), probs, top)


def _weighed(
    present: list[tuple[str, tuple[float, float, float], int]], best: int, scale: float, n: int
) -> list[tuple[str, float]]:
    """The words and word pairs that pushed most towards the answer (its weight over the mean of
    the others'); letter groups are summed into one line, as no one reads "lat>" as a reason."""
    if n <= 0 or not present:
        return []
    pushes, letters = [], 0.0
    for f, w, k in present:
        push = (w[best] - (sum(w) - w[best]) / 2) * scale * k
        if f.startswith(CHARS):
            letters += push
        else:
            pushes.append((readable(f), round(push, 3)))
    pushes.sort(key=lambda x: (-x[1], x[0]))
    out = [p for p in pushes[:n] if p[1] > 0]
    if letters:
        out.append(("(letter groups)", round(letters, 3)))
    return out


def _three(value: Any) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in value)
    if not all(math.isfinite(x) for x in (a, b, c)):
        raise ValueError("weights must be finite numbers")
    return (a, b, c)


def digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]
