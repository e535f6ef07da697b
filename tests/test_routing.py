"""Routing by priority and `continue: false`: the pure decision, notify's match step, and
`redalert routes test` explaining it against a live redalert (whose notify obeys the same)."""

import asyncio
import os
import subprocess
import sys

import httpx
import pytest

from services.notify.pipeline import Candidate, Env, match
from shared.escalation import Policy
from shared.routing import decide, routes, skipped
from shared.severity import Severity
from shared.subscriptions import SubscriptionSpec, public
from tests.conftest import eventually
from tests.delivery_helpers import T0, event, incident, sub


def db(severity: Severity = Severity.RED_ALERT, id: str = "inc1", **labels: str):
    inc = incident(severity, id=id)
    inc.labels = {"team": "db", **labels}
    return inc


def oncall_policy(**fields) -> Policy:
    return Policy.model_validate(
        {
            "name": "db-oncall",
            "matchers": ['team="db"'],
            "min_severity": "red_alert",
            "priority": 10,
            "continue": False,
            "steps": [{"after": 0, "notify": ["person:alice"]}],
            **fields,
        }
    )


OPS = sub(name="ops chat")
DB_CHAT = sub(name="db chat", matchers=['team="db"'], priority=5)


def test_continue_false_stops_every_route_after_it_and_says_so():
    all_routes = routes([OPS, DB_CHAT], [oncall_policy()])
    assert [(r.kind, r.name) for r in all_routes] == [
        ("policy", "db-oncall"),
        ("subscription", "db chat"),
        ("subscription", "ops chat"),
    ]
    red = [(d.route.name, d.taken, d.why) for d in decide(all_routes, db())]
    assert red == [
        ("db-oncall", True, "matches (continue: false: routes after it are skipped)"),
        ("db chat", False, "stopped by policy 'db-oncall' (continue: false)"),
        ("ops chat", False, "stopped by policy 'db-oncall' (continue: false)"),
    ]
    assessing = [(d.route.name, d.taken) for d in decide(all_routes, db(Severity.ASSESSING))]
    assert assessing == [("db-oncall", False), ("db chat", True), ("ops chat", True)]
    web = [(d.route.name, d.taken) for d in decide(all_routes, db(team="web"))]
    assert web == [("db-oncall", False), ("db chat", False), ("ops chat", True)]
    assert skipped(routes([OPS, DB_CHAT], [oncall_policy(**{"continue": True})]), db()) == {}


def test_notify_skips_a_subscription_stopped_by_a_route_above_it():
    env = Env(T0, routes=routes([OPS, DB_CHAT], [oncall_policy()]))
    stopped = "stopped by policy 'db-oncall' (continue: false)"
    assert match(Candidate(event(db()), OPS), env) == stopped
    assert match(Candidate(event(db()), DB_CHAT), env) == stopped
    assert match(Candidate(event(db(Severity.ASSESSING, id="inc2")), OPS), env) is None
    assert match(Candidate(event(db()), OPS), Env(T0)) is None  # no routes given: no stops


def test_a_subscription_declares_priority_and_continue_as_written():
    spec = SubscriptionSpec.model_validate(
        {"name": "x", "urls": ["json://127.0.0.1/"], "priority": 3, "continue": False}
    )
    shown = public(spec.to_subscription())
    assert (shown["priority"], shown["continue"]) == (3, False)
    assert "continue_" not in shown


@pytest.fixture
async def api(make_settings, redis, run_services):
    settings = make_settings(schedule_poll_s=0.1)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base) as http:
        http.base = base
        yield http


async def test_routes_test_explains_and_notify_obeys(api, make_sink):
    alice, ops, db_chat = make_sink(), make_sink(), make_sink()
    await api.post("/v1/people", json={"name": "alice", "contacts": [alice.url]})
    schedule = {
        "name": "db-primary",
        "rotations": [{"members": ["alice"], "start": "2020-01-01T00:00:00Z", "length": "1w"}],
    }
    assert (await api.post("/v1/schedules", json=schedule)).status_code == 201
    policy = {
        "name": "db-oncall",
        "matchers": ['team="db"'],
        "priority": 10,
        "continue": False,
        "steps": [{"after": "0s", "notify": ["schedule:db-primary"]}],
    }
    assert (await api.post("/v1/escalation-policies", json=policy)).status_code == 201
    for body in (
        {"name": "ops chat", "urls": [ops.url]},
        {"name": "db chat", "urls": [db_chat.url], "matchers": ['team="db"'], "priority": 5},
    ):
        assert (await api.post("/v1/subscriptions", json=body)).status_code == 201

    env = {**os.environ, "REDALERT_API_URL": api.base}
    cli = [sys.executable, "-m", "services.cli", "routes", "test"]
    out = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--labels", "team=db", "--severity", "red_alert"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "an incident at red alert with team=db:",
        "  ✓ policy 'db-oncall' (priority 10, continue: false): matches (continue: false: "
        "routes after it are skipped)",
        "      step 1 pages alice (on call on schedule 'db-primary', rotation 1)",
        "  ✗ subscription 'db chat' (priority 5): stopped by policy 'db-oncall' (continue: false)",
        "  ✗ subscription 'ops chat' (priority 0): stopped by policy 'db-oncall' (continue: false)",
        "notified: alice (on call on schedule 'db-primary', rotation 1) (policy 'db-oncall', "
        "step 1)",
    ]
    r = await api.post("/v1/routes/test", json={"labels": {"team": "db"}, "severity": "assessing"})
    taken = {x["name"]: (x["taken"], x["why"]) for x in r.json()["routes"]}
    assert taken == {
        "db-oncall": (False, "assessing is below its red alert"),
        "db chat": (True, "matches"),
        "ops chat": (True, "matches"),
    }
    bad = await asyncio.to_thread(
        subprocess.run, [*cli, "--labels", "team"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "--labels: 'team': write labels as name=value" in bad.stderr

    # notify does as explained: the DB red alert pages the on-call, and no chat hears of it.
    alert = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Down", "severity": "critical", "team": "db"},
                "annotations": {"summary": "Primary database down"},
                "startsAt": "2026-11-26T08:00:00Z",
                "fingerprint": "db1",
            },
            {
                "status": "firing",
                "labels": {"alertname": "Slow", "severity": "critical", "team": "web"},
                "annotations": {"summary": "Checkout slow"},
                "startsAt": "2026-11-26T08:00:00Z",
                "fingerprint": "web1",
            },
        ],
    }
    await api.post("/v1/webhooks/alertmanager", json=alert)
    await eventually(lambda: len(alice.messages()) == 1 and len(ops.messages()) == 1)
    await asyncio.sleep(1.0)
    assert alice.messages()[0]["title"] == "[PAGE] [RED ALERT] Primary database down"
    assert [m["title"] for m in ops.messages()] == ["[RED ALERT] Checkout slow"]
    assert db_chat.messages() == []


def test_the_cli_declares_priority_and_continue():
    from services.cli.main import parser
    from services.cli.subscriptions import spec_from_args

    args = parser().parse_args(
        ["subscriptions", "add", "db chat", "json://127.0.0.1/", "--match", 'team="db"',
         "--priority", "5", "--stop"]
    )  # fmt: skip
    spec = spec_from_args(args)
    assert (spec["matchers"], spec["priority"], spec["continue"]) == (['team="db"'], 5, False)
    assert SubscriptionSpec.model_validate(spec).continue_ is False
