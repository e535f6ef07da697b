#!/usr/bin/env python3
"""How fast the severity engine classifies posts, on one core, with the shipped rules and model.

    python bench/rules_engine.py            # figures for people
    python bench/rules_engine.py --json     # one JSON object
    python bench/rules_engine.py --rules my-rules.yaml --model my-model.json --seconds 5

Three figures: the rules alone, the model alone (on every post), and the two combined as
classify runs them — the model asked only where the rules are unsure (the share is reported).

The posts are the labelled set (tests/data) and the seed thread: real posts of every kind and
length, classified again and again for `--seconds` per round; the best of `--rounds` rounds is
reported (the machine is shared: the best round is the one least disturbed by others).
"""

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.classify.model import Combined, ModelArtifact, unsure  # noqa: E402
from services.classify.rules import compile_rules, read_rules_file  # noqa: E402
from shared.models import Post  # noqa: E402

CORPORA = [ROOT / "tests" / "data" / "tune.jsonl", ROOT / "tests" / "data" / "heldout.jsonl"]
SEED = ROOT / "examples" / "iss-coolant-leak.jsonl"


def posts() -> list[Post]:
    out = []
    for path in [*CORPORA, SEED]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                out.append(Post(text=raw["text"], source=raw.get("source", "bench")))
    return out


def rate(fn, items: list, seconds: float) -> float:
    """Items per second over at least `seconds`."""
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rules", type=Path, default=ROOT / "config" / "rules.yaml")
    p.add_argument("--model", type=Path, default=ROOT / "config" / "model.json")
    p.add_argument("--seconds", type=float, default=2.0, help="per round (2)")
    p.add_argument("--rounds", type=int, default=3, help="best of (3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()

    text = read_rules_file(args.rules)
    t0 = time.perf_counter()
    engine = compile_rules(text, str(args.rules))
    compile_ms = (time.perf_counter() - t0) * 1000
    corpus = posts()
    chars = statistics.mean(len(x.text) for x in corpus)
    hits = statistics.mean(len(engine.classify(x).hits) for x in corpus)
    model = ModelArtifact.load(args.model)
    combined = Combined(engine, model)
    asked = sum(unsure(engine.classify(x)) is not None for x in corpus) / len(corpus)

    gc.disable()  # a collection in the middle of a round measures the collector, not the engine
    try:
        classify = [rate(engine.classify, corpus, args.seconds) for _ in range(args.rounds)]
        texts = [x.text for x in corpus]
        scan = [rate(engine._find, texts, args.seconds) for _ in range(args.rounds)]
        alone = [rate(model.predict, texts, args.seconds) for _ in range(args.rounds)]
        both = [rate(combined.classify, corpus, args.seconds) for _ in range(args.rounds)]
    finally:
        gc.enable()

    rules = engine.rules
    result = {
        "benchmark": "rules_engine",
        "rules": str(args.rules),
        "rules_version": engine.version,
        "phrases": sum(len(r.phrases) for r in [*rules.cues, *rules.modifiers])
        + len(rules.ignore.phrases),
        "regexes": sum(len(r.regex) for r in [*rules.cues, *rules.modifiers])
        + len(rules.ignore.regex),
        "compile_ms": round(compile_ms, 1),
        "posts": len(corpus),
        "mean_chars": round(chars, 1),
        "mean_hits": round(hits, 2),
        "posts_per_s": round(max(classify)),
        "posts_per_s_rounds": [round(r) for r in classify],
        "us_per_post": round(1e6 / max(classify), 1),
        "scan_only_posts_per_s": round(max(scan)),
        "model_version": model.version,
        "model_posts_per_s": round(max(alone)),
        "model_us_per_post": round(1e6 / max(alone), 1),
        "combined_posts_per_s": round(max(both)),
        "combined_posts_per_s_rounds": [round(r) for r in both],
        "combined_us_per_post": round(1e6 / max(both), 1),
        "share_asked": round(asked, 3),
        "target_posts_per_s": 20_000,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"rules engine: {args.rules} (version {engine.version})")
    print(
        f"  {result['phrases']} phrases, {result['regexes']} regexes; "
        f"compiled in {result['compile_ms']} ms"
    )
    print(
        f"  {len(corpus)} posts, {chars:.0f} characters and {hits:.1f} hits on average, "
        f"one core, best of {args.rounds} rounds of {args.seconds:g} s"
    )
    print(
        f"  classify:   {result['posts_per_s']:>8,} posts/s  ({result['us_per_post']} µs/post; "
        f"rounds {', '.join(f'{r:,}' for r in result['posts_per_s_rounds'])})"
    )
    print(f"  scan only:  {result['scan_only_posts_per_s']:>8,} posts/s  (finding the matches)")
    print(
        f"  model:      {result['model_posts_per_s']:>8,} posts/s  "
        f"({result['model_us_per_post']} µs/post, on every post; model {model.version})"
    )
    print(
        f"  combined:   {result['combined_posts_per_s']:>8,} posts/s  "
        f"({result['combined_us_per_post']} µs/post; the model asked for "
        f"{asked:.0%} of the posts, where the rules are unsure)"
    )
    print(f"  target:     {result['target_posts_per_s']:>8,} posts/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
