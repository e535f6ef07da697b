"""Delivery end to end: real services, real apprise, real local servers (HTTP, SMTP, gotify)."""

import asyncio
import hashlib
import hmac
import json
import re
from datetime import timedelta

import apprise

from services.notify.chains import Owed, is_done
from services.notify.render import Notification
from services.notify.send import Sender
from shared import keys
from shared.due import DueItem, DueKind, score
from shared.models import Subscription, utcnow
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually
from tests.delivery_helpers import (
    cli,
    deadletters,
    deliveries,
    live,
    post_thread,
    quiet_for,
    subscribe,
)
from tests.sinks import SmtpSink

LEAK = "Gas leak reported at plant 3"


async def test_a_sink_failing_twice_gets_the_message_once_after_three_attempts(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(send_attempts=3)
    sink = make_sink(fail_first=2)
    async with live(run_services, settings) as api:
        sub = await subscribe(api, urls=[sink.url], min_severity="red_alert")
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) == 1)
        await quiet_for(0.5)
        incident = (await api.get("/v1/incidents")).json()[0]
        detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()

    assert len(sink.messages()) == 1
    assert sink.attempts == 3
    records = [d for d in await deliveries(redis, settings) if d["subscription_id"] == sub["id"]]
    assert [(d["attempt"], d["outcome"]) for d in records] == [
        (1, "failed"),
        (2, "failed"),
        (3, "sent"),
    ]
    assert "500" in records[0]["error"]
    assert records[2]["url"].startswith("json://127.0.0.1:")
    assert all(d["latency_ms"] >= 0 for d in records)
    # Who was told what, and when: on the incident too.
    told = detail["deliveries"]
    assert [(d["subscription_name"], d["outcome"], d["kind"]) for d in told][-1] == (
        "ops",
        "sent",
        "firing",
    )
    assert await deadletters(redis, settings) == []


async def test_an_always_failing_sink_is_dead_lettered_and_replay_delivers_once_it_recovers(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(send_attempts=2)
    sink = make_sink(status=500)
    async with live(run_services, settings) as api:
        sub = await subscribe(api, urls=[sink.url], min_severity="red_alert")
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: _has_letters(redis, settings))
        [letter] = await deadletters(redis, settings)
        assert letter["stream"] == "deliveries"
        assert "HTTP 500" in letter["error"]
        assert letter["attempts"] == 2
        assert letter["extra"]["subscription_id"] == sub["id"]
        assert sink.messages() == []

        code, out = await cli(settings, "deadletter", "list")
        assert code == 0
        assert letter["id"] in out
        assert "HTTP 500" in out

        code, out = await cli(settings, "deadletter", "replay", letter["id"])
        assert code == 1  # the sink still fails
        assert "still failing" in out

        sink.status = 200  # the target recovers
        code, out = await cli(settings, "deadletter", "replay", letter["id"])
        assert code == 0, out
        assert "replayed →" in out
        await eventually(lambda: len(sink.messages()) == 1)
        assert sink.messages()[0]["title"].startswith("[RED ALERT] ")

        code, out = await cli(settings, "deadletter", "replay", letter["id"])
        assert code != 0
        assert "already replayed" in out
        assert len(sink.messages()) == 1

    outcomes = [d["outcome"] for d in await deliveries(redis, settings)]
    # The first send, the replay that failed (the letter stays), the replay that worked.
    assert outcomes == ["failed", "deadlettered", "failed", "failed", "sent"]


async def _has_letters(redis, settings) -> bool:
    return bool(await redis.xlen(f"{settings.namespace}:{keys.DEADLETTER}"))


async def test_a_dead_lettered_stream_entry_is_republished_by_replay(settings, redis, run_services):
    stream = f"{settings.namespace}:{keys.POSTS}"
    await redis.xadd(stream, {"source": "cli", "author": "someone"})  # no text: poison
    async with live(run_services, settings) as api:
        await eventually(lambda: _has_letters(redis, settings))
        [letter] = (await api.get("/v1/deadletter", params={"stream": "posts"})).json()
        r = await api.post(f"/v1/deadletter/{letter['id']}/replay")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert r.json()["stream"] == "posts"
    entries = await redis.xrange(stream)
    assert len(entries) == 2
    assert entries[1][1] == {b"source": b"cli", b"author": b"someone"}


