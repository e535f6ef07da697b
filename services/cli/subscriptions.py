"""`redalert subscriptions add|list|rm|test|apply`: who hears about what, through the API."""

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx

from services.cli.common import add_api_options, api, check, fail, fetch
from shared.subscriptions import SubscriptionsFile
from shared.yamlfile import ConfigError, load_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("subscriptions", help="add, list, remove, test and apply subscriptions")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = cmds.add_parser("list", help="list subscriptions (URLs masked)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.set_defaults(func=run_list)

    add = cmds.add_parser("add", help="add a subscription")
    add.add_argument("name", help="unique name")
    add.add_argument("urls", nargs="*", metavar="URL", help="apprise URLs")
    add.add_argument("--webhook", help="instead of URLs: every matching event POSTed as JSON")
    add.add_argument("--secret", help="the webhook's signing secret (16+ characters)")
    add.add_argument(
        "--min-severity",
        choices=("no_danger", "assessing", "red_alert"),
        default=None,
        help="the least severity to be told about (default assessing)",
    )
    add.add_argument("--topic", action="append", dest="topics", help="only these topics")
    add.add_argument("--source", action="append", dest="sources", help="only these sources")
    add.add_argument(
        "--match",
        action="append",
        dest="matchers",
        metavar="MATCHER",
        help="only incidents whose labels match, e.g. 'team=\"db\"' (repeatable; all must)",
    )
    add.add_argument("--priority", type=int, help="routing order, higher first (default 0)")
    add.add_argument(
        "--stop", action="store_true", help="continue: false — routes after this one are skipped"
    )
    add.add_argument("--no-resolved", action="store_true", help="not told when it stops firing")
    add.add_argument(
        "--repeat", help="while a red alert is unacknowledged, remind every DURATION (e.g. 30m)"
    )
    add.add_argument("--rate-limit", help="at most N messages per window, e.g. 5/10m")
    add.add_argument("--quiet", action="append", help="quiet hours, e.g. 22:00-07:00")
    add.add_argument("--timezone", default=None, help="of the quiet hours (default UTC)")
    add.add_argument("--urgent-bypass", action="store_true", help="red alerts ignore quiet hours")
    add.add_argument(
        "--format",
        choices=("text", "markdown", "html"),
        default=None,
        help="message format (default text)",
    )
    add.add_argument("--title-template", help="Jinja2 template for the title")
    add.add_argument("--body-template", help="Jinja2 template for the body")
    add.set_defaults(func=run_add)

    rm = cmds.add_parser("rm", help="remove a subscription")
    rm.add_argument("subscription", help="id or name")
    rm.set_defaults(func=run_rm)

    test = cmds.add_parser("test", help="send a test message and show each URL's result")
    test.add_argument("subscription", help="id or name")
    test.set_defaults(func=run_test)

    apply = cmds.add_parser(
        "apply", help="make the file-managed subscriptions exactly those in FILE"
    )
    apply.add_argument(
        "file", type=Path, help="subscriptions YAML (e.g. config/subscriptions.example.yaml)"
    )
    apply.set_defaults(func=run_apply)

    for parser in (ls, add, rm, test, apply):
        add_api_options(parser)


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The API body `add` sends: only what was given, so the API's defaults apply."""
    if bool(args.urls) == bool(args.webhook):
        raise SystemExit(fail("give apprise URLs or --webhook URL (one of the two)"))
    spec: dict[str, Any] = {"name": args.name}
    if args.urls:
        spec["urls"] = args.urls
    if args.webhook:
        spec["webhook"] = {"url": args.webhook, "secret": args.secret or ""}
    optional = {
        "min_severity": args.min_severity,
        "topics": args.topics,
        "sources": args.sources,
        "matchers": args.matchers,
        "repeat_interval": args.repeat,
        "format": args.format,
    }
    spec.update({k: v for k, v in optional.items() if v})
    if args.no_resolved:
        spec["send_resolved"] = False
    if args.priority is not None:
        spec["priority"] = args.priority
    if args.stop:
        spec["continue"] = False
    if args.rate_limit:
        count, _, window = args.rate_limit.partition("/")
        if not count.strip().isdigit() or not window:
            raise SystemExit(fail(f"--rate-limit {args.rate_limit!r}: write N/WINDOW, like 5/10m"))
        spec["rate_limit"] = {"count": int(count), "window": window}
    if args.quiet:
        quiet: dict[str, Any] = {"ranges": args.quiet, "urgent_bypass": args.urgent_bypass}
        if args.timezone:
            quiet["timezone"] = args.timezone
        spec["quiet_hours"] = quiet
    templates = {"title": args.title_template, "body": args.body_template}
    if any(templates.values()):
        spec["templates"] = {k: v for k, v in templates.items() if v}
    return spec


def resolve(client: httpx.Client, ref: str) -> dict[str, Any]:
    """A subscription by id, or by its (unique) name."""
    subs = check(client.get("/v1/subscriptions"))
    by_id = [s for s in subs if s["id"] == ref]
    by_name = [s for s in subs if s["name"] == ref]
    if by_id:
        return by_id[0]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise SystemExit(fail(f"{len(by_name)} subscriptions are named {ref!r}: give the id"))
    raise SystemExit(fail(f"no subscription with id or name {ref!r}"))


def targets(s: dict[str, Any]) -> str:
    return f"webhook {s['webhook']['url']}" if s.get("webhook") else ", ".join(s["urls"])


def filters(s: dict[str, Any]) -> str:
    parts = [f"≥ {s['min_severity']}"]
    parts += [f"topics {','.join(s['topics'])}"] if s.get("topics") else []
    parts += [f"sources {','.join(s['sources'])}"] if s.get("sources") else []
    parts += [" ".join(s["matchers"])] if s.get("matchers") else []
    if s.get("quiet_hours"):
        q = s["quiet_hours"]
        parts.append(f"quiet {' '.join(q['ranges'])} {q['timezone']}")
    if s.get("rate_limit"):
        parts.append(f"≤ {s['rate_limit']['count']}/{s['rate_limit']['window']:g}s")
    if s.get("repeat_interval"):
        parts.append(f"repeat {s['repeat_interval']:g}s")
    return "; ".join(parts)


def run_list(args: argparse.Namespace) -> int:
    subs = fetch(args, "/v1/subscriptions")
    if subs is None:
        return 0
    if not subs:
        print("no subscriptions", file=sys.stderr)
    for s in subs:
        print(f"{s['id']}  {s['name']}  [{s['origin']}]\n    {targets(s)}\n    {filters(s)}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    with api(args) as client:
        s = check(client.post("/v1/subscriptions", json=spec_from_args(args)))
    print(f"added {s['id']}  {s['name']}: {targets(s)}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    with api(args) as client:
        s = resolve(client, args.subscription)
        check(client.delete(f"/v1/subscriptions/{s['id']}"))
    print(f"removed {s['id']}  {s['name']}")
    return 0


def run_test(args: argparse.Namespace) -> int:
    with api(args) as client:
        s = resolve(client, args.subscription)
        answer = check(client.post(f"/v1/subscriptions/{s['id']}/test", timeout=120))
    for r in answer["results"]:
        outcome = f"ok ({r['latency_ms']:.0f} ms)" if r["ok"] else f"FAILED: {r['error']}"
        print(f"{r['url']}  {outcome}")
    return 0 if answer["ok"] else 1


def run_apply(args: argparse.Namespace) -> int:
    try:  # checked here first, so errors name the file's lines
        declared = load_file(SubscriptionsFile, args.file).subscriptions
    except ConfigError as e:
        return fail(str(e))
    body = {"subscriptions": [s.model_dump(mode="json", exclude_unset=True) for s in declared]}
    with api(args) as client:
        report = check(client.post("/v1/subscriptions/apply", json=body))
    for what in ("created", "updated", "removed"):
        for name in report[what]:
            print(f"{what:<8} {name}")
    if not any(report.values()):
        print("nothing to change")
    return 0
