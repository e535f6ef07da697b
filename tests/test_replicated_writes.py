"""REDALERT_MIN_REPLICAS_ACK for notify's send records and classify's guarded writes: a real
primary and replica (the Redis binaries of this machine, as tests/test_failover.py starts them).
A flush of GroupCommit is followed by WAIT on its connection: when it returns, the replica has
the records; without a replica it says so instead of claiming they are safe. A connection lost
during WAIT never has the writes run twice."""

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.notify.records import GroupCommit
from shared.atomic import CompareAndApply, Guarded
from shared.embedded import free_port
from tests.conftest import eventually
from tests.test_failover import BINARY, Node, data_node

pytestmark = pytest.mark.skipif(BINARY is None, reason="no redis-server or valkey-server")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    primary_port, replica_port = free_port(), free_port()
    primary = data_node(tmp_path / "primary", primary_port).start()
    replica = data_node(
        tmp_path / "replica", replica_port, "--replicaof", "127.0.0.1", str(primary_port)
    ).start()
    try:
        _settle(primary.client(), replicas=1)
        yield primary, replica
    finally:
        replica.kill()
        primary.kill()


def _settle(client: redis_sync.Redis, replicas: int) -> None:
    for _ in range(300):
        info = client.info("replication")
        online = [v for k, v in info.items() if k.startswith("slave") and v["state"] == "online"]
        if info.get("connected_slaves") == len(online) == replicas:  # synced, not syncing
            return
        time.sleep(0.1)
    raise RuntimeError(f"the primary never had {replicas} replica(s)")


def _waits(client: redis_sync.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


async def _record(pipe: Pipeline) -> None:
    pipe.xadd("deliveries", {"data": "sent"})
    pipe.sadd("sent", 0)


async def test_send_records_are_on_the_replica_when_the_commit_returns(
    pair: tuple[Node, Node], caplog: pytest.LogCaptureFixture
):
    primary, replica = pair
    client = Redis(port=primary.port)
    client.redalert_min_replicas_ack = 1  # type: ignore[attr-defined]  # as redis_client sets it
    try:
        commit = GroupCommit(client)
        with caplog.at_level(logging.WARNING, logger="redalert.notify"):
            entry_id, added = await commit.write(_record)
        assert _waits(primary.client()) == 1
        assert replica.client().xrange("deliveries") == [(entry_id, {b"data": b"sent"})]
        assert added == 1
        assert "replica" not in caplog.text

        replica.kill()
        _settle(primary.client(), replicas=0)
        with caplog.at_level(logging.WARNING, logger="redalert.notify"):
            await commit.write(_record)  # written on the primary, but on no replica: said so
        assert _waits(primary.client()) == 2
        assert "only 0 of 1 replica(s) confirmed" in caplog.text
    finally:
        await client.aclose()


async def test_without_the_setting_no_wait_is_sent(pair: tuple[Node, Node]):
    primary, _ = pair
    client = Redis(port=primary.port)
    try:
        await GroupCommit(client).write(_record)
        assert _waits(primary.client()) == 0
    finally:
        await client.aclose()


async def test_a_connection_lost_while_waiting_does_not_write_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    # EXEC has answered, so the writes are done: losing the connection during WAIT must not
    # have redis-py's retry run the transaction again.
    primary = data_node(tmp_path / "alone", free_port()).start()  # no replica: WAIT blocks
    client = Redis(port=primary.port)
    client.redalert_min_replicas_ack = 1  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.WARNING, logger="redalert.notify"):
            write = asyncio.create_task(GroupCommit(client).write(_record))
            await eventually(lambda: primary.client().info("clients")["blocked_clients"] > 0)
            primary.client().client_kill_filter(_type="normal")  # every client but this one
            entry_id, _ = await write
        assert primary.client().xrange("deliveries") == [(entry_id, {b"data": b"sent"})]
        assert "only 0 of 1 replica(s) confirmed" in caplog.text
    finally:
        await client.aclose()
        primary.kill()


async def test_a_guarded_write_whose_wait_is_cut_short_is_applied_once_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    # Run again, its guard would fail: classify would take its own write for a lost lease.
    primary = data_node(tmp_path / "alone", free_port()).start()
    client = Redis(port=primary.port)
    client.redalert_min_replicas_ack = 1  # type: ignore[attr-defined]
    write = Guarded()
    write.expect("version", None)
    write.do("SET", "version", "1")
    write.do("XADD", "events", "*", "data", "opened")
    try:
        with caplog.at_level(logging.WARNING, logger="redalert.atomic"):
            applied = asyncio.create_task(CompareAndApply(client)(write))
            await eventually(lambda: primary.client().info("clients")["blocked_clients"] > 0)
            primary.client().client_kill_filter(_type="normal")
            assert await applied is True
        assert primary.client().xlen("events") == 1
        assert "only 0 of 1 replica(s) confirmed" in caplog.text
    finally:
        await client.aclose()
        primary.kill()
