"""`redalert routes test --labels team=db --severity red_alert`: who would be told, and why."""

import argparse
import json
from typing import Any

from services.cli.common import add_api_options, api, check, fail
from shared.labels import parse_pairs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("routes", help="explain routing: who would be told about an incident")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    test = cmds.add_parser("test", help="walk every route for an incident with these labels")
    test.add_argument("--labels", action="append", default=[], help="team=db,service=api")
    test.add_argument(
        "--severity",
        default="red_alert",
        choices=("no_danger", "assessing", "red_alert"),
        help="the incident's severity (default red_alert)",
    )
    test.add_argument(
        "--topic", action="append", dest="topics", default=[], help="the incident's topics"
    )
    test.add_argument(
        "--source", action="append", dest="sources", default=[], help="the incident's sources"
    )
    test.add_argument("--json", action="store_true", help="print the API's JSON")
    add_api_options(test)
    test.set_defaults(func=run_test)


def describe(answer: dict[str, Any]) -> list[str]:
    inc = answer["incident"]
    labels = ", ".join(f"{k}={v}" for k, v in inc["labels"].items()) or "no labels"
    lines = [f"an incident at {inc['severity'].replace('_', ' ')} with {labels}:"]
    for r in answer["routes"]:
        mark = "✓" if r["taken"] else "✗"
        flags = f"priority {r['priority']}" + ("" if r["continue"] else ", continue: false")
        lines.append(f"  {mark} {r['kind']} {r['name']!r} ({flags}): {r['why']}")
        for page in r.get("first_step") or []:
            lines.append(f"      step 1 pages {page}")
    told = answer["notified"]
    lines.append("notified: " + ("; ".join(told) if told else "nobody"))
    return lines


def run_test(args: argparse.Namespace) -> int:
    try:
        labels = parse_pairs(args.labels)
    except ValueError as e:
        return fail(f"--labels: {e}")
    body = {
        "labels": labels,
        "severity": args.severity,
        "topics": args.topics,
        "sources": args.sources,
    }
    with api(args) as client:
        answer = check(client.post("/v1/routes/test", json=body))
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print("\n".join(describe(answer)))
    return 0
