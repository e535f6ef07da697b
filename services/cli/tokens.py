"""`redalert tokens add|list|revoke`: named API tokens with a role, through the API (admin)."""

import argparse
import sys

from services.cli.common import add_api_options, api, check, fetch

ROLES = ("viewer", "responder", "admin")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokens", help="add, list and revoke API tokens (needs an admin token)")
    cmds = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = cmds.add_parser("add", help="create a token; it is printed once, then kept hashed")
    add.add_argument("name", help="who the token is for: the actor its actions are recorded as")
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="viewer: reads; responder: also posts, incident actions, silences; admin: all",
    )
    add.set_defaults(func=run_add)

    ls = cmds.add_parser("list", help="list tokens (names and roles, never the values)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    ls.set_defaults(func=run_list)

    rm = cmds.add_parser("revoke", help="revoke a token: it stops working at once")
    rm.add_argument("name", help="the token's name")
    rm.set_defaults(func=run_revoke)

    for parser in (add, ls, rm):
        add_api_options(parser)


def run_add(args: argparse.Namespace) -> int:
    with api(args) as client:
        made = check(client.post("/v1/tokens", json={"name": args.name, "role": args.role}))
    # The token alone on stdout (for scripts); how to use it on stderr.
    print(made["token"])
    print(
        f"token {made['name']!r} ({made['role']}) created. It is shown this once: keep it now "
        "(Authorization: Bearer <token>, or --token / $REDALERT_API_TOKEN for the CLI).",
        file=sys.stderr,
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    for t in fetch(args, "/v1/tokens") or []:
        print(f"{t['name']:<24} {t['role']:<9} created {t['created_at']} by {t['created_by']}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with api(args) as client:
        check(client.delete(f"/v1/tokens/{args.name}"))
    print(f"token {args.name!r} revoked")
    return 0
