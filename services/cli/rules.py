"""`redalert rules check|test|eval|backtest|suggest`: tune severity rules before they go live."""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from redis.exceptions import RedisError

from services.classify.model import Combined, ModelAlone, ModelArtifact, ModelError
from services.classify.rules import ConfigError, Engine, compile_rules, load_rules, read_rules_file
from services.classify.rules.backtest import Backtest, backtest
from services.classify.rules.evaluate import (
    SEVERITIES,
    Labelled,
    Report,
    as_labelled,
    evaluate,
    group_by,
    read_labelled,
)
from services.classify.rules.explain import (
    brackets,
    decision,
    describe,
    highlight,
    hint_lines,
    verdict,
)
from services.classify.rules.lint import lint
from services.classify.rules.suggest import TRIED, suggest
from services.cli.common import settings
from shared import keys
from shared.codec import DecodeError, decode
from shared.corrections import iter_corrections
from shared.models import Classification, Hit, Post, SourceHint
from shared.redis import redis_client
from shared.severity import Severity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="check, test, evaluate and backtest severity rules")
    rules = p.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")

    c = rules.add_parser("check", help="validate a rules file (FILE:LINE: reason on error)")
    c.add_argument("file", type=Path, nargs="?", help="default: $REDALERT_RULES_FILE")
    c.add_argument("--strict", action="store_true", help="warnings fail the check too")
    c.set_defaults(func=run_check)

    t = rules.add_parser("test", help="classify a text and show which rules fired")
    t.add_argument("text", help="the post's text")
    t.add_argument("--rules", type=Path, help="default: $REDALERT_RULES_FILE")
    t.add_argument("--source", default="cli", help="the post's source (its trust applies)")
    t.add_argument("--author", help="the post's author")
    t.add_argument(
        "--hint",
        type=_hint,
        help="a structured source's hint: SCHEME:NAME=VALUE,… "
        "(cap:severity=Minor,certainty=Possible,urgency=Future)",
    )
    t.add_argument("--json", action="store_true", help="print the classification as JSON")
    _model_arguments(t)
    t.set_defaults(func=run_test)

    e = rules.add_parser("eval", help="precision, recall and F1 against labelled posts")
    e.add_argument(
        "files",
        type=Path,
        nargs="*",
        metavar="LABELLED.jsonl",
        help="posts with a `label` each (no_danger, assessing, red_alert)",
    )
    e.add_argument(
        "--feedback", action="store_true", help="also count operators' corrections (from Redis)"
    )
    e.add_argument("--rules", type=Path, help="default: $REDALERT_RULES_FILE")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--show", type=int, default=50, help="misclassified posts to list (50)")
    e.add_argument(
        "--by", metavar="FIELD", help="also report each group of posts by a field (register, kind)"
    )
    _model_arguments(e)
    e.set_defaults(func=run_eval)

    b = rules.add_parser("backtest", help="which recent posts new rules would change")
    b.add_argument(
        "file", type=Path, metavar="NEW_RULES.yaml", help="the rules file to compare with"
    )
    b.add_argument("--last", type=int, default=1000, help="posts from `classified` (1000)")
    b.add_argument("--examples", type=int, default=3, help="examples per change (3)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.set_defaults(func=run_backtest)

    s = rules.add_parser("suggest", help="phrase cues mined from posts the rules get wrong")
    s.add_argument("files", type=Path, nargs="*", metavar="LABELLED.jsonl", help="posts to mine")
    s.add_argument("--feedback", action="store_true", help="mine operators' corrections too")
    s.add_argument(
        "--against",
        type=Path,
        nargs="*",
        default=[],
        metavar="LABELLED.jsonl",
        help="more labelled sets to measure each proposal on",
    )
    s.add_argument("--rules", type=Path, help="default: $REDALERT_RULES_FILE")
    s.add_argument(
        "--last",
        type=int,
        default=1000,
        help="recent classified posts to measure on (1000; 0: none)",
    )
    s.add_argument("--limit", type=int, default=10, help="proposals to show (10)")
    s.add_argument("--tried", type=int, default=TRIED, help=f"best candidates to measure ({TRIED})")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_suggest)


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="severity model file (default: $REDALERT_MODEL_FILE)")
    p.add_argument("--no-model", action="store_true", help="the rules alone")


