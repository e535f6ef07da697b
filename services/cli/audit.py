"""`redalert audit`: who changed what, when and from where (needs an admin token)."""

import argparse
import json
from typing import Any

from services.cli.common import add_api_options, fetch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="the audit trail of changes, newest first")
    p.add_argument("--actor", help="only this token name's changes")
    p.add_argument("--action", help="only actions containing this, e.g. subscriptions or tokens")
    p.add_argument("--target", help="only changes to this object (id or name)")
    p.add_argument("--since", help="ISO 8601 time")
    p.add_argument("--until", help="ISO 8601 time")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(func=run)
    add_api_options(p)


def describe(e: dict[str, Any]) -> str:
    who = e["actor"] + (f" (says {e['claimed']})" if e.get("claimed") else "")
    where = f" from {e['source_ip']}" if e.get("source_ip") else ""
    target = f" {e['target']}" if e.get("target") else ""
    changes = f"  {json.dumps(e['changes'], sort_keys=True)}" if e.get("changes") else ""
    return f"{e['at']}  {who}{where}: {e['action']}{target} -> {e['status']}{changes}"


def run(args: argparse.Namespace) -> int:
    names = ("actor", "action", "target", "since", "until")
    params: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n)}
    params["limit"] = args.limit
    for entry in fetch(args, "/v1/audit", params) or []:
        print(describe(entry))
    return 0
