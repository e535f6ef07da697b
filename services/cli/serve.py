"""`redalert up` (everything in one process) and `redalert ingest|classify|notify`."""

import argparse
import asyncio
import logging
import os
import sys
import threading

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
    up.set_defaults(func=run_up)
    for name in SERVICES:
        p = sub.add_parser(name, help=f"run the {name} service alone")
        p.set_defaults(func=run_one, service=name)


def run_one(args: argparse.Namespace) -> int:
    s = settings()
    setup_logging(s.log_level)
    return _exit(_run(s, [args.service]))


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
        code = _run(s, SERVICES)
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded Redis stopped; its data stays in %s/", s.data_dir)
    return _exit(code)


def _run(s: Settings, services: list[str]) -> int:
    try:
        asyncio.run(serve(s, services))
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
