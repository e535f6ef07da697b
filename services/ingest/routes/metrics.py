"""GET /metrics: delivery counters and circuit breakers, in the Prometheus text format."""

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from services.ingest.context import Context, ctx
from services.notify.circuit import CircuitStore
from shared import auth, keys

router = APIRouter(tags=["health"])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get(
    "/metrics", response_class=PlainTextResponse, dependencies=[Depends(auth.metrics_access)]
)
async def metrics(c: Context = Depends(ctx)) -> str:
    now = datetime.now(UTC)
    async with c.redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(c.keys.notify_metrics)
        pipe.xlen(c.keys.stream(keys.DEADLETTER))
        pipe.zcard(c.keys.due)
        counters, dead, due = await pipe.execute()
    circuits = await CircuitStore(c.redis, c.keys).all()
    lines = [
        "# HELP redalert_notify_total Notification decisions and delivery outcomes, by outcome.",
        "# TYPE redalert_notify_total counter",
    ]
    for name, value in sorted((k.decode(), int(v)) for k, v in counters.items()):
        lines.append(f'redalert_notify_total{{outcome="{_label(name)}"}} {value}')
    lines += [
        "# HELP redalert_circuit_open 1 while a URL's circuit is open (its deliveries skipped).",
        "# TYPE redalert_circuit_open gauge",
    ]
    for circuit in sorted(circuits, key=lambda x: (x.subscription_id, x.index)):
        state = circuit.state(now)
        if state == "closed":
            continue
        labels = (
            f'subscription="{_label(circuit.subscription_id)}",index="{circuit.index}",'
            f'url="{_label(circuit.url)}",state="{state}"'
        )
        lines.append(f"redalert_circuit_open{{{labels}}} {1 if state == 'open' else 0}")
    lines += [
        "# HELP redalert_deadletter_entries Entries in the deadletter stream.",
        "# TYPE redalert_deadletter_entries gauge",
        f"redalert_deadletter_entries {dead}",
        "# HELP redalert_due_items Rechecks, reminders, digests and unfinished sends scheduled.",
        "# TYPE redalert_due_items gauge",
        f"redalert_due_items {due}",
    ]
    return "\n".join(lines) + "\n"
