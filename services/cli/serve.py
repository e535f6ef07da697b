"""`redalert up` (everything in one process) and `redalert ingest|classify|notify`."""

import argparse
import asyncio
import logging

from services.cli.common import settings, setup_logging
from services.runtime import SERVICES, serve
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
    asyncio.run(serve(s, [args.service]))
    return 0


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
    try:
        asyncio.run(serve(s, SERVICES))
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded Redis stopped; its data stays in %s/", s.data_dir)
    return 0