async def test_mailto_delivers_a_readable_email_to_a_local_smtp_server(settings, run_services):
    smtp = SmtpSink(login="alerts", password="Smtp-Pa55word-1").start()
    try:
        async with live(run_services, settings) as api:
            await subscribe(api, urls=[smtp.mail_url], min_severity="red_alert")
            await post_thread(api, "plant-3", LEAK)
            await eventually(lambda: len(smtp.messages) == 1, timeout=20)
    finally:
        smtp.stop()
    mail = smtp.messages[0]
    assert mail["Subject"].startswith("[RED ALERT] Gas leak reported at plant 3")
    assert mail["To"] == "ops@example.org"
    body = mail.get_body(preferencelist=("plain", "html")).get_content()
    assert "Gas leak reported at plant 3" in body
    assert "http://redalert.test/v1/incidents/" in body
    assert re.search(r"/ack/link\?v=\d+&expires=\d+&sig=", body)  # signed as it went out
    assert re.search(r"/resolve/link\?v=\d+&expires=\d+&sig=", body)


async def test_a_gotify_push_target_at_127_0_0_1_is_delivered(settings, run_services, sink):
    token = "AbCdEfGh12345678"
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[f"gotify://127.0.0.1:{sink.port}/{token}"])
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) == 1)
    [request] = sink.requests
    assert request["path"] == "/message"
    assert request["headers"]["X-Gotify-Key"] == token
    assert request["json"]["title"].startswith("[RED ALERT] ")
    assert "Acknowledge: http://redalert.test/" in request["json"]["message"]


async def test_an_outbound_webhook_receives_every_event_signed_with_its_secret(
    make_settings, redis, run_services, make_sink
):
    secret = "whsec-0123456789-abcdefghij"
    hook = make_sink(fail_first=1, delay=0.1)  # the first POST fails: retried like any other
    async with live(run_services, make_settings()) as api:
        await subscribe(
            api,
            name="tool",
            webhook={"url": f"http://127.0.0.1:{hook.port}/redalert", "secret": secret},
        )
        await post_thread(
            api,
            "plant-3",
            LEAK,
            "Plant 3 crew are not in any danger",
            "I'm going to secure from red alert unless circumstances change.",
        )
        await eventually(lambda: len(hook.messages()) == 3)

    ok = [r for r in hook.requests if r["ok"]]
    assert [json.loads(r["raw"])["type"] for r in ok] == [
        "incident.opened",
        "incident.de_escalated",
        "incident.resolved",
    ]
    for r in hook.requests:
        expected = hmac.new(secret.encode(), r["raw"], hashlib.sha256).hexdigest()
        assert r["headers"]["X-Redalert-Signature"] == f"sha256={expected}"
        body = json.loads(r["raw"])
        assert body["sent_at"] == r["headers"]["X-Redalert-Timestamp"]
        assert secret not in r["raw"].decode()
    first = json.loads(ok[0]["raw"])
    assert first["incident"]["severity"] == "red_alert"
    assert first["post"]["text"] == LEAK
    assert first["event"]["kind"] == "opened"
    assert first["incident"]["links"]["ack"].startswith("http://redalert.test/v1/incidents/")
    # The failed attempt and its retry carry one delivery id, so a receiver can drop repeats.
    assert (
        hook.requests[0]["headers"]["X-Redalert-Delivery"]
        == ok[0]["headers"]["X-Redalert-Delivery"]
    )
    # A tampered body does not verify.
    forged = ok[0]["raw"].replace(b"red_alert", b"no_danger")
    assert hmac.new(secret.encode(), forged, hashlib.sha256).hexdigest() != expected


