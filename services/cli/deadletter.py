"""`redalert deadletter list|replay`: what could not be processed or delivered, and retrying it."""

import argparse
from typing import Any

from services.cli.common import add_api_options, api, check, fetch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deadletter", help="list and replay dead letters")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = cmds.add_parser("list", help="list dead letters, newest first")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    ls.add_argument("--stream", help="only letters from this stream (e.g. deliveries, posts)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.set_defaults(func=run_list)

    rp = cmds.add_parser("replay", help="send a delivery again, or republish an entry")
    rp.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (see `list`)")
    rp.add_argument("--all", action="store_true", help="every letter not replayed yet")
    rp.add_argument("--force", action="store_true", help="replay even if replayed before")
    rp.set_defaults(func=run_replay)

    for parser in (ls, rp):
        add_api_options(parser)


def describe(letter: dict[str, Any]) -> str:
    extra = letter.get("extra") or {}
    what = letter["stream"]
    if extra.get("subscription_name"):
        what += f" → {extra['subscription_name']} {extra.get('url', '')}"
    replayed = f"  (replayed {letter['replayed']['at']})" if letter.get("replayed") else ""
    return (
        f"{letter['id']}  {letter['at']}  {what}  after {letter['attempts']} attempt(s): "
        f"{letter['error']}{replayed}"
    )


def run_list(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.stream:
        params["stream"] = args.stream
    letters = fetch(args, "/v1/deadletter", params)
    if letters is None:
        return 0
    for letter in letters:
        print(describe(letter))
    if not letters:
        print("no dead letters")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    failed = 0
    with api(args) as client:
        ids = list(args.ids)
        if args.all:
            letters = check(client.get("/v1/deadletter", params={"limit": 1000}))
            ids += [x["id"] for x in letters if not x.get("replayed")]
        if not ids:
            print("nothing to replay: give ids, or --all")
            return 0
        for letter_id in ids:
            params = {"force": "true"} if args.force else {}
            r = check(client.post(f"/v1/deadletter/{letter_id}/replay", params=params, timeout=300))
            if r["ok"]:
                where = r.get("url") or f"{r.get('stream')} as {r.get('entry_id')}"
                print(f"{letter_id}  replayed → {where}")
            else:
                failed += 1
                print(f"{letter_id}  still failing: {r['error']}")
    return 1 if failed else 0
