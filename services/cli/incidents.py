"""`redalert incidents list|archive|show|ack|resolve|reopen`, through the API."""

import argparse
import getpass

from services.cli.common import add_api_options, api, check, fetch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("incidents", help="list, show and act on incidents")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    ls = verbs.add_parser("list", help="newest first")
    ls.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    add_api_options(ls)
    ls.set_defaults(func=run_list)

    arc = verbs.add_parser("archive", help="incidents past their retention, last archived first")
    arc.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    arc.add_argument("--json", action="store_true", help="print the API's JSON")
    add_api_options(arc)
    arc.set_defaults(func=run_archive)

    show = verbs.add_parser("show", help="an incident with its posts, timeline and deliveries")
    show.add_argument("incident_id", help="the incident's id (as `incidents list` shows it)")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    add_api_options(show)
    show.set_defaults(func=run_show)

    for verb, help_ in (
        ("ack", "acknowledge: stops repeat notifications until it escalates"),
        ("resolve", "resolve"),
        ("reopen", "reopen a resolved incident"),
    ):
        v = verbs.add_parser(verb, help=help_)
        v.add_argument("incident_id", help="the incident's id")
        v.add_argument("--actor", default=getpass.getuser(), help="who acts (default: you)")
        v.add_argument("--note", help="why, for the timeline and the notifications")
        add_api_options(v)
        v.set_defaults(func=run_action, action=verb)


def run_list(args: argparse.Namespace) -> int:
    incidents = fetch(args, "/v1/incidents", {"limit": args.limit})
    if incidents is None:
        return 0
    for i in incidents:
        print(
            f"{i['id']}  {i['status']:<12} {i['severity']:<10} {i['post_count']:>4} posts  "
            f"{i['opened_at'][:19]}  {i['title'][:60]}"
        )
    return 0


def run_archive(args: argparse.Namespace) -> int:
    page = fetch(args, "/v1/incidents/archive", {"limit": args.limit})
    if page is None:
        return 0
    for i in page["incidents"]:
        resolved = (i.get("resolved_at") or "")[:19]
        print(
            f"{i['id']}  {i['severity']:<10} {i['post_count']:>4} posts  "
            f"{i['opened_at'][:19]} .. {resolved:<19}  {i['title'][:50]}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    detail = fetch(args, f"/v1/incidents/{args.incident_id}")
    if detail is None:
        return 0
    i = detail["incident"]
    print(f"{i['id']}: {i['title']}")
    print(f"  {i['status']}, {i['severity']} (peak {i['peak_severity']}), {i['post_count']} posts")
    if i.get("labels"):
        print("  labels: " + ", ".join(f"{k}={v}" for k, v in i["labels"].items()))
    if i.get("subjects"):
        said = ", ".join(f"{k.partition(':')[2]} {v}" for k, v in i["subjects"].items())
        print(f"  subjects: {said}")
    for warning in i.get("warnings") or []:
        print(f"  warning: {warning}")
    print("timeline:")
    for t in detail["timeline"]:
        # Escalation lines (pages, stops) sit in the timeline beside the transitions.
        print(f"  {t['at'][:19]}  {t['kind']:<18} {t.get('severity') or '':<10} {t['reason']}")
    print("posts:")
    for p in detail["posts"]:
        print(f"  {p['severity']:<10} {p.get('author') or p['source']}: {p['text'][:80]}")
    if detail["deliveries"]:
        print("told:")
        for d in detail["deliveries"]:
            print(f"  {d['at'][:19]}  {d['subscription_name']}: {d['title'][:50]} ({d['outcome']})")
    return 0


def run_action(args: argparse.Namespace) -> int:
    with api(args) as client:
        answer = check(
            client.post(
                f"/v1/incidents/{args.incident_id}/{args.action}",
                json={"actor": args.actor, "note": args.note},
            )
        )
    print(f"{args.action} of {answer['incident_id']} accepted (command {answer['command_id']})")
    return 0
