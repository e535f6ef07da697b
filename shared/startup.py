"""Start-up work every service does first, whichever of them starts first."""

import gc
import logging

from redis.asyncio import Redis

from shared import keys
from shared.consumer import ensure_group
from shared.settings import Settings
from shared.subscriptions import SubscriptionStore, load_subscriptions_file

log = logging.getLogger("redalert")

# Young objects collected every 50,000 allocations instead of 700: a service makes and drops
# thousands of small objects per batch (tasks, models, replies), and each young collection
# also walked everything that survived one. Fan-out went 10-20 % faster (bench/fanout.py).
GC_THRESHOLDS = (50_000, 20, 100)


def settle_gc() -> None:
    """Once start-up is done. What it loaded (modules, the app, rules, models) lives as long as
    the process: out of the collector's sight, a full collection scans only what work makes (it
    was a tenth of a small request's time); and young collections run less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def prepare(redis: Redis, settings: Settings) -> None:
    """Start-up work shared by every service: groups exist, the subscriptions file is applied."""
    k = keys.Keys(settings.namespace)
    for stream, group in keys.GROUPS.items():
        # From id 0, by whichever service starts first: posts published before classify first
        # starts are work too (FastStream alone would create the group at "$" and skip them).
        await ensure_group(redis, k.stream(stream), group)
    await ensure_group(redis, k.stream(keys.INCIDENT_EVENTS), keys.ESCALATE_GROUP)
    if settings.subscriptions_file is not None:
        declared = load_subscriptions_file(settings.subscriptions_file)
        report = await SubscriptionStore(redis, k).apply(declared)
        log.info("subscriptions file %s applied: %s", settings.subscriptions_file, report)
