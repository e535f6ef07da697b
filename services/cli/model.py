"""`redalert model train|show|backtest|rollback`: the severity model, the rules' second opinion.

A model file is versioned like a rules revision: its version is a digest of its content and is
on every classification it took part in. Training writes the new file beside the old one
(kept as FILE.previous), a running classify swaps the new file in within
`REDALERT_RULES_RELOAD_S`, `backtest` shows what a file would change before it is used, and
`rollback` puts the previous file back.
"""

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from services.classify.model import Combined, ModelArtifact, ModelError
from services.classify.model.train import train, training_files
from services.classify.rules import ConfigError, compile_rules, read_rules_file
from services.classify.rules.backtest import backtest
from services.classify.rules.evaluate import read_labelled
from services.cli.common import settings
from shared.settings import PROJECT_ROOT

# The labelled sets and the seed thread (labelled too): what `train` learns from by default.
DATA = [PROJECT_ROOT / "tests" / "data", PROJECT_ROOT / "examples" / "iss-coolant-leak.jsonl"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="train, inspect, backtest and roll back the severity model")
    model = p.add_subparsers(dest="model_command", required=True, metavar="COMMAND")

    t = model.add_parser("train", help="train the model from the labelled sets and corrections")
    t.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="DIR_OR_FILE",
        help="labelled sets (repeatable; default tests/data and the seed thread)",
    )
    t.add_argument(
        "--corrections",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.jsonl",
        help="operators' corrections, exported as a labelled file (repeatable)",
    )
    t.add_argument(
        "--feedback",
        action="store_true",
        help="also the corrections stored in Redis (`redalert label`, the console, the API)",
    )
    t.add_argument("--out", type=Path, help="default: $REDALERT_MODEL_FILE")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_train)

    s = model.add_parser("show", help="the model's version and what it was trained on")
    s.add_argument("file", type=Path, nargs="?", help="default: $REDALERT_MODEL_FILE")
    s.set_defaults(func=run_show)

    b = model.add_parser("backtest", help="which recent posts a model file would change")
    b.add_argument("file", type=Path, metavar="MODEL.json", help="the model to compare with")
    b.add_argument("--rules", type=Path, help="default: $REDALERT_RULES_FILE")
    b.add_argument("--last", type=int, default=1000, help="posts from `classified` (1000)")
    b.add_argument("--examples", type=int, default=3, help="examples per change (3)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=run_backtest)

    r = model.add_parser("rollback", help="put FILE.previous back (the model before the last)")
    r.add_argument("file", type=Path, nargs="?", help="default: $REDALERT_MODEL_FILE")
    r.set_defaults(func=run_rollback)


def _file(arg: Path | None) -> Path | None:
    return arg if arg is not None else settings().model_file


def previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def run_train(args: argparse.Namespace) -> int:
    out = _file(args.out)
    if out is None:
        print("no model file: give --out or set REDALERT_MODEL_FILE", file=sys.stderr)
        return 2
    roots = args.data or DATA
    if not training_files(*roots):
        print(f"{', '.join(map(str, roots))}: no labelled sets (*.jsonl)", file=sys.stderr)
        return 1
    try:
        corrections = [item for f in args.corrections for item in read_labelled(f)]
        if args.feedback:
            from services.cli.rules import _corrections

            corrections += asyncio.run(_corrections())
        model = train(roots, corrections)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    old = _version(out)
    if old != model.version:
        if out.exists():
            shutil.copy2(out, previous(out))
        model.save(out)
    info = {"file": str(out), "version": model.version, "previous": old, **model.trained}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    t = model.trained
    change = "unchanged" if old == model.version else f"was {old or 'none'}"
    print(f"{out}: model {model.version} ({change})")
    print(
        f"  {t['posts']} posts from {len(t['sets'])} sets, {t['corrections']} corrections, "
        f"{t['features']} features (data {t['data_digest']})"
    )
    print("  blind sets (*blind*) are never trained on")
    return 0


def _version(path: Path) -> str | None:
    try:
        return ModelArtifact.load(path).version
    except ModelError:
        return None


def run_show(args: argparse.Namespace) -> int:
    path = _file(args.file)
    if path is None:
        print("no model file configured (REDALERT_MODEL_FILE)", file=sys.stderr)
        return 1
    try:
        model = ModelArtifact.load(path)
    except ModelError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{path}: model {model.version}, decides for unsure rules at >= {model.confidence:g}")
    print(json.dumps(model.trained, indent=2))
    return 0


def run_backtest(args: argparse.Namespace) -> int:
    from services.cli.rules import _print_backtest, _recent

    try:
        model = ModelArtifact.load(args.file)
        rules_path = args.rules if args.rules is not None else settings().rules_file
        engine = compile_rules(read_rules_file(rules_path), str(rules_path))
    except (ModelError, ConfigError) as e:
        print(e, file=sys.stderr)
        return 1
    if args.last < 1:
        print("--last: at least 1", file=sys.stderr)
        return 2
    recorded, skipped = asyncio.run(_recent(args.last))
    report = backtest(Combined(engine, model), recorded, examples=args.examples)  # type: ignore[arg-type]
    report.version = f"{engine.version} + model {model.version}"
    if args.json:
        print(json.dumps({**report.as_json(), "skipped": skipped}, indent=2, ensure_ascii=False))
        return 0
    _print_backtest(args.file, report, skipped)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    path = _file(args.file)
    if path is None:
        print("no model file configured (REDALERT_MODEL_FILE)", file=sys.stderr)
        return 1
    before = previous(path)
    try:
        model = ModelArtifact.load(before)
    except ModelError as e:
        print(f"nothing to roll back to: {e}", file=sys.stderr)
        return 1
    current = path.with_name(path.name + ".rolled-back")
    if path.exists():
        path.replace(current)
    before.replace(path)
    if current.exists():
        current.replace(before)  # rolling back twice goes forward again
    print(f"{path}: model {model.version} is back (the one it replaced is {before})")
    return 0
