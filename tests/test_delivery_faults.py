"""Delivery under faults: a notify process killed mid-send, a hanging target, a failing one.

ingest, classify and notify run as separate processes here, as in production, so `kill -9`
really leaves sends in flight.
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress

import httpx

from services.notify.chains import is_done
from services.notify.circuit import CircuitStore
from shared import keys
from shared.models import Subscription, utcnow
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually

INCIDENTS = 125  # x (red alert + resolved) x 2 subscriptions = 500 notifications
STAND_DOWN = "I'm going to secure from red alert unless circumstances change."
HEADER = "X-Redalert-Delivery"


def start(service: str, env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", service], env=env, stdout=log, stderr=log
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _running(log, since: int) -> bool:
    log.seek(since)
    return b"redalert running: notify" in log.read()


async def pending_ids(redis, k: keys.Keys, ids: set[str]) -> set[str]:
    """Of these delivery ids (event/subscription), the ones whose message is not done."""
    ordered = sorted(ids)
    found = await redis.mget([k.notification(*i.split("/", 1)) for i in ordered]) if ids else []
    return {i for i, raw in zip(ordered, found, strict=True) if not is_done(raw)}


async def test_notify_killed_mid_send_resends_only_what_was_in_flight_in_order(
    make_settings, redis, make_sink
):
    settings = make_settings()
    k = keys.Keys(settings.namespace)
    target = make_sink(delay=0.3)  # answers like a remote service
    store = SubscriptionStore(redis, k)
    subs = [Subscription(name=n, urls=[f"{target.url}/{n}"]) for n in ("alpha", "beta")]
    for s in subs:
        await store.put(s)
    lanes = 16
    env = {
        **os.environ,
        "REDALERT_REDIS_URL": settings.effective_redis_url,
        "REDALERT_NAMESPACE": settings.namespace,
        "REDALERT_HTTP_PORT": str(settings.http_port),
        "REDALERT_CORRELATION_WINDOW_S": "0",  # one incident per thread
        "REDALERT_BLOCK_MS": "50",
        "REDALERT_RECLAIM_IDLE_MS": "2000",
        "REDALERT_LANE_CONCURRENCY": str(lanes),
        "REDALERT_SEND_LEASE_S": "3",
        "REDALERT_SCHEDULE_POLL_S": "0.5",
    }
    env.pop("REDALERT_CONSUMER_NAME", None)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    procs = {s: start(s, env, log) for s in ("ingest", "classify", "notify")}
    try:
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30)

        async def up() -> bool:
            with suppress(httpx.HTTPError):
                return (await api.get("/healthz")).status_code == 200
            return False

        await eventually(up, timeout=90)
        posts = [
            {"id": f"p{t}-0", "source": "test", "thread_id": f"plant-{t}", "text": leak}
            for t in range(INCIDENTS)
            for leak in [f"Gas leak reported at plant {t}"]
        ] + [
            {"id": f"p{t}-1", "source": "test", "thread_id": f"plant-{t}", "text": STAND_DOWN}
            for t in range(INCIDENTS)
        ]
        assert (await api.post("/v1/posts", json=posts)).status_code == 202

        # Kill notify mid-send: some delivered, sends in flight, most still owed.
        await eventually(lambda: len(target.requests) >= 100, timeout=60)
        procs["notify"].send_signal(signal.SIGKILL)
        procs["notify"].wait()
        await asyncio.sleep(0.6)  # requests in flight at the kill are answered and recorded
        before = [r["headers"][HEADER] for r in target.requests]
        # In flight at the kill: reached the target, but notify had not recorded them done.
        in_flight = await pending_ids(redis, k, set(before))

        spawned = time.monotonic()
        log.seek(0, os.SEEK_END)
        mark = log.tell()
        procs["notify"] = start("notify", env, log)
        # Restarted = running again (a busy machine takes seconds just to start Python).
        await eventually(lambda: _running(log, mark), timeout=60, every=0.02)
        restarted = time.monotonic()
        expected = 4 * INCIDENTS

        def distinct() -> int:
            return len({r["headers"][HEADER] for r in target.requests})

        await eventually(lambda: distinct() >= expected, timeout=60)
        finished = max(r["arrived"] for r in target.requests) - restarted
        await asyncio.sleep(1.0)  # anything extra would arrive now
        await api.aclose()
    except BaseException:
        log.seek(0)
        print(log.read().decode(errors="replace")[-8000:])
        raise
    finally:
        for proc in procs.values():
            stop(proc)
        log.close()

    received = [r["headers"][HEADER] for r in target.requests]
    times = Counter(received)
    twice = {i for i, n in times.items() if n > 1}
    print(
        f"\n{len(received)} requests for {len(times)} notifications; in flight at the kill: "
        f"{len(in_flight)}; delivered twice: {len(twice)}; all delivered "
        f"{finished:.1f} s after the restart ({restarted - spawned:.1f} s to start)"
    )
    assert len(times) == expected  # nothing lost: deduplicating on the header leaves each once
    assert set(await pending_ids(redis, k, set(times))) == set()  # and each is recorded done
    assert twice <= in_flight  # only sends in flight at the kill were repeated…
    assert max(times.values()) == 2  # …once
    assert len(in_flight) <= 2 * lanes  # at most what the two lanes had in flight
    assert finished <= 15  # a correctness bound: the old lease alone was ~100 s

    # No [RESOLVED] before its [RED ALERT], for either subscriber.
    first: dict[tuple[str, str, str], float] = {}
    for r in sorted(target.requests, key=lambda r: r["arrived"]):
        title = r["json"]["title"]
        tag, _, what = title.partition("] ")
        first.setdefault((r["path"], what, tag), r["arrived"])
    for (path, what, tag), at in first.items():
        if tag == "[RESOLVED":
            assert first[(path, what, "[RED ALERT")] < at, (path, what)
    assert sum(1 for key in first if key[2] == "[RESOLVED") == 2 * INCIDENTS


async def test_a_hanging_and_a_failing_target_do_not_delay_a_healthy_one(
    make_settings, redis, run_services, make_sink
):
    """Three subscriptions: one target hangs 30 s, one answers 500, one is healthy."""
    from tests.delivery_helpers import event, incident

    settings = make_settings(send_attempts=3, circuit_failures=5, lane_concurrency=4)
    k = keys.Keys(settings.namespace)
    hanging, failing, healthy = make_sink(delay=30), make_sink(status=500), make_sink()
    store = SubscriptionStore(redis, k)
    subs = {}
    for name, sink in (("hanging", hanging), ("failing", failing), ("healthy", healthy)):
        subs[name] = Subscription(name=name, urls=[sink.url])
        await store.put(subs[name])
    stream = k.stream(keys.INCIDENT_EVENTS)
    n_events = 60
    published: dict[str, float] = {}
    async with run_services(settings, "notify"):
        for n in range(n_events):
            e = event(incident(id=f"inc{n}"), text=f"leak {n}")
            published[e.incident.id] = time.monotonic()
            await redis.xadd(stream, {"data": e.model_dump_json()})
            await asyncio.sleep(0.05)
        await eventually(lambda: len(healthy.messages()) >= n_events, timeout=30)
        lags = sorted(
            r["arrived"] - published[r["json"]["message"].split("/v1/incidents/")[1].split()[0]]
            for r in healthy.requests
        )
        found = await CircuitStore(redis, k).read([(s.id, 0) for s in subs.values()])
        circuits = {sub_id: c for (sub_id, _), c in found.items()}
        hanging_seen = hanging.attempts
    p99 = lags[int(len(lags) * 0.99) - 1]
    print(
        f"\nhealthy: {len(lags)} messages, event->delivery p50 {lags[len(lags) // 2]:.3f} s, "
        f"p99 {p99:.3f} s; failing target tried {failing.attempts} times; "
        f"hanging target got {hanging.attempts} requests"
    )
    assert len(healthy.messages()) == n_events
    assert p99 < 1.0  # a correctness bound (before lanes: a median of 8-24 s)
    failed = circuits[subs["failing"].id]
    assert failed.state(utcnow()) == "open"
    assert failed.failures >= 5
    # It opened after 5 failed deliveries; only those already in its lane were tried too.
    assert failing.attempts <= (5 + 4 - 1) * 3
    assert hanging_seen <= 4 * 3  # the hanging lane: 4 in flight, each retried at most twice