async def test_a_url_that_keeps_failing_opens_its_circuit(
    make_settings, redis, run_services, make_sink
):
    # Three alike threads, three incidents: no correlation by wording here.
    settings = make_settings(
        send_attempts=1, circuit_failures=2, circuit_open_s=600, correlation_window_s=0
    )
    sink = make_sink(status=500)
    async with live(run_services, settings) as api:
        sub = await subscribe(api, urls=[sink.url], min_severity="red_alert")
        for n in range(3):
            await post_thread(api, f"plant-{n}", f"Gas leak reported at plant {n}")
            await eventually(lambda n=n: _letters_at_least(redis, settings, n + 1))
        shown = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
        metrics = (await api.get("/metrics")).text

    assert sink.attempts == 2  # the third delivery was not tried
    letters = await deadletters(redis, settings)
    assert "circuit open until" in letters[2]["error"]
    assert "after 2 failed deliveries" in letters[2]["error"]
    [circuit] = shown["circuits"]
    assert circuit["state"] == "open"
    assert circuit["failures"] == 2
    assert "500" in circuit["last_error"]
    # (prometheus_client writes labels in name order)
    assert f'redalert_circuit_open{{index="0",state="open",subscription="{sub["id"]}"' in metrics
    assert f'subscription="{sub["id"]}",url="{circuit["url"]}"}} 1' in metrics
    assert 'redalert_notify_total{outcome="skipped_circuit_open"} 1' in metrics


async def _letters_at_least(redis, settings, n: int) -> bool:
    return await redis.xlen(f"{settings.namespace}:{keys.DEADLETTER}") >= n


async def test_a_thousand_subscriptions_on_one_event_are_all_delivered(
    make_settings, redis, run_services, sink
):
    settings = make_settings(send_timeout_s=30)
    store = SubscriptionStore(redis, keys.Keys(settings.namespace))
    for n in range(1000):
        await store.put(Subscription(name=f"sub-{n}", urls=[f"{sink.url}/{n}"]))
    async with live(run_services, settings) as api:
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(sink.messages()) >= 1000, timeout=120)
        await quiet_for(0.5)
    paths = [r["path"] for r in sink.requests if r["ok"]]
    assert len(paths) == 1000
    assert len(set(paths)) == 1000
    sent = [d for d in await deliveries(redis, settings) if d["outcome"] == "sent"]
    assert len(sent) == 1000


async def test_a_chain_abandoned_by_a_dead_replica_is_taken_over_in_order_and_sent_once(
    settings, redis, run_services, sink
):
    """A replica decided two messages about one incident, then died: another sends both, in
    order, each once, with the idempotency header; then the chain is gone from the due set."""
    k = keys.Keys(settings.namespace)
    sub = Subscription(name="ops", urls=[sink.url])
    await SubscriptionStore(redis, k).put(sub)
    titles = ["[RED ALERT] decided, never sent", "[RESOLVED] decided, never sent"]
    for version, title in enumerate(titles, start=1):
        n = Notification(
            event_id=f"inc9:{version}",
            incident_id="inc9",
            subscription_id=sub.id,
            kind="firing" if version == 1 else "resolved",
            title=title,
            body="…",
            notify_type="failure",
        )
        owed = Owed(status="pending", notification=n, decided_by="dead", decided_at=utcnow())
        await redis.set(k.notification(n.event_id, sub.id), owed.model_dump_json())
        await redis.rpush(k.outbox(sub.id, "inc9"), n.event_id)
    member = DueItem(DueKind.OWED, sub.id, "inc9").member
    await redis.zadd(k.due, {member: score(utcnow() - timedelta(seconds=1))})  # lease lapsed
    async with run_services(settings, "notify"):
        await eventually(lambda: len(sink.messages()) == 2)
        await quiet_for(0.5)
    assert [m["title"] for m in sink.messages()] == titles
    assert [r["headers"]["X-Redalert-Delivery"] for r in sink.requests] == [
        f"inc9:1/{sub.id}",
        f"inc9:2/{sub.id}",
    ]
    for version in (1, 2):
        assert is_done(await redis.get(k.notification(f"inc9:{version}", sub.id)))
    assert await redis.zscore(k.due, member) is None
    assert await redis.llen(k.outbox(sub.id, "inc9")) == 0


def test_apprise_thread_pools_are_widened_to_the_send_concurrency(make_settings):
    Sender(make_settings(send_concurrency=48))
    assert apprise.apprise._shared_executor._max_workers >= 48
    assert apprise.apprise._coordinator_executor._max_workers >= 48


