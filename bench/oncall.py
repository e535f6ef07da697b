"""What on-call routing costs: matchers, schedules, routing decisions, and a page end to end.

    python bench/oncall.py [--seconds S] [--pages N] [--json] [--redis-url URL]

Reports:
- matcher_checks_per_s: three Alertmanager-syntax matchers (=, =~, !=) against a dozen labels;
- on_call_us: who is on call in a schedule of two layers (weekly, and daily nights with hours)
  and 50 overrides, in Europe/Paris;
- timeline_28d_ms: that schedule's shifts over 28 days (what an iCalendar export computes);
- route_decide_us: routing one incident through 100 subscriptions and 100 policies, one of them
  `continue: false`;
- page_p50_ms / page_max_ms: from an Alertmanager webhook's answer to the page arriving at a
  local HTTP sink (ingest, classify and notify in this process, real Redis), N alerts one by one.
Pure figures use no Redis; the page figure runs in its own namespace, deleted afterwards.
Uses $REDALERT_REDIS_URL, else 127.0.0.1:6379, else an embedded server.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from services.runtime import Runtime  # noqa: E402
from shared.embedded import free_port, reachable_redis  # noqa: E402
from shared.escalation import Policy  # noqa: E402
from shared.matchers import compiled  # noqa: E402
from shared.models import Incident, Subscription  # noqa: E402
from shared.routing import decide, routes  # noqa: E402
from shared.schedules import ScheduleSpec, on_call, timeline  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.severity import Severity  # noqa: E402
from tests.sinks import HttpSink  # noqa: E402

LABELS = {f"l{i}": f"v{i}" for i in range(9)} | {"team": "db", "service": "api", "env": "prod"}


def rate(fn, seconds: float) -> float:
    """Calls per second of fn over about `seconds`."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def schedule() -> ScheduleSpec:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    return ScheduleSpec.model_validate(
        {
            "name": "db-primary",
            "timezone": "Europe/Paris",
            "rotations": [
                {"members": ["a", "b", "c", "d"], "start": "2026-11-02", "length": "1w",
                 "handoff": "09:00"},
                {"members": ["n", "o"], "start": "2026-11-02", "length": "1d",
                 "handoff": "22:00", "hours": ["22:00-07:00"]},
            ],
            "overrides": [
                {"person": "x", "start": (start + timedelta(hours=7 * i)).isoformat(),
                 "end": (start + timedelta(hours=7 * i + 2)).isoformat()}
                for i in range(50)
            ],
        }
    )  # fmt: skip


def pure(seconds: float) -> dict[str, float]:
    matchers = compiled(['team="db"', 'service=~"api|web"', 'env!="dev"'])
    s = schedule()
    at = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    began = time.perf_counter()
    timeline(s, datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
    timeline_ms = (time.perf_counter() - began) * 1000
    subs = [Subscription(name=f"s{i}", urls=["json://x/"], matchers=[f'team="t{i}"'])
            for i in range(100)]  # fmt: skip
    policies = [
        Policy.model_validate({"name": f"p{i}", "matchers": [f'team="t{i}"'], "priority": i % 7,
                               "continue": i != 50, "steps": [{"notify": ["person:a"]}]})
        for i in range(100)
    ]  # fmt: skip
    all_routes = routes(subs, policies)
    now = datetime.now(UTC)
    incident = Incident(id="i", title="t", severity=Severity.RED_ALERT,
                        peak_severity=Severity.RED_ALERT, opened_at=now, updated_at=now,
                        labels={"team": "t50"})  # fmt: skip
    return {
        "matcher_checks_per_s": round(rate(lambda: matchers.matches(LABELS), seconds)),
        "on_call_us": round(1e6 / rate(lambda: on_call(s, at), seconds), 1),
        "timeline_28d_ms": round(timeline_ms, 1),
        "route_decide_us": round(1e6 / rate(lambda: decide(all_routes, incident), seconds), 1),
    }


async def pages(redis_url: str, n: int) -> dict[str, float]:
    namespace = f"bench-oncall-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        namespace=namespace,
        http_port=free_port(),
        schedule_poll_s=0.05,
        block_ms=20,
        log_level="WARNING",
    )
    base = f"http://127.0.0.1:{settings.http_port}"
    sink = HttpSink().start()
    rt = Runtime(settings)
    redis = Redis.from_url(redis_url)
    latencies: list[float] = []
    loop, arrived = asyncio.get_running_loop(), asyncio.Event()
    sink.on_request = lambda _request: loop.call_soon_threadsafe(arrived.set)
    try:
        await rt.start()
        async with httpx.AsyncClient(base_url=base) as http:
            await http.post("/v1/people", json={"name": "alice", "contacts": [sink.url]})
            await http.post(
                "/v1/escalation-policies",
                json={"name": "db", "matchers": ['team="db"'],
                      "steps": [{"after": "0s", "notify": ["person:alice"]}]},
            )  # fmt: skip
            for i in range(n):
                alert = {"status": "firing", "labels": {"alertname": f"A{i}", "team": "db",
                         "severity": "critical"}, "annotations": {"summary": f"db down {i}"},
                         "startsAt": "2026-11-26T08:00:00Z", "fingerprint": f"f{i}"}  # fmt: skip
                body = {"version": "4", "status": "firing", "alerts": [alert]}
                arrived.clear()
                r = await http.post("/v1/webhooks/alertmanager", json=body)
                sent = time.perf_counter()
                r.raise_for_status()
                await asyncio.wait_for(arrived.wait(), timeout=60)
                latencies.append((time.perf_counter() - sent) * 1000)
    finally:
        await rt.stop()
        sink.stop()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*", count=1000)]
        for j in range(0, len(keys), 500):
            await redis.unlink(*keys[j : j + 500])
        await redis.aclose()
    return {
        "page_p50_ms": round(statistics.median(latencies), 1),
        "page_max_ms": round(max(latencies), 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="per pure figure")
    p.add_argument("--pages", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = p.parse_args()
    figures = pure(args.seconds)
    with reachable_redis(args.redis_url) as url:
        figures |= asyncio.run(pages(url, args.pages))
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>22}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
