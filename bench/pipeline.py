"""End-to-end throughput: posts published to the `posts` stream, through classify and notify.

    python bench/pipeline.py [--posts N] [--rate R] [--subscriptions S] [--json]
                             [--redis-url URL]

Publishes N posts (the ISS thread's 14 texts, over N/14 threads) straight to `posts` with
pipelined XADD, runs classify and notify in this process (with `--subscriptions` json:// targets
on a local sink, 10 by default), and reports:
- posts_per_s: N / (time from the first XADD until notify consumed the last incident event);
- p50_ms / p99_ms: from a post's publication to notify consuming the incident event it caused;
- delivery_p50_ms / delivery_p99_ms: from a post's publication to each message about the event
  it caused arriving at the sink (matched by the `X-Redalert-Delivery` header);
- redis_xadd_per_s: the raw rate of pipelined XADD with redis-py on the same Redis, same run,
  so the ratio between redalert and Redis itself is visible;
- where classify's time goes, per post (decode, rules, read, decide, encode, write), and
  notify's per incident event.
By default all N posts are published at once (a burst: latency then includes the queue);
`--rate R` publishes R posts per second instead, to see latency under a sustained load.
Runs in its own namespace, deleted afterwards. Uses $REDALERT_REDIS_URL, else 127.0.0.1:6379,
else an embedded server.
"""

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from sink import sink_process  # noqa: E402

from services.classify.service import ClassifyService  # noqa: E402
from services.notify.service import NotifyService  # noqa: E402
from shared import keys  # noqa: E402
from shared.codec import decode  # noqa: E402
from shared.consumer import Batch  # noqa: E402
from shared.embedded import reachable_redis  # noqa: E402
from shared.models import IncidentEvent, Post, Subscription  # noqa: E402
from shared.redis import broker as make_broker  # noqa: E402
from shared.redis import redis_client  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.startup import prepare  # noqa: E402
from shared.subscriptions import SubscriptionStore  # noqa: E402

SEED = ROOT / "examples" / "iss-coolant-leak.jsonl"
CHUNK = 1_000


async def arrivals(sink: int, expect_more: bool) -> list[tuple[float, str]]:
    """Every delivery the sink saw, once none has arrived for a second (sends may still be in
    flight when notify has consumed the last event)."""
    out: list[tuple[float, str]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink}") as client:
        quiet_since = time.monotonic()
        while expect_more and time.monotonic() - quiet_since < 1.0:
            await asyncio.sleep(0.2)
            got = (await client.get("/")).json()
            out += [(t, d) for t, d in got]
            if got:
                quiet_since = time.monotonic()
        out += [(t, d) for t, d in (await client.get("/")).json()]
    return out


def workload(n: int) -> list[Post]:
    texts = [json.loads(line)["text"] for line in SEED.read_text().splitlines() if line.strip()]
    return [
        Post(
            id=f"b{i}", source="bench", text=texts[i % len(texts)], thread_id=f"t{i // len(texts)}"
        )
        for i in range(n)
    ]


