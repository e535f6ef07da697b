"""/metrics: this process's own metrics (shared/metrics.py) and the deployment's state, read from
Redis at each scrape; and the small server classify and notify expose it on
(`REDALERT_METRICS_PORT`).

Every replica reports the same deployment state (it comes from Redis): aggregate those gauges
with `max`, not `sum`. A scraper that asks for OpenMetrics (`Accept: application/openmetrics-text`,
Prometheus does) gets it, with the latency histograms' exemplars; others get the Prometheus text.
"""

import asyncio
import hmac
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.ingest.sources.store import SourceStore
from services.notify.circuit import CircuitStore
from shared import keys
from shared.metrics import REGISTRY
from shared.models import Incident
from shared.severity import Severity

CONTENT_TYPE = CONTENT_TYPE_LATEST
OPENMETRICS_TYPE = openmetrics.CONTENT_TYPE_LATEST


def format_for(accept: str | None) -> str:
    """The content type to answer a scrape's `Accept` with."""
    return OPENMETRICS_TYPE if accept and "application/openmetrics-text" in accept else CONTENT_TYPE


async def _stream_state(
    redis: Redis, k: keys.Keys, now_ms: int
) -> list[tuple[str, str, dict[str, float]]]:
    out = []
    for stream, group in keys.GROUPS.items():
        name = k.stream(stream)
        try:
            info = next(
                (g for g in await redis.xinfo_groups(name) if _text(g["name"]) == group), None
            )
        except ResponseError:
            info = None
        if info is None:
            continue
        oldest_s = 0.0
        if info["pending"]:
            first = await redis.xpending_range(name, group, min="-", max="+", count=1)
            if first:
                oldest_s = max(0.0, (now_ms - _entry_ms(first[0]["message_id"])) / 1000)
        out.append(
            (
                stream,
                group,
                {
                    "lag": info.get("lag") or 0,
                    "pending": info["pending"],
                    "oldest": oldest_s,
                    "consumers": info["consumers"],
                },
            )
        )
    return out


async def snapshot(redis: Redis, namespace: str) -> list[Metric]:
    """The deployment's state as metric families (a fresh set per scrape)."""
    k = keys.Keys(namespace)
    now = datetime.now(UTC)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(k.notify_metrics)
        pipe.xlen(k.stream(keys.DEADLETTER))
        pipe.zcard(k.due)
        counters, dead, due = await pipe.execute()
    streams = await _stream_state(redis, k, int(time.time() * 1000))
    circuits = await CircuitStore(redis, k).all()
    incidents = await _open_by_severity(redis, k)
    failing = await _sources_failing(redis, k)

    notify_total = CounterMetricFamily(
        "redalert_notify",
        "Notification decisions and delivery outcomes counted by every notify, by outcome.",
        labels=["outcome"],
    )
    for name, value in sorted((_text(a), int(b)) for a, b in counters.items()):
        notify_total.add_metric([name], value)
    lag = GaugeMetricFamily(
        "redalert_stream_lag",
        "Entries in a work stream not yet read by its consumer group.",
        labels=["stream", "group"],
    )
    pending = GaugeMetricFamily(
        "redalert_stream_pending",
        "Entries read by a consumer group and not yet acknowledged.",
        labels=["stream", "group"],
    )
    oldest = GaugeMetricFamily(
        "redalert_stream_oldest_pending_seconds",
        "Age of the oldest entry a consumer group has not acknowledged (0: none).",
        labels=["stream", "group"],
    )
    consumers = GaugeMetricFamily(
        "redalert_stream_consumers",
        "Consumers registered in a consumer group.",
        labels=["stream", "group"],
    )
    for stream, group, s in streams:
        lag.add_metric([stream, group], s["lag"])
        pending.add_metric([stream, group], s["pending"])
        oldest.add_metric([stream, group], s["oldest"])
        consumers.add_metric([stream, group], s["consumers"])
    circuit_open = GaugeMetricFamily(
        "redalert_circuit_open",
        "1 while a URL's circuit is open (its deliveries skipped); half-open shows 0.",
        labels=["subscription", "index", "url", "state"],
    )
    n_open = 0
    for circuit in sorted(circuits, key=lambda x: (x.subscription_id, x.index)):
        state = circuit.state(now)
        if state == "closed":
            continue
        n_open += state == "open"
        circuit_open.add_metric(
            [circuit.subscription_id, str(circuit.index), circuit.url, state],
            1 if state == "open" else 0,
        )
    circuits_open = GaugeMetricFamily(
        "redalert_circuits_open", "URLs whose circuit is open.", value=n_open
    )
    open_incidents = GaugeMetricFamily(
        "redalert_open_incidents",
        "Open (and acknowledged) incidents, by current severity.",
        labels=["severity"],
    )
    for severity, n in sorted(incidents.items()):
        open_incidents.add_metric([severity], n)
    return [
        notify_total,
        lag,
        pending,
        oldest,
        consumers,
        GaugeMetricFamily(
            "redalert_deadletter_entries", "Entries in the deadletter stream.", value=dead
        ),
        GaugeMetricFamily(
            "redalert_due_items",
            "Rechecks, reminders, digests and unfinished sends scheduled.",
            value=due,
        ),
        circuit_open,
        circuits_open,
        open_incidents,
        GaugeMetricFamily(
            "redalert_sources_failing",
            "Polled sources whose last poll failed.",
            value=failing,
        ),
    ]


