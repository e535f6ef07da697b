"""The one place that connects to Redis: a redis-py asyncio client and a FastStream broker.

One address (`REDALERT_REDIS_URL`), or Redis Sentinel (`REDALERT_REDIS_SENTINELS` and
`REDALERT_REDIS_SENTINEL_MASTER`): then every connection asks the sentinels for the current
primary, and after a failover the next connection goes to the promoted replica. Commands that
fail while the primary is changing are retried with backoff; redalert's writes are safe to retry
(compare-and-apply guards, dedup keys, idempotent acks).

`REDALERT_MIN_REPLICAS_ACK=N`: writes that must survive the loss of the primary are followed by
`WAIT N` on the same connection — a post is answered 202 only once N replicas have it.
"""

import logging
from typing import Any
from urllib.parse import urlsplit

import hiredis
from faststream.redis import RedisBroker, RedisSentinelBroker
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import (
    AbstractConnection,
    BlockingConnectionPool,
    Connection,
    ConnectionPool,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.settings import Settings

log = logging.getLogger("redalert.redis")

# How long a write waits for its replicas: long enough for a healthy replica on a busy network,
# short enough that a client retries in time when there is none.
WAIT_TIMEOUT_MS = 2_000

# A failover (sentinels agreeing the primary is down, promoting a replica) takes seconds:
# retrying for ~30 s with backoff rides it out.
_RETRIES = 40


class NotReplicated(RuntimeError):
    """Fewer replicas than REDALERT_MIN_REPLICAS_ACK confirmed a write in time."""

    def __init__(self, acked: int, wanted: int) -> None:
        super().__init__(
            f"only {acked} of {wanted} replica(s) confirmed the write within "
            f"{WAIT_TIMEOUT_MS} ms (REDALERT_MIN_REPLICAS_ACK)"
        )
        self.acked, self.wanted = acked, wanted


def _common(settings: Settings) -> dict[str, Any]:
    parts = urlsplit(settings.effective_redis_url)
    db = int(parts.path.strip("/") or 0) if parts.path.strip("/").isdigit() else 0
    return {
        "db": db,
        "username": parts.username,
        "password": parts.password,
        # Bytes in, bytes out: stream entries from other producers need not be UTF-8.
        "decode_responses": False,
        "health_check_interval": 30,
        "socket_keepalive": True,
    }


class _HiredisPacking:
    """Commands packed by hiredis, in C. redis-py's asyncio connections parse replies with
    hiredis but pack commands in Python, re-joining a growing buffer per argument: for
    classify's batch writes (one Lua call with thousands of arguments) that was a quarter of
    its write time. redis-py's own sync client packs this way (HiredisRespSerializer)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # Like redis-py: a command name with spaces ("CONFIG GET") is sent as its words.
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as e:  # None, a bool…: what redis-py's encoder refuses too
            raise DataError(str(e)) from None


_PACKING: dict[type, type] = {}


def pack_with_hiredis(pool: ConnectionPool) -> None:
    """Make the pool's connections (plain, TLS, unix socket or sentinel-managed) pack with
    hiredis. Call before the pool opens its first connection."""
    base = pool.connection_class
    if issubclass(base, _HiredisPacking) or not issubclass(base, AbstractConnection):
        return
    if base not in _PACKING:
        _PACKING[base] = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    pool.connection_class = _PACKING[base]


# How long a command waits for a free connection when all REDALERT_REDIS_MAX_CONNECTIONS are
# busy: a burst of sends queues briefly; a leak surfaces as an error instead of a hang.
POOL_WAIT_S = 20.0


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel-managed connections to the current primary, with the blocking pool's waiting."""


def redis_client(settings: Settings) -> "Redis":
    # A bounded pool that waits: redis-py 8's default pool raises "Too many connections" past
    # 100, and notify's fan-out has a command in flight per chain.
    pool_kwargs: dict[str, Any] = {
        "max_connections": settings.redis_max_connections,
        "timeout": POOL_WAIT_S,
    }
    client: Redis
    if settings.sentinel_addresses:
        kwargs = _common(settings)
        sentinel = Sentinel(
            settings.sentinel_addresses,
            socket_timeout=2,
            socket_connect_timeout=2,
            # A sentinel's own password would go here (sentinel_kwargs); the data nodes' below.
        )
        client = sentinel.master_for(
            settings.redis_sentinel_master,
            redis_class=Redis,
            connection_pool_class=_BlockingSentinelPool,
            socket_timeout=10,
            socket_connect_timeout=2,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), _RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, ReadOnlyError],
            **pool_kwargs,
            **kwargs,
        )
    else:
        pool = BlockingConnectionPool.from_url(
            settings.effective_redis_url,
            decode_responses=False,
            health_check_interval=30,
            socket_keepalive=True,
            **pool_kwargs,
        )
        client = Redis.from_pool(pool)
    pack_with_hiredis(client.connection_pool)
    client.redalert_min_replicas_ack = settings.min_replicas_ack  # type: ignore[attr-defined]
    return client


