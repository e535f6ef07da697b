"""`redalert oncall [SCHEDULE] [--at TIME]`: who is on call, through the API."""

import argparse
from typing import Any

from services.cli.common import add_api_options, fetch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("oncall", help="who is on call now (or --at a time), per schedule")
    p.add_argument("schedule", nargs="?", help="one schedule (default: every schedule)")
    p.add_argument("--at", help="ISO 8601 time with a zone (default now)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    add_api_options(p)
    p.set_defaults(func=run)


def describe(answer: dict[str, Any]) -> str:
    if answer["person"] is None:
        return f"{answer['schedule']}: nobody on call"
    until = f" until {answer['until']}" if answer.get("until") else ""
    return f"{answer['schedule']}: {answer['person']} ({answer['via']}){until}"


def run(args: argparse.Namespace) -> int:
    params = {"at": args.at} if args.at else None
    if args.schedule:
        answer = fetch(args, f"/v1/schedules/{args.schedule}/oncall", params)
        if answer is not None:
            print(describe(answer))
        return 0
    if args.at:
        names = [
            s["name"]
            for s in fetch(argparse.Namespace(**{**vars(args), "json": False}), "/v1/schedules")
            or []
        ]
        answers = [fetch(args, f"/v1/schedules/{n}/oncall", params) for n in names]
    else:
        answers = [s["on_call"] for s in fetch(args, "/v1/schedules") or []]
    for answer in answers:
        if answer is not None:
            print(describe(answer))
    if not answers and not args.json:
        print("no schedules (create one with POST /v1/schedules)")
    return 0
