"""`redalert silences add|list|expire`: hold matching alerts back for a while, through the API."""

import argparse
from typing import Any

from services.cli.common import add_api_options, api, check, fail, fetch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("silences", help="add, list and expire silences")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = cmds.add_parser("add", help="silence matching alerts")
    add.add_argument("--topic", help="silence incidents about this topic")
    add.add_argument("--source", help="silence incidents with posts from this source")
    add.add_argument("--incident", dest="incident_id", help="silence this one incident (its id)")
    add.add_argument("--subscription", help="a subscription's id or name")
    add.add_argument(
        "--match",
        action="append",
        default=[],
        dest="labels",
        metavar="MATCHER",
        help="a label matcher, e.g. 'service=~\"api|web\"' (repeatable; all must match)",
    )
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--duration", help="how long, e.g. 2h")
    when.add_argument("--until", dest="ends_at", help="ISO 8601 time with a zone")
    add.add_argument("--starts", dest="starts_at", help="ISO 8601 time with a zone (default now)")
    add.add_argument("--author", required=True, help="who silences (shown with it)")
    add.add_argument("--comment", default="", help="why")
    add.set_defaults(func=run_add)

    ls = cmds.add_parser("list", help="list silences, newest first")
    ls.add_argument(
        "--state", choices=("active", "pending", "expired"), help="only silences in this state"
    )
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.set_defaults(func=run_list)

    ex = cmds.add_parser("expire", help="end a silence now (held alerts are told at once)")
    ex.add_argument("silence", help="the silence's id")
    ex.add_argument("--by", default="cli", help="who expires it (default cli)")
    ex.set_defaults(func=run_expire)

    for parser in (add, ls, ex):
        add_api_options(parser)


def describe(s: dict[str, Any]) -> str:
    matchers = " ".join(
        " ".join(v) if k == "labels" else f"{k}={v}" for k, v in s["matchers"].items() if v
    )
    return (
        f"{s['id']}  {s['state']:<7}  {matchers}  {s['starts_at']} → {s['ends_at']}  "
        f"by {s['author']}{': ' + s['comment'] if s.get('comment') else ''}"
    )


def run_add(args: argparse.Namespace) -> int:
    matchers = {
        k: getattr(args, k)
        for k in ("topic", "source", "incident_id", "subscription", "labels")
        if getattr(args, k)
    }
    if not matchers:
        return fail("give at least one of --topic, --source, --incident, --subscription, --match")
    body: dict[str, Any] = {"matchers": matchers, "author": args.author, "comment": args.comment}
    for name in ("duration", "ends_at", "starts_at"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    with api(args) as client:
        print(describe(check(client.post("/v1/silences", json=body))))
    return 0


def run_list(args: argparse.Namespace) -> int:
    params = {"state": args.state} if args.state else {}
    for s in fetch(args, "/v1/silences", params) or []:
        print(describe(s))
    return 0


def run_expire(args: argparse.Namespace) -> int:
    with api(args) as client:
        print(
            describe(
                check(client.post(f"/v1/silences/{args.silence}/expire", json={"by": args.by}))
            )
        )
    return 0
