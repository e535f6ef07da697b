"""HTTP ingest throughput: `POST /v1/posts` in batches and one post at a time, beside Redis.

    python bench/ingest_http.py [--seconds S] [--batch N] [--connections C] [--clients K]
                                [--workers W] [--json]

Starts `redalert ingest` (W processes sharing the port) in its own namespace against
$REDALERT_REDIS_URL (else 127.0.0.1:6379, else an embedded server), and drives it from K client
processes with C keep-alive HTTP/1.1 connections each, one request in flight per connection. The
client is minimal (request bodies made by one bytes.replace on a pre-encoded template, responses
read by their content-length), so the figures are ingest's, not the client's; it still shares
the machine's cores with ingest and Redis. Reports:
- batch_posts_per_s: posts accepted per second in requests of N posts (202 only);
- single_requests_per_s: requests of one post each, per second;
- p50/p99 latency of each;
- ingest_cpu_us_per_post / ingest_cpu_us_per_single: CPU time the ingest processes spent per
  post in batches and per single request (Linux /proc): what a busy machine does not distort;
- redis_xadd_per_s: the same posts' JSON XADDed by redis-py, N per pipeline, C at a time;
- redis_publish_once_per_s: ingest's own publishing step without HTTP (dedup + XADD, one
  EVALSHA per N posts, C at a time) — the ceiling for batch_posts_per_s on this Redis.
All in the same run. Every post has a new id, so each is published, none is a duplicate. The
namespace is deleted afterwards.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from shared.embedded import free_port, reachable_redis  # noqa: E402

TEXT = "Gas leak reported on Main Street in Springfield, residents evacuated, crews on scene"
MARK = b"@@"  # where a request's own prefix goes, to make every post id new


def template(batch: int) -> bytes:
    posts = [
        b'{"id":"@@%d","source":"bench","text":"%s"}' % (i, TEXT.encode()) for i in range(batch)
    ]
    return b"[" + b",".join(posts) + b"]" if batch > 1 else posts[0]


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        if at >= 0:
            end = head.find(b"\r\n", at + 2)
            await self.reader.readexactly(int(head[at + 17 : end]))
        return int(head[9:12])


async def drive(
    port: int, seconds: float, batch: int, connections: int, tag: str
) -> tuple[int, int, list[float]]:
    """(requests, posts accepted, latencies in ms) over `seconds`."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    counts = [0, 0]
    body = template(batch)
    head = f"POST /v1/posts HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json"

    async def one_connection(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = Connection(reader, writer)
        n = 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                posts = body.replace(MARK, f"{tag}-{c}-{n}-".encode())
                request = f"{head}\r\ncontent-length: {len(posts)}\r\n\r\n".encode() + posts
                started = time.perf_counter()
                status = await conn.post(request)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 202:
                    raise RuntimeError(f"ingest answered {status}")
                counts[0] += 1
                counts[1] += batch
        finally:
            writer.close()

    await asyncio.gather(*(one_connection(c) for c in range(connections)))
    return counts[0], counts[1], latencies


def _drive_in_process(
    port: int, start_at: float, seconds: float, batch: int, connections: int, tag: str
) -> tuple[int, int, list[float]]:
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(drive(port, seconds, batch, connections, tag))


async def drive_all(
    pool: ProcessPoolExecutor | None, port: int, seconds: float, batch: int, conns: int, tag: str
) -> tuple[int, int, list[float]]:
    """`drive` from this process, or from each of the pool's processes at the same moment."""
    if pool is None:
        return await drive(port, seconds, batch, conns, tag)
    loop = asyncio.get_running_loop()
    start_at = time.time() + 0.5
    clients = pool._max_workers  # type: ignore[attr-defined]
    runs = [
        loop.run_in_executor(
            pool, _drive_in_process, port, start_at, seconds, batch, conns, f"{tag}{k}"
        )
        for k in range(clients)
    ]
    results = await asyncio.gather(*runs)
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        [ms for r in results for ms in r[2]],
    )