def _model(args: argparse.Namespace) -> ModelArtifact | None:
    """The model named (or configured); a missing or bad one is a warning: the rules alone."""
    if args.no_model:
        return None
    path = args.model if args.model is not None else settings().model_file
    if path is None:
        return None
    try:
        return ModelArtifact.load(path)
    except ModelError as e:
        print(f"warning: {e}; the rules alone", file=sys.stderr)
        return None


def _path(arg: Path | None) -> Path:
    return arg if arg is not None else settings().rules_file


def _engine(path: Path) -> Engine:
    try:
        return compile_rules(read_rules_file(path), str(path))
    except ConfigError as e:
        print(e, file=sys.stderr)
        raise SystemExit(1) from None


# --- check ---------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    path = _path(args.file)
    try:
        text = read_rules_file(path)
        engine = compile_rules(text, str(path))
    except ConfigError as e:
        print(e)
        return 1
    warnings = lint(load_rules(text, str(path)), text, str(path))
    for w in warnings:
        print(w)
    r = engine.rules
    phrases = sum(len(x.phrases) for x in [*r.cues, *r.modifiers])
    regexes = sum(len(x.regex) for x in [*r.cues, *r.modifiers])
    print(
        f"{path}: ok, rules version {engine.version}: {len(r.cues)} cues, "
        f"{len(r.modifiers)} modifiers ({phrases} phrases, {regexes} regexes), "
        f"{len(r.ignore.phrases) + len(r.ignore.regex)} ignored, {len(r.topics)} topics"
    )
    return 1 if warnings and args.strict else 0


# --- test ----------------------------------------------------------------------------------------

_COLOURS = {"red_alert": "31", "assessing": "33", "clear": "32", "modifier": "36", "off": "2"}


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _mark(hit: Hit, text: str) -> str:
    if hit.effect != "counted":
        code = _COLOURS["off"]
    elif hit.kind == "cue":
        code = _COLOURS.get(hit.severity.value if hit.severity else "", "1")
    elif hit.kind in ("all_clear", "stand_down"):
        code = _COLOURS["clear"]
    else:
        code = _COLOURS["modifier"]
    return f"\033[1;{code}m{text}\033[0m"


def _hint(text: str) -> SourceHint:
    """`cap:severity=Minor,certainty=Possible` -> a SourceHint."""
    scheme, colon, pairs = text.partition(":")
    values = dict(p.split("=", 1) for p in pairs.split(",") if "=" in p)
    if not colon or not values:
        raise argparse.ArgumentTypeError("write SCHEME:NAME=VALUE,… (statuspage:impact=major)")
    try:
        return SourceHint(scheme=scheme.strip(), values=values)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run_test(args: argparse.Namespace) -> int:
    engine = Combined(_engine(_path(args.rules)), _model(args), words=5)
    post = Post(text=args.text, source=args.source, author=args.author, hint=args.hint)
    c = engine.classify(post)
    if args.json:
        print(c.model_dump_json(indent=2, exclude={"incident_id", "classified_at"}))
        return 0
    print(verdict(c))
    for line in hint_lines(c):
        print(line)
    print()
    print("  " + highlight(c.post.text, c.hits, _mark if _colour() else brackets))
    print()
    for hit in sorted(c.hits, key=lambda h: h.start):
        print(f"  {describe(hit)}")
    if not c.hits:
        print("  nothing fired: the default severity applies")
    print()
    for line in decision(c):
        print(f"  {line}")
    if c.topics:
        print(f"\ntopics: {', '.join(c.topics)}")
    print(f"rules version {c.rules_version}")
    return 0