def broker(settings: Settings) -> RedisBroker:
    # FastStream logs every message at INFO; per-message lines belong at DEBUG here.
    common: dict[str, Any] = {
        "log_level": logging.DEBUG,
        "logger": logging.getLogger("redalert.broker"),
    }
    if settings.sentinel_addresses:
        kwargs = _common(settings)
        return RedisSentinelBroker(
            sentinels=settings.sentinel_addresses,
            sentinel_master_name=settings.redis_sentinel_master,
            db=kwargs["db"],
            password=kwargs["password"],
            **common,
        )
    return RedisBroker(settings.effective_redis_url, **common)


def replicas_wanted(client: "Redis") -> int:
    return int(getattr(client, "redalert_min_replicas_ack", 0) or 0)


def queue_wait(pipe: Pipeline, client: "Redis") -> int:
    """Queue WAIT at the end of a pipeline (the same connection as its writes); returns N."""
    wanted = replicas_wanted(client)
    if wanted:
        pipe.execute_command("WAIT", wanted, WAIT_TIMEOUT_MS)
    return wanted


class ReplicatedPipeline(Pipeline):
    """A pipeline (a MULTI/EXEC transaction by default) followed by `WAIT N` on its connection
    (REDALERT_MIN_REPLICAS_ACK).

    WAIT does not block inside MULTI, and `execute` hands the connection back to the pool when
    it returns: so WAIT is sent once the replies are read, on that connection — the one whose
    writes it waits for — and outside redis-py's retry, which would run the writes again.
    `shortfall` says when fewer replicas than N confirmed in time.
    """

    def __init__(self, client: "Redis", *, transaction: bool = True) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, None)
        self.wanted = replicas_wanted(client)
        self.shortfall: NotReplicated | None = None

    async def _execute_transaction(  # type: ignore[no-untyped-def]
        self, connection: Connection, commands, raise_on_error
    ) -> list[Any]:
        replies = await super()._execute_transaction(connection, commands, raise_on_error)
        await self._wait(connection)
        return replies  # type: ignore[no-any-return]

    async def _execute_pipeline(  # type: ignore[no-untyped-def]
        self, connection: Connection, commands, raise_on_error
    ) -> list[Any]:
        replies = await super()._execute_pipeline(connection, commands, raise_on_error)
        await self._wait(connection)
        return replies  # type: ignore[no-any-return]

    async def _wait(self, connection: Connection) -> None:
        if self.wanted:
            try:
                await connection.send_command("WAIT", self.wanted, WAIT_TIMEOUT_MS)
                acked = int(await connection.read_response())
            except (RedisConnectionError, RedisTimeoutError):
                # The replies are read: the writes are done. Raising would have redis-py's retry
                # run them again; unconfirmed is what is known.
                await connection.disconnect()
                acked = 0
            self.shortfall = NotReplicated(acked, self.wanted) if acked < self.wanted else None


def check_replicated(acked: Any, wanted: int) -> None:
    if wanted and int(acked) < wanted:
        raise NotReplicated(int(acked), wanted)


async def ping(client: "Redis") -> bool:
    try:
        return bool(await client.ping())
    except Exception:
        return False
