"""`redalert sources add|list|rm|poll-once`: the feeds, timelines and webhooks ingest reads."""

import argparse
import json
from typing import Any

from services.cli.common import add_api_options, api, check, fetch

POLLED = ("rss", "mastodon", "statuspage", "cap")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sources", help="feeds, Mastodon timelines and webhooks to read posts from")
    commands = p.add_subparsers(dest="sources_command", required=True, metavar="ACTION")

    add = commands.add_parser("add", help="add a source")
    add.add_argument("name", help="unique name: letters, digits, _ . -")
    add.add_argument(
        "kind",
        choices=("rss", "mastodon", "webhook", "statuspage", "cap", "json"),
        help="what it is",
    )
    add.add_argument(
        "source_url",
        nargs="?",
        metavar="SOURCE_URL",
        help="rss: the feed; mastodon: the server; statuspage: the page; cap: a CAP message or "
        "an Atom feed of them (the source's URL, not the API's --url)",
    )
    add.add_argument("--interval", type=float, help="seconds between polls (default 60)")
    target = add.add_mutually_exclusive_group()
    target.add_argument("--account", help="mastodon: an account's statuses (user or user@domain)")
    target.add_argument("--hashtag", help="mastodon: a hashtag timeline")
    target.add_argument("--list", dest="list_id", help="mastodon: a list's timeline (its id)")
    add.add_argument("--access-token", help="mastodon: access token (lists need one)")
    add.add_argument("--secret", help="webhook, json: the HMAC-SHA256 key senders sign with")
    add.add_argument("--language", help="cap: which language's info block to read (en-US, fr…)")
    add.add_argument(
        "--mapping",
        type=json.loads,
        help='json: where the fields are, as JSON: \'{"text": "$.message", "id": "$.id"}\'',
    )
    add.add_argument("--post-source", help="the `source` its posts carry")

    ls = commands.add_parser("list", help="sources and their status")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")

    rm = commands.add_parser("rm", help="remove a source, its cursor and its status")
    rm.add_argument("name", help="the source's name")

    poll = commands.add_parser("poll-once", help="poll sources now (all polled ones by default)")
    poll.add_argument("names", nargs="*", metavar="NAME", help="sources to poll (default: all)")

    for parser, run in ((add, run_add), (ls, run_list), (rm, run_rm), (poll, run_poll_once)):
        add_api_options(parser)
        parser.set_defaults(func=run)


def run_add(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {"name": args.name, "kind": args.kind}
    optional = {
        "url": args.source_url,
        "interval_s": args.interval,
        "account": args.account,
        "hashtag": args.hashtag,
        "list": args.list_id,
        "token": args.access_token,
        "secret": args.secret,
        "language": args.language,
        "mapping": args.mapping,
        "post_source": args.post_source,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    with api(args) as client:
        source = check(client.post("/v1/sources", json=spec))
    print(f"added {describe(source)}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    sources = fetch(args, "/v1/sources")
    if sources is None:
        return 0
    if not sources:
        print("no sources")
    for s in sources:
        st = s["status"]
        health = f"error: {st['last_error']}" if st["consecutive_failures"] else "ok"
        if s["kind"] in POLLED and not st["last_poll_at"]:
            health = "not polled yet"
        print(describe(s))
        print(
            f"    {st['items_ingested']} posts; last success {st['last_success_at'] or 'never'}; "
            f"{health}"
        )
    return 0


def run_rm(args: argparse.Namespace) -> int:
    with api(args) as client:
        check(client.delete(f"/v1/sources/{args.name}"))
    print(f"removed {args.name}")
    return 0


def run_poll_once(args: argparse.Namespace) -> int:
    failed = False
    with api(args) as client:
        names = args.names or [
            s["name"] for s in check(client.get("/v1/sources")) if s["kind"] in POLLED
        ]
        for name in names:
            outcome = check(client.post(f"/v1/sources/{name}/poll", timeout=120))
            failed |= outcome["error"] is not None
            print(f"{name}: {outcome['summary']}")
    return 1 if failed else 0


def describe(source: dict[str, Any]) -> str:
    what = source.get("url", "")
    for field in ("account", "hashtag", "list"):
        if source.get(field):
            what += f" {field} {source[field]}"
    every = f" every {source['interval_s']:g}s" if source["kind"] in POLLED else ""
    return f"{source['name']} ({source['kind']}{every}) {what}".rstrip()