async def test_sending_does_not_block_the_event_loop(make_settings, make_sink):
    """Forty slow targets (0.3 s each) at once: the loop keeps ticking while they are sent."""
    slow = make_sink(delay=0.3)
    sender = Sender(make_settings(send_concurrency=64))
    sub = Subscription(name="many", urls=[f"{slow.url}/{i}" for i in range(40)])
    n = Notification(
        event_id="e",
        incident_id="i",
        subscription_id=sub.id,
        kind="test",
        title="t",
        body="b",
        notify_type="info",
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    results = await sender.deliver(sub, n)
    ticker.cancel()
    await sender.aclose()
    assert all(r.ok for r in results)
    # Every target got the message; a second copy only where the sender itself retried (an
    # attempt that timed out on a starved machine may still have reached the target).
    reached = {r["path"].rsplit("/", 1)[-1] for r in slow.requests if r["ok"]}
    assert reached == {str(i) for i in range(40)}
    retried = sum(len(r.attempts) - 1 for r in results)
    assert len(slow.messages()) <= 40 + retried
    assert ticks >= 10  # the loop ran during the sends


async def test_due_work_is_claimed_by_one_replica_and_released_only_if_not_rescheduled(
    settings, redis
):
    from shared.due import DueSet

    k = keys.Keys(settings.namespace)
    due_a, due_b = DueSet(redis, k), DueSet(redis, k)
    now = utcnow()
    past, later = DueItem(DueKind.RECHECK, "s", "i1"), DueItem(DueKind.RECHECK, "s", "i2")
    await redis.zadd(
        k.due, {past.member: score(now), later.member: score(now + timedelta(hours=1))}
    )

    taken, lease = await due_a.claim(now, lease_s=60, limit=10)
    assert taken == [past]
    assert (await due_b.claim(now, lease_s=60, limit=10))[0] == []  # leased to replica a
    # Replica a dies: after the lease, b takes it.
    retaken, lease_b = await due_b.claim(now + timedelta(seconds=61), lease_s=60, limit=10)
    assert retaken == [past]

    # Rescheduled meanwhile (a new mute end): releasing the old claim keeps it.
    await redis.zadd(k.due, {past.member: score(now + timedelta(minutes=5))})
    async with redis.pipeline(transaction=True) as pipe:
        await due_b.release(pipe, [past], lease_b)
        await pipe.execute()
    assert await redis.zscore(k.due, past.member) == score(now + timedelta(minutes=5))
    # Not rescheduled: released.
    taken, lease = await due_a.claim(now + timedelta(minutes=6), lease_s=60, limit=10)
    async with redis.pipeline(transaction=True) as pipe:
        await due_a.release(pipe, taken, lease)
        await pipe.execute()
    assert await redis.zscore(k.due, past.member) is None
    assert await redis.zscore(k.due, later.member) is not None


async def test_two_notify_replicas_reclaiming_each_others_entries_never_send_twice(
    make_settings, redis, run_services, make_sink
):
    """Handling slower than the reclaim idle time: each replica takes over the other's entries.

    (Sending no longer holds an entry: events are acked once decided. A slow handler does.)"""
    from tests.delivery_helpers import event, incident

    slow = make_sink(delay=0.3)
    first = make_settings(reclaim_idle_ms=100, batch_size=4)
    second = make_settings(reclaim_idle_ms=100, batch_size=4)
    k = keys.Keys(first.namespace)
    store = SubscriptionStore(redis, k)
    for n in range(3):
        await store.put(Subscription(name=f"s{n}", urls=[f"{slow.url}/{n}"]))
    stream = k.stream(keys.INCIDENT_EVENTS)
    reclaimed = 0

    def counting(consumer):
        inner = consumer.handler

        async def handler(batch):
            nonlocal reclaimed
            reclaimed += len(batch.entries) if batch.reclaimed else 0
            await asyncio.sleep(0.3)  # a slow decision: the other replica reclaims meanwhile
            await inner(batch)

        consumer.handler = handler

    async with run_services(first, "notify") as a, run_services(second, "notify") as b:
        for rt in (a, b):
            counting(rt.handlers["notify"].consumers[0])
        for n in range(20):
            e = event(incident(id=f"inc{n}"))
            await redis.xadd(stream, {"data": e.model_dump_json()})
        await eventually(lambda: len(slow.messages()) >= 60, timeout=60)
        await quiet_for(1.5)
    assert len(slow.messages()) == 60
    sent = [(r["path"], r["json"]["message"]) for r in slow.requests]  # the message names it
    assert len(set(sent)) == 60  # each subscription heard of each incident exactly once
    assert reclaimed > 0  # the race did happen


async def test_json_xml_and_form_targets_carry_the_delivery_id(make_settings, sink):
    sender = Sender(make_settings())
    port = sink.port
    sub = Subscription(
        name="headers",
        urls=[f"{scheme}://127.0.0.1:{port}/{scheme}" for scheme in ("json", "xml", "form")],
    )
    n = Notification(
        event_id="inc1:2",
        incident_id="inc1",
        subscription_id=sub.id,
        kind="firing",
        title="t",
        body="b",
        notify_type="failure",
    )
    results = await sender.deliver(sub, n)
    again = await sender.deliver(sub, n)  # a retry or a takeover: the same id
    await sender.aclose()
    assert all(r.ok for r in results + again)
    ids = {r["path"]: [] for r in sink.requests}
    for r in sink.requests:
        ids[r["path"]].append(r["headers"]["X-Redalert-Delivery"])
    assert ids == {f"/{s}": [f"inc1:2/{sub.id}"] * 2 for s in ("json", "xml", "form")}


async def test_every_failure_counts_even_when_they_end_at_once(settings, redis):
    from services.notify.circuit import CircuitStore

    circuits = CircuitStore(redis, keys.Keys(settings.namespace))

    async def fail() -> None:
        await circuits.record(
            "s", 0, ok=False, url="json://h/", error="HTTP 500", threshold=50, open_s=60
        )

    await asyncio.gather(*(fail() for _ in range(30)))
    [circuit] = await circuits.of("s", 1)
    assert circuit.failures == 30  # none lost to a read-modify-write race
    assert circuit.state(utcnow()) == "closed"
    await asyncio.gather(*(fail() for _ in range(20)))
    [circuit] = await circuits.of("s", 1)
    assert circuit.state(utcnow()) == "open"
    # Half-open: exactly one of many concurrent deliveries is let through as the probe.
    later = circuit.model_copy(update={"open_until_ms": circuit.open_until_ms - 61_000})
    await redis.hset(keys.Keys(settings.namespace).circuits, "s:0", later.model_dump_json())
    admitted = await asyncio.gather(*(circuits.admit("s", 0, probe_s=30) for _ in range(10)))
    assert sum(1 for ok, _ in admitted if ok) == 1
    await circuits.record("s", 0, ok=True, url="json://h/", error=None, threshold=50, open_s=60)
    assert await circuits.of("s", 1) == []  # the probe succeeded: closed, forgotten


async def test_urgency_becomes_the_channels_own_priority(make_settings, sink):
    """ntfy and Gotify priority, email importance; a priority in the URL itself wins."""
    from tests.sinks import SmtpSink

    smtp = SmtpSink().start()
    sender = Sender(make_settings())
    port = sink.port
    sub = Subscription(
        name="urgency",
        urls=[
            f"ntfy://127.0.0.1:{port}/alerts",
            f"gotify://127.0.0.1:{port}/abcdefghijklmno",
            f"ntfy://127.0.0.1:{port}/pinned?priority=min",
            smtp.mail_url,
        ],
    )
    try:
        for level in ("urgent", "low"):
            n = Notification(
                event_id=f"e-{level}",
                incident_id="i",
                subscription_id=sub.id,
                kind="firing",
                title="t",
                body="b",
                notify_type="failure",
                urgency=level,
            )
            assert all(r.ok for r in await sender.deliver(sub, n))
    finally:
        await sender.aclose()
        smtp.stop()
    ntfy = [r["headers"]["X-Priority"] for r in sink.requests if r["path"] == "/"]
    gotify = [r["json"]["priority"] for r in sink.requests if r["path"] == "/message"]
    assert sorted(ntfy) == sorted(["max", "min", "low", "min"])  # the pinned one stays min
    assert gotify == [10, 3]
    importance = [(m["Importance"], m["X-Priority"]) for m in smtp.messages]
    assert importance == [("high", "1"), ("low", "5")]


def test_a_subscriptions_urgency_overrides_the_severity():
    from services.notify.firing import NoticeKind
    from services.notify.render import render
    from tests.delivery_helpers import event, incident, sub

    e = event(incident())  # a red alert
    assert render(e, sub(), NoticeKind.FIRING, "http://h").urgency == "urgent"
    assert render(e, sub(urgency="normal"), NoticeKind.FIRING, "http://h").urgency == "normal"
    assert render(e, sub(), NoticeKind.RESOLVED, "http://h").urgency == "low"
