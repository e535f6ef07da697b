"""`redalert status`: what is in the streams, who is reading them, what is stuck."""

import argparse
import asyncio
import json
from typing import Any

from redis.exceptions import ResponseError

from services.cli.common import fail, settings
from shared import keys
from shared.consumer import groups_present
from shared.redis import ping, redis_client


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="streams, consumer groups, pending and dead-lettered entries")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--check",
        action="store_true",
        help="print nothing; exit 0 when Redis answers and every consumer group exists",
    )
    p.set_defaults(func=run_status)


async def collect() -> dict[str, Any]:
    s = settings()
    redis = redis_client(s)
    k = keys.Keys(s.namespace)
    try:
        if not await ping(redis):
            return {"redis": False}
        out: dict[str, Any] = {"redis": True, "namespace": s.namespace, "streams": {}}
        for name in (*keys.WORK_STREAMS, *keys.AUDIT_STREAMS, keys.DEADLETTER):
            stream = k.stream(name)
            info: dict[str, Any] = {"length": await redis.xlen(stream)}
            if name in keys.GROUPS:
                try:
                    groups = await redis.xinfo_groups(stream)
                except ResponseError:
                    groups = []
                for g in groups:
                    if g["name"].decode() == keys.GROUPS[name]:
                        info.update(
                            group=keys.GROUPS[name],
                            consumers=g["consumers"],
                            pending=g["pending"],
                            lag=g.get("lag"),
                        )
            out["streams"][name] = info
        out["incidents"] = await redis.zcard(k.incidents)
        out["groups_present"] = await groups_present(redis, s.namespace)
        return out
    finally:
        await redis.aclose()


def run_status(args: argparse.Namespace) -> int:
    status = asyncio.run(collect())
    healthy = status["redis"] and all(status["groups_present"].values())
    if args.check:
        return 0 if healthy else 1
    if not status["redis"]:
        return fail(f"Redis does not answer at {settings().effective_redis_url}")
    if args.json:
        print(json.dumps(status))
        return 0
    print(f"namespace {status['namespace']}: {status['incidents']} incident(s)")
    for name, info in status["streams"].items():
        line = f"  {name:<16} {info['length']:>8} entries"
        if "group" in info:
            line += (
                f"  group {info['group']}: {info['consumers']} consumer(s), "
                f"{info['pending']} pending, lag {info['lag']}"
            )
        elif name in keys.GROUPS:
            line += "  (no consumer group yet)"
        print(line)
    return 0 if healthy else 1
