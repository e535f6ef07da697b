"""`redalert label SOURCE ID SEVERITY` and `redalert corrections`: operators' corrections."""

import argparse
import getpass
import sys

from services.cli.common import add_api_options, api, check, fail
from shared.corrections import to_jsonl
from shared.severity import Severity

_NAMES = (
    {s.value: s for s in Severity}
    | {s.label: s for s in Severity}
    | {s.value.replace("_", "-"): s for s in Severity}
)


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "label", help="correct a post's severity (red_alert, assessing, no_danger)"
    )
    lab.add_argument("source", help="the post's source")
    lab.add_argument("id", help="the post's id (with its source, as posted)")
    lab.add_argument("severity", help="red_alert, assessing or no_danger")
    lab.add_argument("--why", default="", help="why (kept with the correction)")
    lab.add_argument("--incident", help="the incident the post is in (helps find it)")
    lab.add_argument("--text", help="the post's text, when redalert no longer has the post")
    lab.add_argument("--actor", default=getpass.getuser(), help="who corrects (default: you)")
    add_api_options(lab)
    lab.set_defaults(func=run_label)

    c = sub.add_parser("corrections", help="list or export operators' corrections")
    cs = c.add_subparsers(dest="corrections_command", required=True, metavar="COMMAND")
    ex = cs.add_parser("export", help="JSONL in the labelled-set format (tests/data/README.md)")
    add_api_options(ex)
    ex.set_defaults(func=run_export)
    ls = cs.add_parser("list", help="one line per correction")
    add_api_options(ls)
    ls.set_defaults(func=run_list)


def run_label(args: argparse.Namespace) -> int:
    severity = _NAMES.get(args.severity.lower())
    if severity is None:
        return fail(f"severity: {args.severity!r}: use red_alert, assessing or no_danger", 2)
    body = {"label": severity.value, "why": args.why, "actor": args.actor}
    if args.incident:
        body["incident_id"] = args.incident
    if args.text:
        body["text"] = args.text
    with api(args) as client:
        c = check(client.post(f"/v1/posts/{args.source}/{args.id}/label", json=body))
    was = f" (redalert said {Severity(c['predicted']).label})" if c.get("predicted") else ""
    print(f"{args.source}:{args.id} is {severity.label}{was}, says {c['by']}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with api(args) as client:
        lines = check(client.get("/v1/corrections"))
    sys.stdout.write(to_jsonl(lines))
    return 0


def run_list(args: argparse.Namespace) -> int:
    with api(args) as client:
        lines = check(client.get("/v1/corrections"))
    if not lines:
        print("no corrections yet: `redalert label SOURCE ID SEVERITY` adds one")
    for x in lines:
        said = Severity(x["predicted"]).label if x.get("predicted") else "?"
        print(f"{x['at'][:19]}  {x['id']}  {said} -> {Severity(x['label']).label}  by {x['by']}")
    return 0