# --- eval ----------------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    if not args.files and not args.feedback:
        print("rules eval: give LABELLED.jsonl files, --feedback, or both", file=sys.stderr)
        return 2
    path = _path(args.rules)
    engine = _engine(path)
    model = _model(args)
    try:
        items = [item for f in args.files for item in read_labelled(f)]
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    feedback = asyncio.run(_corrections()) if args.feedback else []
    everything = items + feedback
    layers = _layers(engine, model)
    report = evaluate(engine, everything)
    reports = {name: evaluate(c, everything) for name, c in layers.items() if name != "rules"}
    groups = group_by(everything, args.by) if args.by else {}
    by = {g: {name: evaluate(c, part) for name, c in layers.items()} for g, part in groups.items()}
    if args.json:
        out = report.as_json()
        out["rules_version"] = engine.version
        if args.feedback:
            out["feedback"] = {"n": len(feedback), **_brief(evaluate(engine, feedback))}
        if model is not None:
            out["model_version"] = model.version
            out["layers"] = {"rules": _summary(report)}
            out["layers"].update({name: _summary(r) for name, r in reports.items()})
        if args.by:
            out["by"] = {
                args.by: {g: {name: _summary(r) for name, r in rs.items()} for g, rs in by.items()}
            }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    names = [str(f) for f in args.files]
    if args.feedback:
        names.append(f"operators' corrections ({len(feedback)})")
    print(f"{', '.join(names)}: {report.n} posts, rules {path} (version {engine.version})\n")
    _print_scores(report)
    _print_confusion(report)
    if args.feedback:
        fb = evaluate(engine, feedback)
        print(
            f"operators' corrections: {fb.n} posts, {fb.n - len(fb.misclassified)} agree with "
            f"the rules (macro-F1 {fb.macro_f1:.3f})\n"
        )
    _print_misclassified(report, args.show)
    if model is not None:
        print(f"\nlayers (model {model.version}; macro-F1 / accuracy)")
        print(f"  {'rules alone':<16}{report.macro_f1:.3f} / {report.accuracy:.3f}")
        for name, r in reports.items():
            print(f"  {name:<16}{r.macro_f1:.3f} / {r.accuracy:.3f}")
    if args.by:
        _print_groups(args.by, by)
    return 0


def _brief(report: Report) -> dict[str, float]:
    return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}


async def _corrections() -> list[Labelled]:
    """Operators' corrections, from Redis, as labelled posts."""
    s = settings()
    redis = redis_client(s)
    try:
        return [as_labelled(line) async for line in iter_corrections(redis, keys.Keys(s.namespace))]
    finally:
        await redis.aclose()


def _layers(engine: Engine, model: ModelArtifact | None) -> dict[str, object]:
    if model is None:
        return {"rules": engine}
    return {
        "rules": engine,
        "model alone": ModelAlone(engine, model),
        "combined": Combined(engine, model),
    }


def _summary(r: Report) -> dict[str, object]:
    return {"n": r.n, "macro_f1": r.macro_f1, "accuracy": r.accuracy, "confusion": r.confusion}


def _print_groups(field: str, by: dict[str, dict[str, Report]]) -> None:
    """One line per group: its size and each layer's macro-F1 / accuracy."""
    if not by:
        return
    names = list(next(iter(by.values())))
    width = max(len(field), *(len(g) for g in by)) + 2
    print(f"\nby {field} (macro-F1 / accuracy)")
    print(f"  {field:<{width}}{'posts':>6}" + "".join(f"{n:>18}" for n in names))
    for g, reports in by.items():
        cells = "".join(f"{f'{r.macro_f1:.3f} / {r.accuracy:.3f}':>18}" for r in reports.values())
        print(f"  {g:<{width}}{next(iter(reports.values())).n:>6}{cells}")


