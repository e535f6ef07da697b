"""`redalert replay FILE.jsonl` posts a thread in order; `redalert demo` tells the story."""

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from services.cli.common import add_api_options, api, check, fail
from shared.settings import PROJECT_ROOT

POST_FIELDS = ("id", "source", "author", "url", "text", "thread_id", "in_reply_to", "published_at")
SEED = PROJECT_ROOT / "examples" / "iss-coolant-leak.jsonl"
DEMO_SUBSCRIPTION = "demo console"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="post a JSONL thread to the API, in order")
    p.add_argument("file", type=Path, help="one post (JSON) per line")
    p.add_argument("--delay", type=float, default=0.0, help="seconds between posts")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="post under new ids (ids and threads get a suffix), so a file already sent "
        "is not refused as duplicates",
    )
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


def fresh(posts: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The same thread under new ids: replies still point at their posts, threads stay threads."""
    linked = ("id", "thread_id", "in_reply_to")
    return [{k: f"{v}-{suffix}" if k in linked and v else v for k, v in p.items()} for p in posts]


def replay(args: argparse.Namespace, path: Path, *, new_ids: bool = False) -> list[str]:
    ids = []
    posts = read_posts(path)
    if new_ids:
        posts = fresh(posts, uuid.uuid4().hex[:6])
    with api(args) as client:
        for i, post in enumerate(posts):
            if i and args.delay:
                time.sleep(args.delay)
            answer = check(client.post("/v1/posts", json=post))
            state = "accepted" if answer["accepted"] else "duplicate"
            print(f"→ {post.get('id', '?')} {state}: {post['text'][:70]}", file=sys.stderr)
            ids += answer["accepted"]
    return ids


def run_replay(args: argparse.Namespace) -> int:
    replay(args, args.file, new_ids=args.fresh)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    with api(args) as client:
        try:
            client.get("/healthz")
        except Exception:
            return fail(f"nothing answers at {args.url}: start redalert first (`redalert up`)")
        # Reused when it exists: a second subscription would print every alert twice.
        existing = check(client.get("/v1/subscriptions"))
        if not any(s["name"] == DEMO_SUBSCRIPTION for s in existing):
            check(
                client.post(
                    "/v1/subscriptions",
                    json={
                        "name": DEMO_SUBSCRIPTION,
                        "urls": ["console://"],
                        "min_severity": "no_danger",
                    },
                )
            )
    print("Subscribed the console (see the terminal running redalert). Replaying…", file=sys.stderr)
    # New ids each time, so a second demo tells the story again instead of finding duplicates.
    replay(args, SEED, new_ids=True)
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
