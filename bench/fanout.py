"""Fan-out: one incident event to many subscriptions, through notify's whole chain.

    python bench/fanout.py [--subscriptions N] [--events K] [--send-concurrency C]
                           [--target-latency-ms MS] [--json] [--redis-url URL]

Creates N subscriptions, each with its own `json://` URL on one local HTTP sink (a separate
process, so it does not compete with notify for the GIL), publishes K red-alert incident events
to `incident-events`, runs notify in this process, and reports:
- deliveries_per_s: N*K / (time from publishing until the last delivery was recorded);
- p50_ms / p99_ms: from the events' publication to each message's arrival at the sink;
- decide_ms: how long the first decisions took (up to 200 subscriptions: match … render, one
  compare-and-apply per subscription), and send_concurrency (sends in flight at once; apprise's
  pools match it);
- apprise_alone_per_s: measured in the same run, against the same sink — one apprise object
  notifying all N URLs at once, nothing else — so the cost of redalert's chain is visible.
`--target-latency-ms` makes the sink answer that much later, like a remote service: then sends in
flight, not CPU, set the pace (compare `--send-concurrency 6`, apprise's own default pool).
Runs in its own namespace, deleted afterwards. Uses $REDALERT_REDIS_URL, else 127.0.0.1:6379,
else an embedded server.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import apprise  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402
from sink import sink_process  # noqa: E402

from services.notify.service import NotifyService  # noqa: E402
from shared import keys  # noqa: E402
from shared.embedded import reachable_redis  # noqa: E402
from shared.models import EventKind, Incident, IncidentEvent, Post, Subscription  # noqa: E402
from shared.redis import broker as make_broker  # noqa: E402
from shared.redis import redis_client  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.severity import Severity  # noqa: E402
from shared.startup import prepare, settle_gc  # noqa: E402


def red_alert(n: int) -> IncidentEvent:
    now = datetime.now(UTC)
    incident = Incident(
        id=f"bench{n}",
        title=f"Gas leak reported at plant {n}",
        severity=Severity.RED_ALERT,
        peak_severity=Severity.RED_ALERT,
        opened_at=now,
        updated_at=now,
        post_count=1,
        version=1,
    )
    post = Post(source="bench", text=incident.title)
    return IncidentEvent(
        id=f"{incident.id}:1", kind=EventKind.OPENED, incident=incident, reason="opened", post=post
    )


async def run(
    subscriptions: int, events: int, url: str, port: int, concurrency: int, latency_ms: float
) -> dict[str, float]:
    settings = Settings(
        _env_file=None,
        send_concurrency=concurrency,
        redis_url=url,
        namespace=f"bench-{uuid.uuid4().hex[:8]}",
        batch_size=events,
        block_ms=20,
        send_timeout_s=60,
    )
    redis = redis_client(settings)  # as notify gets it (hiredis packs and parses)
    k = keys.Keys(settings.namespace)
    expected = subscriptions * events
    try:
        await prepare(redis, settings)
        async with redis.pipeline(transaction=True) as pipe:
            for i in range(subscriptions):
                sub = Subscription(name=f"sub-{i}", urls=[f"json://127.0.0.1:{port}/s/{i}"])
                pipe.hset(k.subscriptions, sub.id, sub.model_dump_json())
            pipe.incr(k.subscriptions_version)
            await pipe.execute()

        notify = NotifyService(redis, settings)
        decide_ms: list[float] = []
        inner_decide = notify.decide

        async def timed_decide(jobs: list) -> list:
            started = time.perf_counter()
            try:
                return await inner_decide(jobs)
            finally:
                decide_ms.append((time.perf_counter() - started) * 1000)

        notify.decide = timed_decide  # type: ignore[method-assign]
        broker = make_broker(settings)
        for consumer in notify.consumers:
            consumer.register(broker)
        await broker.start()
        # As a running notify: its timed work and lease renewal going, its subscriptions loaded.
        stop = asyncio.Event()
        jobs = [asyncio.create_task(job(stop)) for job in notify.background()]
        await notify.subs.current()
        settle_gc()  # as `redalert notify` does once started

        published = time.time()
        started = time.perf_counter()
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(events):
                event = red_alert(n)
                pipe.xadd(k.stream(keys.INCIDENT_EVENTS), {"data": event.model_dump_json()})
            await pipe.execute()
        deliveries = k.stream(keys.DELIVERIES)
        while await redis.xlen(deliveries) < expected:  # noqa: ASYNC110 (polling Redis)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await broker.stop()
        stop.set()
        await asyncio.wait(jobs, timeout=10)

        records = [json.loads(f[b"data"]) for _, f in await redis.xrange(deliveries)]
        sent = [r for r in records if r["outcome"] == "sent"]
        async with httpx.AsyncClient() as http:
            arrived = (await http.get(f"http://127.0.0.1:{port}/")).json()
        latencies = sorted((t - published) * 1000 for t, _ in arrived)
        alone = await apprise_alone(subscriptions, port)
    finally:
        async for key in redis.scan_iter(match=f"{settings.namespace}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
    return {
        "subscriptions": subscriptions,
        "events": events,
        "deliveries": len(sent),
        "failed": len(records) - len(sent),
        "seconds": round(elapsed, 3),
        "deliveries_per_s": round(len(sent) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "decide_ms": round(decide_ms[0], 1),
        "send_concurrency": settings.send_concurrency,
        "apprise_alone_per_s": round(alone, 1),
        "target_latency_ms": latency_ms,
    }


async def apprise_alone(n: int, port: int) -> float:
    """The same fan-out with apprise by itself: one object, N URLs, one call."""
    ap = apprise.Apprise()
    for i in range(n):
        plugin = apprise.Apprise.instantiate(f"json://127.0.0.1:{port}/alone/{i}")
        plugin.request_rate_per_sec = 0
        ap.add(plugin)
    started = time.perf_counter()
    result = await ap.async_notify(body="b", title="t", notify_type="failure")
    elapsed = time.perf_counter() - started
    assert result, "apprise alone could not deliver"
    return n / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscriptions", type=int, default=1000)
    p.add_argument("--events", type=int, default=1, help="red-alert events, one per incident")
    p.add_argument(
        "--send-concurrency", type=int, default=64, help="sends in flight (6 = apprise's default)"
    )
    p.add_argument("--target-latency-ms", type=float, default=0.0, help="the sink's answer delay")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = p.parse_args()
    with reachable_redis(args.redis_url) as url, sink_process(args.target_latency_ms) as port:
        work = run(
            args.subscriptions,
            args.events,
            url,
            port,
            args.send_concurrency,
            args.target_latency_ms,
        )
        result = uvloop.run(work)  # as `redalert notify` runs
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['deliveries']} deliveries ({result['subscriptions']} subscriptions x "
            f"{result['events']} event(s)) in {result['seconds']} s: "
            f"{result['deliveries_per_s']} deliveries/s; "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms from event to arrival; "
            f"first batch decided in {result['decide_ms']} ms; "
            f"{result['send_concurrency']} sends in flight; "
            f"apprise alone: {result['apprise_alone_per_s']} deliveries/s"
        )
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
