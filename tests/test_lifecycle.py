"""Starting and stopping as an operator sees it: SIGTERM under load, SIGHUP and a dying parent,
a busy port, and consumers of dead processes leaving their groups."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared import keys
from shared.consumer import StreamConsumer, ensure_group
from shared.models import Classification
from shared.settings import Settings
from tests.conftest import eventually
from tests.sinks import HttpSink

BIN = Path(sys.executable).parent


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDALERT_")}
    return env | {
        "REDALERT_REDIS_URL": settings.effective_redis_url,
        "REDALERT_NAMESPACE": settings.namespace,
        "REDALERT_HTTP_PORT": str(settings.http_port),
        "REDALERT_CONSUMER_NAME": settings.consumer_name,
        "REDALERT_BLOCK_MS": "50",
        **extra,
    }


def _wait_healthy(port: int, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "redalert exited during start-up"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("redalert did not start")


async def test_sigterm_under_load_exits_within_the_budget_and_loses_nothing(
    settings: Settings, redis: Redis, run_services: Any, tmp_path: Path
):
    # A target that never answers in time: without a bound, the stop waits for its sends.
    with HttpSink(delay=60) as slow:
        env = _env(settings, REDALERT_SHUTDOWN_S="3", REDALERT_SEND_TIMEOUT_S="60")
        log = (tmp_path / "up.log").open("wb")
        proc = subprocess.Popen([BIN / "redalert", "up"], env=env, stdout=log, stderr=log)
        try:
            _wait_healthy(settings.http_port, proc)
            base = f"http://127.0.0.1:{settings.http_port}"
            async with httpx.AsyncClient(base_url=base) as api:
                r = await api.post(
                    "/v1/subscriptions",
                    json={"name": "slow", "urls": [slow.url], "min_severity": "no_danger"},
                )
                r.raise_for_status()
            accepted: list[str] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=base, timeout=5) as client:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            r = client.post(
                                "/v1/posts",
                                json={"id": f"p{n}", "text": f"Red alert: fire in module {n}"},
                            )
                        except httpx.TransportError:
                            return  # the server closed: what got a 202 is what counts
                        if r.status_code == 202:
                            accepted.extend(r.json()["accepted"])

            poster = threading.Thread(target=load)
            poster.start()
            await eventually(lambda: len(accepted) >= 20 and slow.attempts >= 1, timeout=60)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            took = time.monotonic() - started
            stop.set()
            poster.join()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, (tmp_path / "up.log").read_text()
    # The budget is 3 s; the slow target would hold a stop for 60 s. Generous slack for a busy
    # machine, far below what an unbounded stop takes.
    assert took < 15, f"took {took:.1f}s to exit"
    # Nothing lost: every post that got a 202 is classified once another classify takes over.
    k = keys.Keys(settings.namespace)
    async with run_services(settings.model_copy(update={"consumer_name": "after"}), "classify"):

        async def all_classified() -> bool:
            entries = await redis.xrange(k.stream(keys.CLASSIFIED))
            seen = {_post_id(f) for _, f in entries}
            return set(accepted) <= seen

        await eventually(all_classified, timeout=60)


def _post_id(fields: dict[bytes, bytes]) -> str:
    return Classification.model_validate_json(fields[b"data"]).post.id


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


# In a fresh network namespace nothing listens on 127.0.0.1:6379, so `up` starts its own server.
UP_THEN_SIGNAL = textwrap.dedent(
    """
    ip link set lo up 2>/dev/null || true
    "$BIN/redalert" up > "$OUT/up.log" 2>&1 &
    UP=$!
    for i in $(seq 1 150); do
      "$BIN/python" -c "import httpx; httpx.get('http://127.0.0.1:8080/healthz')" 2>/dev/null \
        && break
      sleep 0.2
    done
    kill -$SIG $UP
    wait $UP
    sleep 1
    """
)


def _servers_using(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(data_dir) in line and "server" in line]


@pytest.mark.skipif(not _namespaces_work(), reason="needs `unshare -rn` for a Redis-less machine")
@pytest.mark.parametrize("sig", ["HUP", "KILL"])
def test_closing_the_terminal_or_killing_up_leaves_no_embedded_server(tmp_path: Path, sig: str):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDALERT_")} | {
        "BIN": str(BIN),
        "OUT": str(tmp_path),
        "SIG": sig,
        "REDALERT_DATA_DIR": str(data),
        "REDALERT_HTTP_PORT": "8080",
    }
    subprocess.run(["unshare", "-rn", "bash", "-c", UP_THEN_SIGNAL], env=env, timeout=120)
    up = (tmp_path / "up.log").read_text()
    assert "started an embedded valkey-server" in up
    if sig == "HUP":
        assert "embedded Redis stopped" in up
    left: list[str] = []
    for _ in range(50):
        left = _servers_using(data)
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"still running after SIG{sig}: {left}\n{up}"


async def test_a_busy_port_is_one_line_naming_the_setting_before_joining_any_group(
    settings: Settings, redis: Redis
):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = settings.model_copy(update={"http_port": port})
        run = await asyncio.to_thread(
            subprocess.run,
            [BIN / "redalert", "up"],
            env=_env(busy, REDALERT_LOG_LEVEL="WARNING"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "REDALERT_HTTP_PORT" in lines[0]
    # It stopped before joining anything: not even the streams were created.
    assert not [k async for k in redis.scan_iter(match=f"{settings.namespace}:*")]


async def _consumers(redis: Redis, stream: str, group: str) -> dict[str, int]:
    return {c["name"].decode(): c["pending"] for c in await redis.xinfo_consumers(stream, group)}


async def test_a_stopped_service_leaves_its_consumer_groups(
    make_settings: Any, redis: Redis, run_services: Any
):
    settings = make_settings(consumer_name=f"leaving-{uuid.uuid4().hex[:6]}")
    k = keys.Keys(settings.namespace)
    async with run_services(settings, "classify", "notify"):
        # (Redis 7.0 registers a consumer when it first gets an entry, not on an empty read.)
        await redis.xadd(k.stream(keys.POSTS), {"text": "Red alert: fire on board"})
        await eventually(
            lambda: _has_consumer(redis, k.stream(keys.POSTS), "classify", settings.consumer_name)
        )
    for stream, group in keys.GROUPS.items():
        assert settings.consumer_name not in await _consumers(redis, k.stream(stream), group)


async def _has_consumer(redis: Redis, stream: str, group: str, name: str) -> bool:
    return name in await _consumers(redis, stream, group)


async def test_consumers_of_dead_processes_go_once_their_pending_entries_are_claimed(
    make_settings: Any, redis: Redis
):
    settings = make_settings(reclaim_idle_ms=100, block_ms=1)
    k = keys.Keys(settings.namespace)
    stream = k.stream(keys.POSTS)
    await ensure_group(redis, stream, "classify")
    await redis.xadd(stream, {"text": "one"})
    await redis.xadd(stream, {"text": "two"})
    # Two processes that died: one read an entry and never acked it, one had nothing pending.
    await redis.xreadgroup("classify", "dead-busy", {stream: ">"}, count=1)
    await redis.xreadgroup("classify", "dead-idle", {stream: ">"}, count=1)
    await redis.xack(stream, "classify", *[e for e, _ in await redis.xrange(stream)][1:])

    async def handler(batch: Any) -> None:
        pass

    live = StreamConsumer(redis, settings, keys.POSTS, handler, consumer="live")
    await asyncio.sleep(0.3)  # idle for longer than any live consumer is
    assert await live.forget_dead_consumers() == ["dead-idle"]
    assert await _consumers(redis, stream, "classify") == {"dead-busy": 1}
    # A live replica claims the dead one's entry: then the dead consumer goes too.
    await redis.xautoclaim(stream, "classify", "live", min_idle_time=0)
    await asyncio.sleep(0.3)
    assert await live.forget_dead_consumers() == ["dead-busy"]
    assert await _consumers(redis, stream, "classify") == {"live": 1}


async def test_leaving_keeps_a_consumer_that_still_has_pending_entries(
    settings: Settings, redis: Redis
):
    k = keys.Keys(settings.namespace)
    stream = k.stream(keys.POSTS)
    await ensure_group(redis, stream, "classify")
    await redis.xadd(stream, {"text": "one"})

    async def handler(batch: Any) -> None:
        pass

    consumer = StreamConsumer(redis, settings, keys.POSTS, handler, consumer="mid-batch")
    await redis.xreadgroup("classify", "mid-batch", {stream: ">"}, count=1)
    await consumer.leave()
    assert await _consumers(redis, stream, "classify") == {"mid-batch": 1}
    await redis.xack(stream, "classify", *[e for e, _ in await redis.xrange(stream)])
    await consumer.leave()
    assert await _consumers(redis, stream, "classify") == {}