def _print_scores(report: Report) -> None:
    print(f"  {'':<11}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for s in SEVERITIES:
        v = report.per_class[s.value]
        print(f"  {s.label:<11}{v.precision:>10.3f}{v.recall:>8.3f}{v.f1:>8.3f}{v.support:>9}")
    print(f"\n  macro-F1 {report.macro_f1:.3f}    accuracy {report.accuracy:.3f}\n")


def _print_confusion(report: Report) -> None:
    print("confusion (rows: label, columns: predicted)")
    print(f"  {'':<11}" + "".join(f"{s.label:>11}" for s in SEVERITIES))
    for g in SEVERITIES:
        row = report.confusion[g.value]
        print(f"  {g.label:<11}" + "".join(f"{row[p.value]:>11}" for p in SEVERITIES))
    print()


def _print_misclassified(report: Report, show: int) -> None:
    wrong = report.misclassified
    if not wrong:
        print("misclassified: none")
        return
    print(f"misclassified ({len(wrong)}{f', first {show}' if len(wrong) > show else ''}):")
    for item, c in wrong[:show]:
        print(f"  {item.post.id}: {item.label.label} -> {c.severity.label}")
        print(f"    {highlight(item.post.text, c.hits)}")
        fired = "; ".join(describe(h) for h in c.hits) or "nothing fired"
        print(f"    {fired}")


# --- backtest ------------------------------------------------------------------------------------


def run_backtest(args: argparse.Namespace) -> int:
    engine = _engine(args.file)
    if args.last < 1:
        print("--last: at least 1", file=sys.stderr)
        return 2
    recorded, skipped = asyncio.run(_recent(args.last))
    report = backtest(engine, recorded, examples=args.examples)
    if args.json:
        print(json.dumps({**report.as_json(), "skipped": skipped}, indent=2, ensure_ascii=False))
        return 0
    _print_backtest(args.file, report, skipped)
    return 0


async def _recent(last: int) -> tuple[list[Classification], int]:
    """The last `last` entries of the `classified` stream, oldest first; and how many were bad."""
    s = settings()
    redis = redis_client(s)
    try:
        entries = await redis.xrevrange(keys.Keys(s.namespace).stream(keys.CLASSIFIED), count=last)
    finally:
        await redis.aclose()
    recorded, skipped = [], 0
    for _id, fields in reversed(entries):
        try:
            recorded.append(decode(fields, Classification))
        except DecodeError:
            skipped += 1
    return recorded, skipped


# --- suggest -------------------------------------------------------------------------------------


def run_suggest(args: argparse.Namespace) -> int:
    if not args.files and not args.feedback:
        print(
            "rules suggest: give LABELLED.jsonl files to mine, --feedback, or both", file=sys.stderr
        )
        return 2
    engine = _engine(_path(args.rules))
    try:
        mined_sets = {str(f): read_labelled(f) for f in args.files}
        against = {str(f): read_labelled(f) for f in args.against}
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    if args.feedback:
        mined_sets["corrections"] = asyncio.run(_corrections())
    mined = [item for items in mined_sets.values() for item in items]
    traffic, note = [], ""
    if args.last > 0:
        try:
            traffic, _ = asyncio.run(_recent(args.last))
        except (OSError, RedisError) as e:
            note = f"recent traffic not measured: {e}"
    found = suggest(
        engine, mined, {**mined_sets, **against}, args.limit, max(1, args.tried), traffic
    )
    if args.json:
        print(json.dumps([s.as_json() for s in found], indent=2, ensure_ascii=False))
        return 0
    if not found:
        print(f"no phrase helps: the rules get the {len(mined)} mined posts right, or no phrase")
        print("separates the ones they miss from the others")
        return 0
    print(f"{len(found)} proposed cues from {len(mined)} posts (nothing is applied):\n")
    for s in found:
        print(f'  "{s.phrase}" -> {s.severity.label} (weight {s.weight:g}): in {s.support} missed')
        print(f"    posts ({', '.join(s.examples)}), in {s.against} labelled lower")
        for name, e in s.effects.items():
            print(
                f"    {name}: fixes {e.fixed}, breaks {e.broken}, "
                f"macro-F1 {e.before:.3f} -> {e.after:.3f}"
            )
        if s.traffic:
            moved = ", ".join(f"{k}: {n}" for k, n in s.traffic_changed.most_common()) or "none"
            print(f"    the last {s.traffic} classified posts: would change {moved}")
        print()
    if note:
        print(note)
    print("To use one, add its cue to the rules file under `cues:`, e.g.:\n")
    print(found[0].yaml())
    return 0


def _print_backtest(path: Path, report: Backtest, skipped: int) -> None:
    print(f"{path} (version {report.version}) against the last {report.n} classified posts")
    versions = ", ".join(f"{v} ({n})" for v, n in report.old_versions.most_common())
    if versions:
        print(f"  classified then by rules {versions}")
    if skipped:
        print(f"  {skipped} entries could not be read and were skipped")
    print(f"\n  {report.changed} would change severity, {report.n - report.changed} would not\n")
    for change, count in report.counts.most_common():
        before, after = (Severity(x).label for x in change.split(" -> "))
        print(f"  {before} -> {after}: {count}")
        for ex in report.examples[change]:
            print(f"    {ex.source}:{ex.post_id}  {_clip(ex.text)}")


def _clip(text: str, width: int = 100) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