async def _open_by_severity(redis: Redis, k: keys.Keys) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    ids = await redis.zrange(k.open_incidents, 0, 9_999)
    for i in range(0, len(ids), 500):
        docs = await redis.mget([k.incident(_text(x)) for x in ids[i : i + 500]])
        for doc in docs:
            if doc is not None:
                incident = Incident.model_validate_json(doc)
                if incident.is_open:
                    counts[incident.severity.value] += 1
    return counts


async def _sources_failing(redis: Redis, k: keys.Keys) -> int:
    store = SourceStore(redis, k)
    names = [s.name for s in await store.all()]
    return sum([await store.failures(name) > 0 for name in names])


class _Scrape:
    """This process's metrics and the deployment's state, as one collector for one scrape."""

    def __init__(self, state: list[Metric]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.state


async def exposition(
    redis: Redis | None, namespace: str, content_type: str = CONTENT_TYPE
) -> bytes:
    """A scrape's body: the Prometheus text, or OpenMetrics (with exemplars)."""
    state = await snapshot(redis, namespace) if redis is not None else []
    generate = openmetrics.generate_latest if content_type == OPENMETRICS_TYPE else generate_latest
    return generate(_Scrape(state))  # type: ignore[arg-type]


def _header(request: bytes, wanted: bytes) -> bytes | None:
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


def _bearer_is(request: bytes, token: str) -> bool:
    value = _header(request, b"authorization")
    if value is None:
        return False
    scheme, _, given = value.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_ms(entry_id: bytes | str) -> int:
    return int(_text(entry_id).split("-", 1)[0])


async def serve(
    sock: socket.socket,
    redis: Redis,
    namespace: str,
    stop: asyncio.Event,
    token: str | None = None,
) -> None:
    """A small HTTP server answering GET /metrics (classify and notify: REDALERT_METRICS_PORT)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
            if token is not None and not _bearer_is(request, token):
                body, status, ctype = (
                    b"Authorization: Bearer <REDALERT_METRICS_TOKEN>\n",
                    "401 Unauthorized",
                    "text/plain",
                )
            elif request.startswith(b"GET ") and path.split(b"?")[0] == b"/metrics":
                ctype = format_for(_text(_header(request, b"accept") or b""))
                body, status = await exposition(redis, namespace, ctype), "200 OK"
            else:
                body, status, ctype = b"GET /metrics\n", "404 Not Found", "text/plain"
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async with await asyncio.start_server(handle, sock=sock):
        await stop.wait()
