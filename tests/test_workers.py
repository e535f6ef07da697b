"""`--workers N`: N processes of a service; ingest's share the HTTP port; they stop together."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.embedded import free_port


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_ingest_with_two_workers_shares_its_port_and_stops_together(settings, redis):
    port = free_port()
    env = {
        **os.environ,
        "REDALERT_REDIS_URL": settings.effective_redis_url,
        "REDALERT_NAMESPACE": settings.namespace,
        "REDALERT_HTTP_PORT": str(port),
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "ingest", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        accepted = 0
        while time.monotonic() < deadline and accepted < 20:
            workers = [c for c in children(parent.pid) if "--reuse-port" in cmdline(c)]
            try:  # a new connection each time: the kernel spreads them over the processes
                r = httpx.post(f"http://127.0.0.1:{port}/v1/posts", json={"text": "hello"})
                accepted += r.status_code == 202
            except httpx.TransportError:
                time.sleep(0.2)
        assert accepted == 20
        assert len(workers) == 1  # the second process, on the same port
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=60)
    time.sleep(0.5)
    assert all(not Path(f"/proc/{w}").exists() for w in workers)