def start_ingest(redis_url: str, namespace: str, port: int, workers: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "REDALERT_REDIS_URL": redis_url,
        "REDALERT_NAMESPACE": namespace,
        "REDALERT_HTTP_PORT": str(port),
        "REDALERT_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "services.cli", "ingest"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


async def wait_ready(port: int, proc: subprocess.Popen, workers: int) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("ingest exited during start-up")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            if (await reader.readline()).split()[1] == b"200" and len(pids(proc)) >= workers:
                writer.close()
                return
            writer.close()
        except (OSError, IndexError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("ingest did not start")


def pids(proc: subprocess.Popen) -> list[int]:
    """The ingest process and the workers it started (Linux; else just the one)."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        children = []
    return [proc.pid, *map(int, children)]


def cpu_seconds(processes: list[int]) -> float:
    """User + system CPU time of these processes so far (0 where /proc is not there)."""
    total = 0
    for pid in processes:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


async def settle(processes: list[int], limit_s: float = 60.0) -> None:
    """Wait until these processes are idle (workers done importing), so CPU is counted fairly."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(processes)
        await asyncio.sleep(0.5)
        if cpu_seconds(processes) - before < 0.05:
            return


def summary(requests: int, posts: int, latencies: list[float], seconds: float) -> dict:
    latencies.sort()
    return {
        "requests_per_s": round(requests / seconds, 1),
        "posts_per_s": round(posts / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else 0,
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2) if latencies else 0,
    }


async def xadd_rate(redis: Redis, stream: str, seconds: float, batch: int, conns: int) -> float:
    """Posts' JSON XADDed per second by redis-py: `batch` per pipeline, `conns` at a time."""
    data = json.dumps({"id": "x" * 12, "source": "bench", "text": TEXT, "received_at": "now"})
    deadline = time.perf_counter() + seconds
    done = [0]

    async def one() -> None:
        while time.perf_counter() < deadline:
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(batch):
                    pipe.xadd(stream, {"data": data})
                await pipe.execute()
            done[0] += batch

    await asyncio.gather(*(one() for _ in range(conns)))
    return done[0] / seconds


async def publish_rate(
    redis: Redis, namespace: str, seconds: float, batch: int, conns: int
) -> float:
    """Posts per second through ingest's publishing step alone (dedup + XADD), no HTTP."""
    from services.ingest.publish import Publisher
    from shared.models import utcnow
    from shared.settings import Settings

    publisher = Publisher(redis, Settings(_env_file=None, namespace=namespace))
    received = utcnow().isoformat()
    deadline = time.perf_counter() + seconds
    done = [0]

    async def one(c: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            entries = []
            for i in range(batch):
                post_id = f"p{c}-{n}-{i}"
                data = json.dumps(
                    {"id": post_id, "source": "bench", "text": TEXT, "received_at": received}
                )
                entries.append((f"bench:{post_id}", post_id, data))
            await publisher.entries(entries)
            done[0] += batch

    await asyncio.gather(*(one(c) for c in range(conns)))
    return done[0] / seconds


async def run(redis_url: str, args: argparse.Namespace) -> dict:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    proc = start_ingest(redis_url, namespace, port, args.workers)
    redis = Redis.from_url(redis_url)
    pool = None
    if args.clients > 1:
        pool = ProcessPoolExecutor(args.clients, mp_context=get_context("spawn"))
    try:
        await wait_ready(port, proc, args.workers)
        ingest = pids(proc)
        await settle(ingest)
        # A short warm-up: connections, imports, Lua scripts loaded, client processes started.
        await drive_all(pool, port, 0.5, args.batch, args.connections, "warm")
        await settle(ingest)
        cpu = cpu_seconds(ingest)
        r, p, lat = await drive_all(pool, port, args.seconds, args.batch, args.connections, "b")
        batch_cpu = cpu_seconds(ingest) - cpu
        batch = summary(r, p, lat, args.seconds)
        cpu = cpu_seconds(ingest)
        r, p, lat = await drive_all(pool, port, args.seconds, 1, args.connections, "s")
        single_cpu = cpu_seconds(ingest) - cpu
        single = summary(r, p, lat, args.seconds)
        published = await redis.xlen(f"{namespace}:posts")
        conns = args.connections * args.clients
        xadd = await xadd_rate(redis, f"{namespace}:xadd", args.seconds, args.batch, conns)
        once = await publish_rate(redis, namespace, args.seconds, args.batch, conns)
    finally:
        if pool is not None:
            pool.shutdown()
        proc.terminate()
        proc.wait(timeout=30)
        async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
    return {
        "batch": args.batch,
        "connections": args.connections,
        "clients": args.clients,
        "workers": args.workers,
        "batch_posts_per_s": batch["posts_per_s"],
        "batch_requests_per_s": batch["requests_per_s"],
        "batch_p50_ms": batch["p50_ms"],
        "batch_p99_ms": batch["p99_ms"],
        "single_requests_per_s": single["requests_per_s"],
        "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"],
        "ingest_cpu_us_per_post": round(
            batch_cpu / max(1, batch["posts_per_s"]) / args.seconds * 1e6, 1
        ),
        "ingest_cpu_us_per_single": round(
            single_cpu / max(1, single["requests_per_s"]) / args.seconds * 1e6, 1
        ),
        "redis_xadd_per_s": round(xadd, 1),
        "redis_publish_once_per_s": round(once, 1),
        "published": published,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per mode")
    parser.add_argument("--batch", type=int, default=100, help="posts per request in batch mode")
    parser.add_argument("--connections", type=int, default=16, help="per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--workers", type=int, default=1, help="ingest processes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = parser.parse_args()
    with reachable_redis(args.redis_url) as url:
        result = asyncio.run(run(url, args))
    if args.json:
        print(json.dumps(result))
        return 0
    r = result
    print(
        f"ingest over HTTP ({args.workers} process(es); {args.clients} client process(es) "
        f"x {args.connections} connections)"
    )
    print(
        f"  batches of {args.batch:<4} {r['batch_posts_per_s']:>10,.0f} posts/s "
        f"({r['batch_requests_per_s']:,.0f} req/s, p50 {r['batch_p50_ms']} ms, "
        f"p99 {r['batch_p99_ms']} ms; {r['ingest_cpu_us_per_post']} us CPU per post)"
    )
    print(
        f"  single posts    {r['single_requests_per_s']:>10,.0f} req/s "
        f"(p50 {r['single_p50_ms']} ms, p99 {r['single_p99_ms']} ms; "
        f"{r['ingest_cpu_us_per_single']} us CPU per request)"
    )
    print(
        f"  same Redis      {r['redis_xadd_per_s']:>10,.0f} XADD/s (redis-py, {args.batch} per "
        f"pipeline); {r['redis_publish_once_per_s']:,.0f} posts/s through ingest's publishing "
        f"step alone (dedup + XADD, no HTTP)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
