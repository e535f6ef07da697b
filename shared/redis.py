"""The one place that connects to Redis: a redis-py asyncio client and a FastStream broker."""

import logging

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from shared.settings import Settings


def redis_client(settings: Settings) -> "Redis":
    # Bytes in, bytes out: stream entries from other producers need not be UTF-8.
    return Redis.from_url(
        settings.effective_redis_url,
        decode_responses=False,
        health_check_interval=30,
        socket_keepalive=True,
    )


def broker(settings: Settings) -> RedisBroker:
    # FastStream logs every message at INFO; per-message lines belong at DEBUG here.
    return RedisBroker(
        settings.effective_redis_url,
        log_level=logging.DEBUG,
        logger=logging.getLogger("redalert.broker"),
    )


async def ping(client: "Redis") -> bool:
    try:
        return bool(await client.ping())
    except Exception:
        return False
