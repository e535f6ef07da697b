"""HTTP ingest throughput: `POST /v1/posts` in batches and one post at a time.

    python bench/ingest_http.py [--seconds S] [--batch N] [--connections C] [--workers W] [--json]

Starts `redalert ingest` (W processes sharing the port) in its own namespace against
$REDALERT_REDIS_URL (else 127.0.0.1:6379, else an embedded server), and drives it from this
process with a minimal keep-alive HTTP/1.1 client (C connections, one request in flight each;
cheaper than a general client, so the figures are ingest's, not the client's). Reports:
- batch_posts_per_s: posts accepted per second in requests of N posts (202 only);
- single_requests_per_s: requests of one post each, per second;
- p50/p99 latency of each.
Every post has a new id, so each is published (dedup + XADD), none is a duplicate. The
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from shared.embedded import free_port, reachable_redis  # noqa: E402

TEXT = "Gas leak reported on Main Street in Springfield, residents evacuated, crews on scene"


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, port: int, body: bytes) -> int:
        head = (
            f"POST /v1/posts HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def drive(
    port: int, seconds: float, batch: int, connections: int, tag: str
) -> tuple[int, int, list[float]]:
    """(requests, posts accepted, latencies in ms) over `seconds`."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    counts = [0, 0]
    counter = iter(range(10**12))

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = Connection(reader, writer)
        try:
            while time.perf_counter() < deadline:
                posts = [
                    {"id": f"{tag}-{next(counter)}", "source": "bench", "text": TEXT}
                    for _ in range(batch)
                ]
                body = json.dumps(posts if batch > 1 else posts[0]).encode()
                started = time.perf_counter()
                status = await conn.post(port, body)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 202:
                    raise RuntimeError(f"ingest answered {status}")
                counts[0] += 1
                counts[1] += batch
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return counts[0], counts[1], latencies


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


async def wait_ready(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("ingest exited during start-up")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            if (await reader.readline()).split()[1] == b"200":
                writer.close()
                return
            writer.close()
        except (OSError, IndexError):
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("ingest did not start")


def summary(requests: int, posts: int, latencies: list[float], seconds: float) -> dict:
    latencies.sort()
    return {
        "requests_per_s": round(requests / seconds, 1),
        "posts_per_s": round(posts / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else 0,
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2) if latencies else 0,
    }


async def run(redis_url: str, args: argparse.Namespace) -> dict:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    proc = start_ingest(redis_url, namespace, port, args.workers)
    redis = Redis.from_url(redis_url)
    try:
        await wait_ready(port, proc)
        # A short warm-up: connections, imports, Lua scripts loaded.
        await drive(port, 0.5, args.batch, args.connections, "warm")
        r, p, lat = await drive(port, args.seconds, args.batch, args.connections, "b")
        batch = summary(r, p, lat, args.seconds)
        r, p, lat = await drive(port, args.seconds, 1, args.connections, "s")
        single = summary(r, p, lat, args.seconds)
        published = await redis.xlen(f"{namespace}:posts")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
            await redis.unlink(key)
        await redis.aclose()
    return {
        "batch": args.batch,
        "connections": args.connections,
        "workers": args.workers,
        "batch_posts_per_s": batch["posts_per_s"],
        "batch_requests_per_s": batch["requests_per_s"],
        "batch_p50_ms": batch["p50_ms"],
        "batch_p99_ms": batch["p99_ms"],
        "single_requests_per_s": single["requests_per_s"],
        "single_p50_ms": single["p50_ms"],
        "single_p99_ms": single["p99_ms"],
        "published": published,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per mode")
    parser.add_argument("--batch", type=int, default=100, help="posts per request in batch mode")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="ingest processes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", default=os.environ.get("REDALERT_REDIS_URL"))
    args = parser.parse_args()
    with reachable_redis(args.redis_url) as url:
        result = asyncio.run(run(url, args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"ingest over HTTP ({args.workers} process(es), {args.connections} connections)")
    print(
        f"  batches of {args.batch:<4} {result['batch_posts_per_s']:>10,.0f} posts/s "
        f"({result['batch_requests_per_s']:,.0f} req/s, p50 {result['batch_p50_ms']} ms, "
        f"p99 {result['batch_p99_ms']} ms)"
    )
    print(
        f"  single posts    {result['single_requests_per_s']:>10,.0f} req/s "
        f"(p50 {result['single_p50_ms']} ms, p99 {result['single_p99_ms']} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
