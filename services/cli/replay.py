"""`redalert replay FILE.jsonl` posts a thread in order; `redalert demo` tells the story."""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from services.cli.common import add_api_options, api, check, fail
from shared.settings import PROJECT_ROOT

POST_FIELDS = ("id", "source", "author", "url", "text", "thread_id", "in_reply_to", "published_at")
SEED = PROJECT_ROOT / "examples" / "iss-coolant-leak.jsonl"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="post a JSONL thread to the API, in order")
    p.add_argument("file", type=Path)
    p.add_argument("--delay", type=float, default=0.0, help="seconds between posts")
    add_api_options(p)
    p.set_defaults(func=run_replay)

    d = sub.add_parser("demo", help="subscribe the console and replay the ISS coolant leak thread")
    d.add_argument("--delay", type=float, default=0.5, help="seconds between posts")
    add_api_options(d)
    d.set_defaults(func=run_demo)


def read_posts(path: Path) -> list[dict[str, Any]]:
    posts = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(fail(f"{path}:{n}: not JSON: {e.msg}")) from None
        posts.append({k: raw[k] for k in POST_FIELDS if k in raw})
    return posts


def replay(args: argparse.Namespace, path: Path) -> list[str]:
    ids = []
    with api(args) as client:
        for i, post in enumerate(read_posts(path)):
            if i and args.delay:
                time.sleep(args.delay)
            answer = check(client.post("/v1/posts", json=post))
            state = "accepted" if answer["accepted"] else "duplicate"
            print(f"→ {post.get('id', '?')} {state}: {post['text'][:70]}", file=sys.stderr)
            ids += answer["accepted"]
    return ids


def run_replay(args: argparse.Namespace) -> int:
    replay(args, args.file)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    with api(args) as client:
        try:
            client.get("/healthz")
        except Exception:
            return fail(f"nothing answers at {args.url}: start redalert first (`redalert up`)")
        check(
            client.post(
                "/v1/subscriptions",
                json={"name": "demo console", "urls": ["console://"], "min_severity": "no_danger"},
            )
        )
    print("Subscribed the console (see the terminal running redalert). Replaying…", file=sys.stderr)
    replay(args, SEED)
    time.sleep(1.5)
    with api(args) as client:
        incidents = check(client.get("/v1/incidents", params={"limit": 1}))
        if not incidents:
            return fail("no incident was opened")
        detail = check(client.get(f"/v1/incidents/{incidents[0]['id']}"))
    inc = detail["incident"]
    print(f"\nIncident {inc['id']}: {inc['status']}, {inc['post_count']} posts")
    for step in detail["timeline"]:
        print(f"  {step['kind']:<13} {step['severity']:<10} {step['reason']}")
    for d in detail["deliveries"]:
        print(f"  told {d['subscription_name']}: {d['title'][:60]} ({d['outcome']})")
    return 0
