"""Correlation quality: precision and recall of "same incident" on the labelled pairs.

    python bench/correlation_pairs.py [--similarity S] [--wrong]

Reads tests/data/pairs/tune.jsonl (tuned on) and tests/data/pairs/heldout.jsonl (held out);
see services/classify/pairs.py for what a pair is.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.classify.correlation import Policy  # noqa: E402
from services.classify.pairs import read_pairs, score  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--similarity", type=float, default=Policy().similarity)
    parser.add_argument("--wrong", action="store_true", help="list the pairs it gets wrong")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for name in ("tune", "heldout"):
        pairs = read_pairs(ROOT / "tests" / "data" / "pairs" / f"{name}.jsonl")
        s = score(pairs, Policy(similarity=args.similarity))
        figures |= {f"{name}_precision": s.precision, f"{name}_recall": s.recall}
        if args.json:
            continue
        print(
            f"{name:<8} {s.pairs} pairs  precision {s.precision:.2f}  "
            f"recall {s.recall:.2f}  F1 {s.f1:.2f}"
        )
        for p in s.wrong if args.wrong else []:
            print(f"    {'same' if p.same else 'different'}: {p.incident[-1]!r} / {p.post!r}")
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
