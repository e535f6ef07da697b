"""`redalert up` (everything in one process) and `redalert ingest|classify|notify`."""

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import uvloop

from services.cli.common import fail, settings, setup_logging
from services.runtime import SERVICES, StartupError, serve
from shared.embedded import EmbeddedRedis, EmbeddedRedisError, answers
from shared.settings import Settings

log = logging.getLogger("redalert")


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="run ingest, classify and notify in one process")
    up.add_argument(
        "--no-embedded-redis",
        action="store_true",
        help="fail instead of starting an embedded Redis when none is reachable",
    )
    _add_workers(up)
    up.set_defaults(func=run_up)
    for name in SERVICES:
        p = sub.add_parser(name, help=f"run the {name} service alone")
        _add_workers(p)
        p.set_defaults(func=run_one, service=name)


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes (one per core): ingest's share the HTTP port, notify's share the "
        "work, classify's stand by for the one that owns incidents (default 1)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="share the HTTP port with other processes (SO_REUSEPORT); --workers sets it",
    )


def run_one(args: argparse.Namespace) -> int:
    s = settings()
    setup_logging(s.log_level)
    with workers(args, [args.service], s) as reuse_port:
        code = _run(s, [args.service], reuse_port=reuse_port)
    return _exit(code)


def run_up(args: argparse.Namespace) -> int:
    s = settings()
    setup_logging(s.log_level)
    embedded = None
    if s.redis_url is None and not answers("127.0.0.1", 6379):
        if args.no_embedded_redis:
            log.error("no Redis at 127.0.0.1:6379 and REDALERT_REDIS_URL is not set")
            return 1
        try:
            embedded = EmbeddedRedis(6379, s.data_dir).start()
        except EmbeddedRedisError as e:
            log.error("%s", e)
            return 1
        log.info(
            "no Redis was running: started an embedded valkey-server on 127.0.0.1:6379 "
            "(AOF persistence in %s/)",
            s.data_dir,
        )
        s = Settings(**{**s.model_dump(), "redis_url": embedded.url})
    elif s.redis_url is None:
        # Say so: a server this command did not start keeps running after it, with its own data.
        log.info(
            "using the Redis already running on 127.0.0.1:6379 (not started by redalert; "
            "set REDALERT_REDIS_URL to choose another)"
        )
    try:
        with workers(args, ["up"], s) as reuse_port:
            code = _run(s, SERVICES, reuse_port=reuse_port)
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded Redis stopped; its data stays in %s/", s.data_dir)
    return _exit(code)


@contextlib.contextmanager
def workers(args: argparse.Namespace, command: list[str], s: Settings) -> Iterator[bool]:
    """With `--workers N`, start N - 1 more processes of the same command (each with its own
    consumer name) beside this one; stop them when this one stops. Yields whether the HTTP
    port is shared."""
    extra: list[subprocess.Popen[bytes]] = []
    if args.workers > 1:
        env = {**os.environ, "REDALERT_REDIS_URL": s.effective_redis_url}
        env.pop("REDALERT_CONSUMER_NAME", None)  # each process its own (<host>-<pid>)
        for _ in range(args.workers - 1):
            cmd = [sys.executable, "-m", "services.cli", *command, "--reuse-port"]
            if command == ["up"]:
                cmd.append("--no-embedded-redis")
            extra.append(subprocess.Popen(cmd, env=env))
        log.info("started %d more worker process(es)", len(extra))
    try:
        yield args.reuse_port or args.workers > 1
    finally:
        for p in extra:
            p.terminate()
        for p in extra:
            try:
                p.wait(timeout=s.shutdown_s + 5)
            except subprocess.TimeoutExpired:
                p.kill()


def _run(s: Settings, services: list[str], *, reuse_port: bool = False) -> int:
    try:
        # uvloop: a faster event loop (a quarter less CPU per request or post, bench/).
        uvloop.run(serve(s, services, reuse_port=reuse_port))
    except StartupError as e:
        return fail(str(e), 2)
    except KeyboardInterrupt:
        pass
    return 0


def _exit(code: int) -> int:
    """Exit now, even if a blocking send (an apprise plugin on a worker thread, which cannot be
    cancelled) is still waiting for its target: its entry was not acked, so it is handed back."""
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
