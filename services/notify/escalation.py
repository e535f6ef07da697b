"""Running escalation policies (shared/escalation.py has the rules), inside every notify replica.

- **Start and stop** from incident events, read through a consumer group of their own
  (`escalate`) beside notify's: an incident that starts to fire starts each policy that applies
  (one EscalationState per policy and incident, created once — a redelivered event finds it);
  an acknowledgement or a resolution stops them and takes their next steps off the schedule.
- **Steps** wait in a due set (shared/due.py, `Keys.escalation_due`). A replica claims a due
  step with a lease, checks that the incident still fires, pages the step's targets, and then
  records the pages and schedules the next step in one compare-and-apply guarded by the state
  it read. So a step is paged by one replica however many run; a replica killed between steps
  changes nothing (the next step waits in Redis for whichever replica is alive); one killed in
  the middle of a page leaves the claim to expire, and the step is paged again by another —
  a page is never lost, and doubled only in that window.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from services.notify.firing import NoticeKind
from services.notify.render import Notification, incident_url
from services.notify.running import Running
from services.notify.send import Sender
from shared import keys
from shared.atomic import CompareAndApply, Guarded
from shared.codec import DecodeError, decode
from shared.consumer import Batch, StreamConsumer
from shared.due import DueItem, DueKind, DueSet, score
from shared.escalation import (
    EscalationState,
    PageRecord,
    Policy,
    PolicyStore,
    ack_link,
    due_at,
    log_entry,
    page_text,
    parse_target,
    step_of,
    why_not,
)
from shared.links import link_secret
from shared.models import EventKind, Incident, IncidentEvent, IncidentStatus, Subscription, utcnow
from shared.people import PeopleStore, Person
from shared.routing import decide, routes
from shared.schedules import ScheduleStore, on_call
from shared.settings import Settings
from shared.silences import Silence, SilenceStore, silencing
from shared.subscriptions import SubscriptionStore

log = logging.getLogger("redalert.escalation")

STATE_TTL_S = 30 * 86_400
HELD_RECHECK_S = 30  # a step held by a silence is looked at again at least this often
DUE_BATCH = 100
# Steps paging at once; more due steps wait in Redis (their due time passed, none is lost).
MAX_RUNNING_STEPS = 1_000
STARTS = (EventKind.OPENED, EventKind.REOPENED, EventKind.ESCALATED, EventKind.DE_ESCALATED)
STOPS = (EventKind.ACKNOWLEDGED, EventKind.RESOLVED)


class EscalationService:
    name = "escalation"

    def __init__(self, redis: Redis, settings: Settings, sender: Sender | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.k = keys.Keys(settings.namespace)
        self.policies = PolicyStore(redis, self.k)
        self.people = PeopleStore(redis, self.k)
        self.schedules = ScheduleStore(redis, self.k)
        self.subscriptions = SubscriptionStore(redis, self.k)
        self.silences = SilenceStore(redis, self.k)
        self.sender = sender or Sender(settings)
        self.cas = CompareAndApply(redis)
        self.due = DueSet(redis, self.k, self.k.escalation_due)
        self.consumers = [
            StreamConsumer(
                redis, settings, keys.INCIDENT_EVENTS, self.on_events, group=keys.ESCALATE_GROUP
            )
        ]
        # Longer than a page can take (every URL's attempts), so no second replica pages it.
        self.lease_s = settings.send_timeout_s * settings.send_attempts * 2 + 10
        self._secret: bytes | None = None
        self.steps = Running()

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        return [self.run_due]

    # --- start and stop ----------------------------------------------------------------------

    async def on_events(self, batch: Batch) -> None:
        events = []
        for entry in batch.entries:
            try:
                events.append(decode(entry.fields, IncidentEvent))
            except DecodeError as e:
                batch.deadletter(entry, f"undecodable incident event: {e}")
        policies = await self.policies.all()
        subs = await self.subscriptions.all() if policies else []
        for event in events:
            if event.kind in STOPS:
                await self.stop_all(event, policies)
            elif event.kind in STARTS and policies:
                for policy in self.applying(subs, policies, event.incident):
                    await self.start(policy, event.incident, event.at)
        # Effects are idempotent (created once, stopped once): ack after they are written.
        dead = {d.id for d, _ in batch.dead}
        ok = [e for e in batch.entries if e.id not in dead]
        if ok:
            await self.redis.execute_command(*batch.xack(ok))

    @staticmethod
    def applying(
        subs: list[Subscription], policies: list[Policy], incident: Incident
    ) -> list[Policy]:
        """Policies the routes take (priority, continue: false) that apply to it now."""
        taken = {
            d.route.id
            for d in decide(routes(subs, policies), incident)
            if d.taken and d.route.kind == "policy"
        }
        return [p for p in policies if p.name in taken and why_not(p, incident) is None]

    async def start(self, policy: Policy, incident: Incident, at: datetime) -> None:
        key = self.k.escalation(incident.id, policy.name)
        raw = await self.redis.get(key)
        if raw is not None and EscalationState.model_validate_json(raw).status == "running":
            return  # already running (or a redelivered event)
        state = EscalationState(policy=policy.name, incident_id=incident.id, started_at=at)
        first = due_at(policy, state)
        assert first is not None
        write = Guarded()
        write.expect(key, raw.decode() if raw else None)
        write.do("SET", key, state.model_dump_json(), "EX", STATE_TTL_S)
        write.do("ZADD", self.k.escalation_due, score(first), _member(policy.name, incident.id))
        self._log(write, state, incident, at, "escalation_started", f"policy {policy.name} started")
        if await self.cas(write):
            log.info("incident %s: escalation policy %s started", incident.id, policy.name)

    async def stop_all(self, event: IncidentEvent, policies: list[Policy]) -> None:
        incident = event.incident
        who = event.command.actor if event.command else None
        why = f"{event.kind.value} by {who}" if who else event.kind.value
        for policy in policies:
            await self.stop(policy.name, incident.id, why, event.at, incident)

    async def stop(
        self, policy: str, incident_id: str, why: str, at: datetime, incident: Incident | None
    ) -> None:
        key = self.k.escalation(incident_id, policy)
        for _ in range(5):
            raw = await self.redis.get(key)
            if raw is None:
                return
            state = EscalationState.model_validate_json(raw)
            if state.status != "running":
                return
            stopped = state.model_copy(update={"status": "stopped", "reason": why})
            write = Guarded()
            write.expect(key, raw.decode())
            write.do("SET", key, stopped.model_dump_json(), "EX", STATE_TTL_S)
            write.do("ZREM", self.k.escalation_due, _member(policy, incident_id))
            reason = f"policy {policy} stopped: {why}"
            self._log(write, stopped, incident, at, "escalation_stopped", reason)
            if await self.cas(write):
                return

    # --- steps -------------------------------------------------------------------------------

    async def run_due(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                taken = 0
                try:
                    taken = await self.tick()
                except Exception:
                    log.exception("escalation steps failed; they are retried after their lease")
                if taken < DUE_BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.settings.schedule_poll_s)
        finally:
            await self.steps.drain(within_s=self.settings.send_timeout_s)
            await self.sender.aclose()

    async def tick(self) -> int:
        """Claim due steps and start paging them. Each step runs on its own task: a target that
        hangs holds its own step (under the claim's lease), never the next tick's."""
        if len(self.steps) >= MAX_RUNNING_STEPS:
            return 0
        items, _lease = await self.due.claim(utcnow(), self.lease_s, DUE_BATCH)
        if items:
            policies = {p.name: p for p in await self.policies.all()}
            silences = await self.silences.all()
            for item in items:
                self.steps.start(self._run_step(item, policies.get(item.subscription_id), silences))
        return len(items)

    async def _run_step(
        self, item: DueItem, policy: Policy | None, silences: list[Silence]
    ) -> None:
        try:
            await self._step(item, policy, silences)
        except Exception:
            log.exception("escalation step %s failed; it is retried after its lease", item.member)

    async def _step(self, item: DueItem, policy: Policy | None, silences: list[Silence]) -> None:
        incident_id = item.ref
        key = self.k.escalation(incident_id, item.subscription_id)
        raw, snapshot = await self.redis.mget(key, self.k.incident(incident_id))
        state = EscalationState.model_validate_json(raw) if raw else None
        incident = Incident.model_validate_json(snapshot) if snapshot else None
        now = utcnow()
        if state is None or state.status != "running":
            await self.redis.zrem(self.k.escalation_due, item.member)
            return
        if policy is None or incident is None or incident.status is not IncidentStatus.OPEN:
            why = (
                "the policy was deleted"
                if policy is None
                else f"the incident is {incident.status.value if incident else 'gone'}"
            )
            await self.stop(state.policy, incident_id, why, now, incident)
            return
        held = silencing(silences, incident, _as_route(policy), now)
        if held is not None:
            await self._hold(item, raw, state, incident, held, now)
            return
        cycle, index = step_of(policy, state.next)
        records = await self._page(policy, incident, cycle, index)
        after = state.model_copy(
            update={"next": state.next + 1, "pages": [*state.pages, *records], "held_by": None}
        )
        nxt = due_at(policy, after)
        if nxt is None:
            after = after.model_copy(update={"status": "done", "reason": "every step was paged"})
        write = Guarded()
        write.expect(key, raw.decode() if raw else None)
        write.do("SET", key, after.model_dump_json(), "EX", STATE_TTL_S)
        if nxt is not None:
            write.do("ZADD", self.k.escalation_due, score(nxt), item.member)
        else:
            write.do("ZREM", self.k.escalation_due, item.member)
        step_no = f"step {index + 1}" + (f" (repeat {cycle})" if cycle else "")
        pages = Guarded()  # the timeline's lines: written with the state, or alone (below)
        for r in records:
            what = r.person or r.target
            reason = (
                f"{policy.name} {step_no}: paged {what}"
                if r.outcome == "sent"
                else (
                    f"{policy.name} {step_no}: {r.target}: {r.outcome}"
                    + (f" ({r.error})" if r.error else "")
                )
            )
            self._log(
                pages, after, incident, now, "page", reason,
                step=index + 1, cycle=cycle, target=r.target, person=r.person, outcome=r.outcome,
            )  # fmt: skip
        write.commands += pages.commands
        if not await self.cas(write):
            # Stopped meanwhile (an ack raced the page): the stop stands, and the timeline still
            # says who was paged.
            log.info("incident %s: %s changed while paging %s", incident_id, key, step_no)
            await self.cas(pages)

    async def _hold(
        self,
        item: DueItem,
        raw: bytes,
        state: EscalationState,
        incident: Incident,
        silence: Silence,
        now: datetime,
    ) -> None:
        """A silence matches: the step waits (looked at again at least every HELD_RECHECK_S, so
        a silence expired early releases it soon); the timeline says so once per silence."""
        again = min(silence.ends_at, now + timedelta(seconds=HELD_RECHECK_S))
        key = self.k.escalation(incident.id, state.policy)
        # The wait moves the whole run: after the silence, the steps keep their spacing.
        held = state.model_copy(
            update={"held_by": silence.id, "started_at": state.started_at + (again - now)}
        )
        write = Guarded()
        write.expect(key, raw.decode())
        write.do("SET", key, held.model_dump_json(), "EX", STATE_TTL_S)
        write.do("ZADD", self.k.escalation_due, score(again), item.member)
        if state.held_by != silence.id:
            until = silence.ends_at.isoformat(timespec="seconds")
            why = f"policy {state.policy} held by silence {silence.id} until {until}"
            self._log(write, held, incident, now, "escalation_held", why)
        await self.cas(write)

    async def _page(
        self, policy: Policy, incident: Incident, cycle: int, index: int
    ) -> list[PageRecord]:
        if self._secret is None:
            self._secret = await link_secret(self.redis, self.settings)
        sends: list[Awaitable[PageRecord]] = []
        for target in policy.steps[index].notify:
            found = await self._recipient(target)
            if isinstance(found, str):  # nobody to page, and why
                record = PageRecord(step=index + 1, cycle=cycle, target=target, outcome=found)
                sends.append(_done(record))
            else:
                who, sub = found
                sends.append(self._send(policy, incident, cycle, index, target, who, sub))
        return list(await asyncio.gather(*sends))

    async def _recipient(self, target: str) -> tuple[str, Subscription] | str:
        """Who a target pages now, and where; or why nobody."""
        kind, name = parse_target(target)
        if kind == "subscription":
            subs = await self.subscriptions.all()
            sub = next((s for s in subs if name in (s.id, s.name) and s.webhook is None), None)
            return (sub.name, sub) if sub else "unknown target"
        if kind == "schedule":
            schedule = await self.schedules.get(name)
            if schedule is None:
                return "unknown target"
            on = on_call(schedule, utcnow())
            if on is None:
                return "nobody on call"
            name = on.person
        person = await self.people.get(name)
        return (person.name, _as_subscription(person)) if person else "unknown target"

    async def _send(
        self,
        policy: Policy,
        incident: Incident,
        cycle: int,
        index: int,
        target: str,
        who: str,
        sub: Subscription,
    ) -> PageRecord:
        assert self._secret is not None
        s = self.settings
        ack = ack_link(s.public_url, s.link_ttl_s, self._secret, incident.id, who, incident.version)
        page = incident_url(s.public_url, incident.id)
        title, body = page_text(incident, policy, cycle, index, who, ack, page)
        n = Notification(
            event_id=f"{incident.id}:page:{policy.name}:{cycle}:{index}",
            incident_id=incident.id,
            subscription_id=sub.id,
            kind=NoticeKind.FIRING,
            title=title,
            body=body,
            notify_type="failure" if incident.severity.value == "red_alert" else "warning",
        )
        results = await self.sender.deliver(sub, n)
        failed = [r for r in results if not r.ok]
        person = who if not target.startswith("subscription:") else None
        record = PageRecord(step=index + 1, cycle=cycle, target=target, person=person)
        if failed and len(failed) == len(results):
            record.outcome, record.error = "failed", "; ".join(str(r.error) for r in failed)[:500]
        return record

    def _log(
        self,
        write: Guarded,
        state: EscalationState,
        incident: Incident | None,
        at: datetime,
        kind: str,
        reason: str,
        **extra: Any,
    ) -> None:
        entry = log_entry(kind, state, at, reason, **extra)
        # As transitions show it: the incident's state at that moment ("" when it is gone).
        entry["severity"] = incident.severity.value if incident else ""
        entry["status"] = incident.status.value if incident else ""
        key = self.k.escalation_log(state.incident_id)
        write.do("RPUSH", key, json.dumps(entry))
        write.do("EXPIRE", key, STATE_TTL_S)


def _as_route(policy: Policy) -> Subscription:
    """A policy as silences see a subscription: `subscription` matchers name the policy."""
    return Subscription(id=f"policy:{policy.name}", name=policy.name)


def _member(policy: str, incident_id: str) -> str:
    return DueItem(DueKind.ESCALATE, policy, incident_id).member


def _as_subscription(person: Person) -> Subscription:
    """A person's contacts, as the Sender sends to them (never stored)."""
    return Subscription(
        id=f"person:{person.name}", name=f"page {person.name}", urls=person.contacts
    )


async def _done(record: PageRecord) -> PageRecord:
    return record
