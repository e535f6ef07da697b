"""Links that do one thing once: bound to the incident's state, single use, minted as sent."""

import re
from urllib.parse import urlsplit

from shared.links import action_link, link_secret
from tests.conftest import eventually
from tests.delivery_helpers import live, post_thread, subscribe

LEAK = "Gas leak reported at plant 3"

FORM = {"content-type": "application/x-www-form-urlencoded"}


def path_of(link: str) -> str:
    return urlsplit(link)._replace(scheme="", netloc="").geturl()


def links_in(message: dict) -> dict[str, str]:
    found = re.findall(r"(Acknowledge|Resolve): (\S+)", message["message"])
    return {("ack" if verb == "Acknowledge" else "resolve"): path_of(url) for verb, url in found}


async def status_of(api, incident_id: str) -> str:
    return (await api.get(f"/v1/incidents/{incident_id}")).json()["incident"]["status"]


async def test_a_link_works_once_and_only_while_the_incident_is_where_it_was(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings()
    sink = make_sink()
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[sink.url], min_severity="assessing")
        await post_thread(api, "plant", LEAK)
        await eventually(lambda: len(sink.messages()) == 1)
        incident_id = (await api.get("/v1/incidents")).json()[0]["id"]
        first = links_in(sink.messages()[0])
        assert set(first) == {"ack", "resolve"}
        assert "&sig=" in first["ack"]

        # Used once: acknowledged. Used again, or even opened again: 410, saying why.
        done = await api.post(first["ack"], content="actor=ana", headers=FORM)
        assert done.status_code == 202
        await eventually(lambda: _is(api, incident_id, "acknowledged"))
        again = await api.post(first["ack"], content="actor=ana", headers=FORM)
        assert again.status_code == 410
        assert "already used" in again.text
        assert (await api.get(first["ack"])).status_code == 410

        # Acknowledging is the way to resolving: the same message's resolve link still works.
        assert (await api.get(first["resolve"])).status_code == 200
        assert (await api.post(first["resolve"], headers=FORM)).status_code == 202
        await eventually(lambda: _is(api, incident_id, "resolved"))
        await eventually(lambda: len(sink.messages()) == 2)  # [RESOLVED]

        # Reopened: a fresh message, fresh links for the new state.
        assert (await api.post(f"/v1/incidents/{incident_id}/reopen")).status_code == 202
        await eventually(lambda: len(sink.messages()) == 3)
        third = links_in(sink.messages()[2])
        assert third["resolve"] != first["resolve"]

        # Resolved and reopened by someone else meanwhile: the unused links of that message
        # no longer mean what they meant — refused, and the page says what happened.
        assert (await api.post(f"/v1/incidents/{incident_id}/resolve")).status_code == 202
        await eventually(lambda: _is(api, incident_id, "resolved"))
        assert (await api.post(f"/v1/incidents/{incident_id}/reopen")).status_code == 202
        await eventually(lambda: _is(api, incident_id, "open"))
        for action in ("ack", "resolve"):
            stale = await api.post(third[action], content="actor=bo", headers=FORM)
            assert stale.status_code == 410, action
            assert "was resolved" in stale.text
            assert "now <b>open</b>" in stale.text
        assert await status_of(api, incident_id) == "open"

        # The newest message's links work.
        await eventually(lambda: len(sink.messages()) == 5)
        newest = links_in(sink.messages()[-1])
        assert (await api.post(newest["ack"], headers=FORM)).status_code == 202
        await eventually(lambda: _is(api, incident_id, "acknowledged"))

        # Tampered: 403; expired: 410.
        secret = await link_secret(redis, settings)
        forged = newest["resolve"].replace("sig=", "sig=0")
        assert (await api.post(forged, headers=FORM)).status_code == 403
        version = int(re.search(r"v=(\d+)", newest["resolve"]).group(1))
        old = action_link(settings, secret, incident_id, "resolve", version, now=1_000_000)
        expired = await api.get(path_of(old))
        assert expired.status_code == 410
        assert "expired" in expired.text


async def _is(api, incident_id: str, status: str) -> bool:
    return await status_of(api, incident_id) == status


async def test_dead_letters_hold_no_working_links_and_a_replay_mints_fresh_ones(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(send_attempts=1)
    sink = make_sink(status=500)
    async with live(run_services, settings) as api:
        await subscribe(api, urls=[sink.url], min_severity="red_alert")
        await post_thread(api, "plant-3", LEAK)

        async def letters() -> list:
            return (await api.get("/v1/deadletter")).json()

        await eventually(letters)
        [letter] = await letters()
        stored = (await api.get(f"/v1/deadletter/{letter['id']}")).text
        assert "/ack/link?v=" in stored  # the message, with its links unsigned…
        assert "sig=" not in stored  # …so nothing in it acts
        for _, fields in await redis.xrange(f"{settings.namespace}:deadletter"):
            assert not any(b"sig=" in value for value in fields.values())
        sent = sink.requests[0]["json"]["message"]  # what went out (and failed) was signed
        assert "&sig=" in sent

        sink.status = 200
        r = await api.post(f"/v1/deadletter/{letter['id']}/replay")
        assert r.status_code == 200, r.text
        assert r.json()["ok"]
        replayed = links_in(sink.messages()[0])
        assert "&sig=" in replayed["ack"]
        assert (await api.get(replayed["ack"])).status_code == 200