async def xadd_rate(redis: Redis, stream: str, payload: str, n: int) -> float:
    started = time.perf_counter()
    for i in range(0, n, CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(min(CHUNK, n - i)):
                pipe.xadd(stream, {"data": payload})
            await pipe.execute()
    return n / (time.perf_counter() - started)


async def run(
    n: int, redis_url: str, rate: float | None = None, subscriptions: int = 10, sink: int = 0
) -> dict[str, float]:
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        namespace=f"bench-{uuid.uuid4().hex[:8]}",
        batch_size=500,
        block_ms=20,
    )
    redis = redis_client(settings)  # as the services get it (hiredis packs and parses)
    k = keys.Keys(settings.namespace)
    posts = workload(n)
    latencies: list[float] = []
    published: dict[str, float] = {}  # incident event id -> its post's publication time
    consumed = asyncio.Event()
    expected_events: int | None = None
    seen_events = 0
    try:
        await prepare(redis, settings)
        store = SubscriptionStore(redis, k)
        for i in range(subscriptions):  # each its own json:// URL on one local sink
            await store.put(Subscription(name=f"sub-{i}", urls=[f"json://127.0.0.1:{sink}/s/{i}"]))
        classify = ClassifyService(redis, settings)
        notify = NotifyService(redis, settings)
        inner = notify.on_events
        notify_s = 0.0

        async def probe(batch: Batch) -> None:
            nonlocal seen_events, notify_s
            now = time.time()
            for entry in batch.entries:
                event = decode(entry.fields, IncidentEvent)
                if event.post is not None:
                    published[event.id] = event.post.received_at.timestamp()
                    latencies.append((now - published[event.id]) * 1000)
            t0 = time.perf_counter()
            await inner(batch)
            notify_s += time.perf_counter() - t0
            seen_events += len(batch.entries)
            if expected_events is not None and seen_events >= expected_events:
                consumed.set()

        notify.consumers[0].handler = probe
        gc.freeze()  # start-up's objects out of the collector's sight, as `serve` does
        broker = make_broker(settings)
        for consumer in [*classify.consumers, *notify.consumers]:
            consumer.register(broker)
        await broker.start()
        stop = asyncio.Event()  # the services' own jobs: live rules, notify's scheduler…
        jobs = [asyncio.create_task(j(stop)) for s in (classify, notify) for j in s.background()]

        started, cpu_started = time.perf_counter(), time.process_time()
        stream = k.stream(keys.POSTS)
        chunk = CHUNK if rate is None else max(1, int(rate / 20))  # rate: 20 ticks a second
        for i in range(0, n, chunk):
            async with redis.pipeline(transaction=False) as pipe:
                for post in posts[i : i + chunk]:
                    post.received_at = post.received_at.now(post.received_at.tzinfo)
                    pipe.xadd(stream, {"data": post.model_dump_json(exclude_none=True)})
                await pipe.execute()
            if rate is not None:
                ahead = started + (i + chunk) / rate - time.perf_counter()
                await asyncio.sleep(max(0.0, ahead))
        # Every post classified; then every event it caused consumed by notify.
        classified = k.stream(keys.CLASSIFIED)
        async with asyncio.timeout(600):  # a stuck pipeline is an error, not a hang
            while await redis.xlen(classified) < n:  # noqa: ASYNC110 (polling Redis, not a flag)
                await asyncio.sleep(0.01)
        # Entries added, not the length: notify trims what it consumed.
        info = await redis.xinfo_stream(k.stream(keys.INCIDENT_EVENTS))
        expected_events = int(info["entries-added"])
        if seen_events < expected_events:
            await asyncio.wait_for(consumed.wait(), timeout=120)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        delivered = await arrivals(sink, expect_more=subscriptions > 0)
        stop.set()
        await asyncio.gather(*jobs)
        await broker.stop()

        sample = posts[0].model_dump_json(exclude_none=True)
        raw = await xadd_rate(redis, f"{settings.namespace}:xadd-probe", sample, n)
    finally:
        async for key in redis.scan_iter(match=f"{settings.namespace}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
    latencies.sort()
    deliveries = sorted(
        (t - published[d.rpartition("/")[0]]) * 1000
        for t, d in delivered
        if d.rpartition("/")[0] in published
    )
    stages = {
        f"{stage}_us_per_post": round(classify.timings[stage] / n * 1e6, 1)
        for stage in ("decode", "rules", "read", "decide", "encode", "write")
    }
    return {
        **stages,
        "notify_us_per_event": round(notify_s / max(1, expected_events or 0) * 1e6, 1),
        "subscriptions": subscriptions,
        "posts": n,
        "events": expected_events or 0,
        "seconds": round(elapsed, 3),
        "posts_per_s": round(n / elapsed, 1),
        # This process's CPU (publishing, classify, notify; not the sink's): steadier than the
        # wall clock on a shared machine.
        "cpu_us_per_post": round(cpu / n * 1e6, 1),
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "deliveries": len(deliveries),
        "delivery_p50_ms": _percentile(deliveries, 50),
        "delivery_p99_ms": _percentile(deliveries, 99),
        "redis_xadd_per_s": round(raw, 1),
    }


def _percentile(ordered: list[float], p: int) -> float | None:
    if not ordered:
        return None
    if p == 50:
        return round(statistics.median(ordered), 1)
    return round(ordered[max(0, int(len(ordered) * p / 100) - 1)], 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--rate", type=float, help="publish this many posts/s (default: a burst)")
    parser.add_argument(
        "--subscriptions", type=int, default=10, help="json:// subscriptions on a local sink"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = parser.parse_args()
    with reachable_redis(args.redis_url) as url, sink_process() as sink:
        result = uvloop.run(run(args.posts, url, args.rate, args.subscriptions, sink))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"pipeline: {result['posts']} posts, {result['events']} incident events "
            f"in {result['seconds']} s"
        )
        print(
            f"  end to end      {result['posts_per_s']:>10,.0f} posts/s, "
            f"{result['cpu_us_per_post']} µs CPU per post (this process)"
        )
        print(
            f"  latency         p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
            "(publish -> incident event consumed)"
        )
        print(
            f"                  p50 {result['delivery_p50_ms']} ms, "
            f"p99 {result['delivery_p99_ms']} ms (publish -> message at the sink; "
            f"{result['deliveries']} messages)"
        )
        print(
            f"  redis XADD      {result['redis_xadd_per_s']:>10,.0f} entries/s "
            f"(pipelined; redalert does {result['posts_per_s'] / result['redis_xadd_per_s']:.1%})"
        )
        stages = ", ".join(
            f"{k.removesuffix('_us_per_post')} {v}"
            for k, v in result.items()
            if k.endswith("_us_per_post") and k != "cpu_us_per_post"
        )
        print(f"  classify        µs per post: {stages}")
        print(
            f"  notify          {result['notify_us_per_event']} µs per incident event "
            f"({result['subscriptions']} subscriptions)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
