"""Training the severity model: every labelled set but the blind ones, and operators' corrections.

Deterministic: the posts are read in a fixed order, features and vocabulary are sorted, and the
solver (L-BFGS, no random start) finds the same weights from the same data — so `redalert model
train` run twice gives the same file, and the same version.

A correction is an operator saying "this post is X" (the console's labels, exported as a
labelled file). It replaces the label of the same text in the sets and weighs more than a
written example: one person fixing one post should change what the next model says about it.
"""

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.classify.model.artifact import CLASSES, DEFAULT_CONFIDENCE, ModelArtifact
from services.classify.model.features import features
from services.classify.rules.evaluate import Labelled, read_labelled
from shared.severity import Severity

C = 8.0  # inverse regularisation: the sets are small and written to be read literally
MIN_DF = 2  # a feature seen in one post only is that post's, not a pattern
CORRECTION_WEIGHT = 5.0
BLIND = "blind"  # a labelled file with this in its name is an exam: never learnt from


@dataclass(frozen=True)
class Example:
    text: str
    label: Severity
    weight: float = 1.0


def training_files(*roots: Path) -> list[Path]:
    """Every labelled file under the roots (folders, or files) except the blind parts."""
    found = {f for r in roots for f in ([r] if r.is_file() else r.rglob("*.jsonl"))}
    keep = (p for p in found if BLIND not in p.name and _labelled(p))
    return sorted(keep, key=lambda p: (p.name, str(p)))


def _labelled(path: Path) -> bool:
    """A labelled set: its first line has a `label` (other JSONL there, such as pairs, is not)."""
    try:
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        return isinstance(row := json.loads(first), dict) and "label" in row
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def examples(
    files: Iterable[Path], corrections: Iterable[Labelled] = ()
) -> tuple[list[Example], dict[str, int], int]:
    """(examples, posts per file, corrections applied). A correction wins over a set's label."""
    by_text: dict[str, Example] = {}
    counts: dict[str, int] = {}
    for path in files:
        items = read_labelled(path)
        counts[path.name] = len(items)
        for item in items:
            by_text.setdefault(item.post.text, Example(item.post.text, item.label))
    fixed = 0
    for item in corrections:
        by_text[item.post.text] = Example(item.post.text, item.label, CORRECTION_WEIGHT)
        fixed += 1
    return [by_text[t] for t in sorted(by_text)], counts, fixed


def data_digest(items: list[Example]) -> str:
    h = hashlib.sha256()
    for e in items:
        h.update(f"{e.label.value}\t{e.weight:g}\t{e.text}\n".encode())
    return h.hexdigest()[:12]


def fit(
    items: list[Example],
    *,
    c: float = C,
    min_df: int = MIN_DF,
    confidence: float = DEFAULT_CONFIDENCE,
    trained: dict | None = None,
) -> ModelArtifact:
    """A multinomial logistic regression over binary, l2-normalised features."""
    import numpy as np  # training only: classification needs neither numpy nor scikit-learn
    import sklearn
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    if len({e.label for e in items}) < len(CLASSES):
        raise ValueError("training needs posts of every severity")
    items = sorted(items, key=lambda e: (e.text, e.label.value, e.weight))  # order is no input
    feats = [sorted(features(e.text).items()) for e in items]
    df = Counter(f for fs in feats for f, _ in fs)
    vocab = sorted(f for f, n in df.items() if n >= min_df)
    index = {f: i for i, f in enumerate(vocab)}
    rows, cols, vals = [], [], []
    for r, fs in enumerate(feats):
        known = [(index[f], k) for f, k in fs if f in index]
        scale = 1 / math.sqrt(sum(k for _, k in known)) if known else 0.0
        for col, k in known:
            rows.append(r)
            cols.append(col)
            vals.append(k * scale)
    x = csr_matrix((vals, (rows, cols)), shape=(len(items), len(vocab)), dtype=np.float64)
    y = np.array([CLASSES.index(e.label.value) for e in items])
    model = LogisticRegression(C=c, max_iter=5000, tol=1e-8)
    model.fit(x, y, sample_weight=np.array([e.weight for e in items]))
    coef = model.coef_.T  # features x classes
    weights = {f: tuple(round(float(v), 4) for v in coef[i]) for i, f in enumerate(vocab)}
    info = {
        **(trained or {}),
        "posts": len(items),
        "features": len(vocab),
        "c": c,
        "min_df": min_df,
        "data_digest": data_digest(items),
        "scikit_learn": sklearn.__version__,
    }
    intercept = tuple(round(float(v), 4) for v in model.intercept_)
    probe = ModelArtifact(weights, intercept, confidence, info)  # type: ignore[arg-type]
    return ModelArtifact.loads(probe.dumps())  # as read back from a file: versioned


def train(
    roots: Iterable[Path], corrections: Iterable[Labelled] = (), **kwargs: float
) -> ModelArtifact:
    """From every labelled file under `roots` (the blind parts excepted) and `corrections`."""
    files = training_files(*roots)
    items, counts, fixed = examples(files, corrections)
    trained = {"sets": counts, "corrections": fixed}
    return fit(items, trained=trained, **kwargs)  # type: ignore[arg-type]
