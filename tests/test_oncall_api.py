"""People and schedules over real HTTP and Redis: validation naming the field, masked contacts,
who is on call at a time, the iCalendar exports (parsed), and `redalert oncall`."""

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import icalendar
import pytest


@pytest.fixture
async def api(make_settings, redis, run_services):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as client:
        client.base = base
        yield client


def person(name: str, **fields) -> dict:
    return {"name": name, "contacts": [f"json://127.0.0.1:9/{name}?token=s3cr3t-{name}"], **fields}


WEEKLY = {
    "name": "db-primary",
    "timezone": "Europe/Paris",
    "rotations": [
        {"members": ["alice", "bob"], "start": "2026-03-16", "length": "1w", "handoff": "09:00"}
    ],
    "overrides": [{"person": "carol", "start": "2026-03-22T20:00", "end": "2026-03-23T12:00"}],
}


async def test_people_are_kept_with_their_contacts_masked(api):
    r = await api.post("/v1/people", json=person("alice", timezone="Europe/Paris"))
    assert r.status_code == 201, r.text
    assert "s3cr3t" not in r.text
    shown = (await api.get("/v1/people/alice")).json()
    assert shown["timezone"] == "Europe/Paris"
    # What GET showed, sent back, keeps the real contact; the answer says it was replaced.
    again = await api.post("/v1/people", json={**shown, "timezone": "UTC"} | {"created_at": None})
    assert again.status_code == 422  # read-only fields are not accepted
    again = await api.post(
        "/v1/people", json={"name": "alice", "contacts": shown["contacts"], "timezone": "UTC"}
    )
    assert again.status_code == 200, again.text
    assert [p["name"] for p in (await api.get("/v1/people")).json()] == ["alice"]
    for body, expected in [
        ({"name": "bad name", "contacts": ["json://x"]}, "body.name"),
        ({"name": "x", "contacts": []}, "body.contacts"),
        ({"name": "x", "contacts": ["nope://host/hidden-token"]}, "body.contacts: contacts[0]"),
        ({**person("x"), "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
    ]:
        r = await api.post("/v1/people", json=body)
        assert r.status_code == 422, body
        assert expected in r.json()["error"]
        assert "hidden-token" not in r.text
    assert (await api.get("/v1/people/nobody")).status_code == 404


async def test_a_schedule_answers_who_is_on_call_and_exports_its_shifts(api):
    for name in ("alice", "bob", "carol"):
        assert (await api.post("/v1/people", json=person(name))).status_code == 201
    unknown = {**WEEKLY, "rotations": [{**WEEKLY["rotations"][0], "members": ["alice", "zed"]}]}
    r = await api.post("/v1/schedules", json=unknown)
    assert r.status_code == 422
    assert "body.rotations.0.members.1: no person 'zed'" in r.json()["error"]
    bad = {**WEEKLY, "rotations": [{**WEEKLY["rotations"][0], "length": "soon"}]}
    r = await api.post("/v1/schedules", json=bad)
    assert r.status_code == 422
    assert "body.rotations.0.length" in r.json()["error"]

    r = await api.post("/v1/schedules", json=WEEKLY)
    assert r.status_code == 201, r.text

    async def at(when: str) -> dict:
        r = await api.get("/v1/schedules/db-primary/oncall", params={"at": when})
        assert r.status_code == 200, r.text
        return r.json()

    assert (await at("2026-03-18T12:00:00+01:00"))["person"] == "alice"
    across = await at("2026-03-23T09:30:00+01:00")  # past the handoff, in the override
    assert (across["person"], across["via"]) == ("carol", "override 1")
    assert (await at("2026-03-23T12:00:00+01:00"))["person"] == "bob"
    assert (await at("2026-03-30T07:00:00Z"))["person"] == "alice"  # 09:00 CEST
    assert (await at("2026-03-10T00:00:00Z"))["person"] is None
    naive = await api.get("/v1/schedules/db-primary/oncall", params={"at": "2026-03-18T12:00"})
    assert naive.status_code == 422
    assert "query.at: give a time zone" in naive.json()["error"]
    assert (await api.get("/v1/schedules/nope/oncall")).status_code == 404

    r = await api.get("/v1/schedules/db-primary/oncall.ics", params={"days": 21})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/calendar")
    events = list(icalendar.Calendar.from_ical(r.text).walk("VEVENT"))
    assert 3 <= len(events) <= 4  # weekly shifts over three weeks from now
    starts = [e.decoded("DTSTART") for e in events]
    assert starts == sorted(starts)
    assert all(
        e.decoded("DTEND") - e.decoded("DTSTART") <= timedelta(days=7, hours=1) for e in events
    )
    assert {str(e["SUMMARY"]) for e in events} <= {
        "On call: alice (db-primary)",
        "On call: bob (db-primary)",
    }
    mine = await api.get("/v1/people/alice/oncall.ics", params={"days": 21})
    alice = list(icalendar.Calendar.from_ical(mine.text).walk("VEVENT"))
    assert alice
    assert {str(e["SUMMARY"]) for e in alice} == {"On call: alice (db-primary)"}

    r = await api.delete("/v1/people/bob")
    assert r.status_code == 409
    assert "db-primary" in r.json()["detail"]

    env = {**os.environ, "REDALERT_API_URL": api.base}
    cli = [sys.executable, "-m", "services.cli", "oncall"]
    out = await asyncio.to_thread(
        subprocess.run,
        [*cli, "db-primary", "--at", "2026-03-23T09:30:00+01:00"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("db-primary: carol (override 1) until 2026-03-23T11:00:00")
    every = await asyncio.to_thread(subprocess.run, cli, env=env, capture_output=True, text=True)
    assert every.returncode == 0, every.stderr
    now_on = (await api.get("/v1/schedules/db-primary/oncall")).json()["person"]
    assert every.stdout.startswith(f"db-primary: {now_on} (rotation 1) until ")
    missing = await asyncio.to_thread(
        subprocess.run, [*cli, "nope"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "no schedule 'nope'" in missing.stderr
