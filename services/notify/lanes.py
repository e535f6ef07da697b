"""A lane per target URL: its own bounded queue, its own concurrency, its own circuit.

A slow, hanging or failing target fills only its own lane: at most `lane_concurrency` of its
sends are in flight, each attempt limited to `send_timeout_s`; at most `lane_queue` messages
wait for it in memory (beyond that its messages wait in Redis); and its circuit
breaker (services/notify/circuit.py) stops trying it after `circuit_failures` failed deliveries
in a row. Other targets' lanes never wait on it.

A delivery holds one of its lane's slots through its retries, and each delivery's outcome is
counted by the circuit as it ends.
"""

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.notify.circuit import CircuitStore
from services.notify.render import Notification
from services.notify.send import Attempt, Sender, UrlResult, target_urls
from shared import metrics
from shared.models import Subscription, utcnow
from shared.settings import Settings

log = logging.getLogger("redalert.notify")

MAX_LANES = 20_000  # idle lanes beyond this are forgotten (a lane is a few hundred bytes)


@dataclass
class Lane:
    slots: asyncio.Semaphore
    limit: int
    waiting: int = 0  # deliveries admitted and not finished (in flight or queued for a slot)
    suspect: bool = False  # a failure was counted: the next success must reset the count
    sent: int = 0
    failed: int = 0

    @property
    def full(self) -> bool:
        return self.waiting >= self.limit


class Lanes:
    def __init__(self, settings: Settings, sender: Sender, circuits: CircuitStore) -> None:
        self.settings = settings
        self.sender = sender
        self.circuits = circuits
        self._lanes: OrderedDict[str, Lane] = OrderedDict()
        metrics.watch_lanes(self)  # redalert_notify_lane_deliveries / _deepest

    def lane(self, url: str) -> Lane:
        found = self._lanes.get(url)
        if found is None:
            found = self._lanes[url] = Lane(
                asyncio.Semaphore(self.settings.lane_concurrency), self.settings.lane_queue
            )
            if len(self._lanes) > MAX_LANES:
                self._forget_idle()
        else:
            self._lanes.move_to_end(url)
        return found

    def has_room(self, sub: Subscription) -> bool:
        return not any(self.lane(u).full for u in target_urls(sub))

    def waiting(self) -> list[int]:
        """Deliveries waiting or in flight in each busy lane (for metrics)."""
        return [lane.waiting for lane in self._lanes.values() if lane.waiting]

    async def deliver(
        self,
        sub: Subscription,
        index: int,
        n: Notification,
        then: Callable[[UrlResult], Awaitable[None]] | None = None,
    ) -> UrlResult:
        """One message to one target through its lane: admitted by its circuit, retried, counted.

        `then` records the outcome while the slot is still held: a send stays "in flight"
        until it is recorded, so a crash can repeat at most `lane_concurrency` sends per target.
        The queue bound is checked by the caller (`has_room`) before it takes a message on.
        """
        url = target_urls(sub)[index]
        lane = self.lane(url)
        result = UrlResult(index, self.sender.shown(sub, index))
        lane.waiting += 1
        try:
            # A delivery holds its slot through its retries and until its outcome is counted:
            # at most `lane_concurrency` of this target's deliveries are under way, so at most
            # that many more fail once its circuit opens. The circuit is looked at once the
            # slot is ours.
            async with lane.slots:
                skipped = await self._admit(lane, sub, index)
                if skipped is not None:
                    result.skipped = skipped
                    if then is not None:
                        await then(result)
                    return result
                result.attempts = await self._tries(sub, index, n)
                await self._count(lane, sub, result)
                if then is not None:
                    await then(result)
        finally:
            lane.waiting -= 1
        return result

    async def _count(self, lane: Lane, sub: Subscription, result: UrlResult) -> None:
        if result.ok:
            lane.sent += 1
        else:
            lane.failed += 1
        if result.ok and not lane.suspect:
            return  # closed, and nothing counted against it: nothing to reset
        await self.circuits.record(
            sub.id,
            result.index,
            ok=result.ok,
            url=result.url,
            error=result.error,
            threshold=self.settings.circuit_failures,
            open_s=self.settings.circuit_open_s,
        )
        lane.suspect = not result.ok

    async def _admit(self, lane: Lane, sub: Subscription, index: int) -> str | None:
        """None: go ahead; else why this delivery is skipped (its circuit is open)."""
        circuit = await self.circuits.known(sub.id, index)
        if circuit is None:
            return None
        lane.suspect = True  # failures were counted: a success must reset them
        state = circuit.state(utcnow())
        if state == "open":
            return circuit.why_skipped()
        if state == "half_open":
            admitted, now_known = await self.circuits.admit(sub.id, index, probe_s=self._probe_s())
            if not admitted:  # another delivery is the probe
                assert now_known is not None
                return now_known.why_skipped()
        return None

    async def _tries(self, sub: Subscription, index: int, n: Notification) -> list[Attempt]:
        attempts: list[Attempt] = []
        tries = self.settings.send_attempts
        for number in range(1, tries + 1):
            started = time.perf_counter()
            error = await self.sender.attempt(sub, index, n)
            ms = round((time.perf_counter() - started) * 1000, 2)
            attempts.append(Attempt(number, error is None, ms, error))
            if error is None:
                break
            if number < tries:
                delay = self.settings.send_backoff_s * 2 ** (number - 1)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # jitter: no thundering herd
        return attempts

    def _probe_s(self) -> float:
        # A half-open probe holds its circuit this long at most: every attempt and backoff.
        s = self.settings
        return s.send_timeout_s * s.send_attempts + s.send_backoff_s * 2**s.send_attempts + 1

    def _forget_idle(self) -> None:
        for url in [u for u, lane in self._lanes.items() if lane.waiting == 0]:
            del self._lanes[url]
            if len(self._lanes) <= MAX_LANES // 2:
                return
