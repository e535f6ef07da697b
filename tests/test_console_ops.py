"""The console's subscriptions, sources and dead-letters pages: changes go through the API's
own functions, secrets stay masked, refusals show on the page."""

import json
import re

import pytest

from tests.conftest import eventually
from tests.console_helpers import browser, csrf_of
from tests.source_servers import FeedDocument, Item, SourceServer
from tests.test_sources_polling import FAST

SECRET = "webhook-secret-0123456789abcdef"


@pytest.fixture
def server():
    s = SourceServer().start()
    yield s
    s.stop()


async def test_subscriptions_create_edit_keeps_masked_secrets_and_shows_refusals(
    settings, run_services
):
    async with run_services(settings, "ingest"), browser(settings) as web:
        page = (await web.get("/subscriptions")).text
        assert "No subscriptions yet" in page
        spec = {
            "name": "ops",
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
            "min_severity": "red_alert",
        }
        made = await web.post(
            "/subscriptions", data={"csrf": csrf_of(page), "body": json.dumps(spec)}
        )
        page = (await web.get(made.headers["location"])).text
        [sub] = (await web.get("/v1/subscriptions", headers={"accept": "application/json"})).json()
        shown = re.search(r'name="body" rows="10">([^<]*)</textarea>', page).group(1)
        edited = json.loads(shown.replace("&#34;", '"').replace("&quot;", '"'))
        edited["min_severity"] = "assessing"
        saved = await web.post(
            "/subscriptions",
            data={"csrf": csrf_of(page), "sub_id": sub["id"], "body": json.dumps(edited)},
        )
        refused = await web.post(
            "/subscriptions",
            data={"csrf": csrf_of(page), "body": json.dumps({"name": "x", "min_severity": "??"})},
        )
    assert made.status_code == 303
    assert SECRET not in page
    assert "****" in shown  # the secret, masked
    assert saved.status_code == 303
    assert refused.status_code == 422
    assert "min_severity" in refused.text


async def test_an_edit_through_the_console_keeps_the_secret(settings, run_services, redis):
    async with run_services(settings, "ingest"), browser(settings) as web:
        page = (await web.get("/subscriptions")).text
        spec = {"name": "ops", "webhook": {"url": "http://127.0.0.1:9/hook", "secret": SECRET}}
        await web.post("/subscriptions", data={"csrf": csrf_of(page), "body": json.dumps(spec)})
        [sub] = (await web.get("/v1/subscriptions", headers={"accept": "application/json"})).json()
        masked = {**spec, "webhook": sub["webhook"], "min_severity": "assessing"}
        await web.post(
            "/subscriptions",
            data={"csrf": csrf_of(page), "sub_id": sub["id"], "body": json.dumps(masked)},
        )
        raw = await redis.hget(f"{settings.namespace}:subscriptions", sub["id"])
    kept = json.loads(raw)
    assert kept["webhook"]["secret"] == SECRET
    assert kept["min_severity"] == "assessing"


async def test_sources_page_shows_status_and_polls_now(make_settings, run_services, server):
    settings = make_settings(**FAST)
    feed = FeedDocument([Item("1", "Leak on the station", "<p>Radiator leak</p>")])
    url = server.route("/feed.xml", feed)
    async with run_services(settings, "ingest"), browser(settings) as web:
        empty = (await web.get("/sources")).text
        spec = {"name": "feed", "kind": "rss", "url": url, "interval_s": 3600}
        await web.post("/v1/sources", json=spec, headers={"accept": "application/json"})
        await eventually(lambda: server.requests_to("/feed.xml"))
        page = (await web.get("/sources")).text
        feed.add(Item("2", "Crew safe", "<p>Not in any danger</p>"))
        polled = await web.post("/sources/feed/poll", data={"csrf": csrf_of(page)})
        after = (await web.get(polled.headers["location"])).text
    assert "No sources yet" in empty
    assert "Poll now" in page
    assert "Polled feed: 1 new, 0 already seen" in after


async def test_dead_letters_page_lists_and_replays(settings, run_services, redis):
    from shared.keys import DEADLETTER, POSTS
    from shared.models import DeadLetter, Post

    letter = DeadLetter(
        stream=POSTS,
        fields={"data": Post(text="Leak on the station").model_dump_json()},
        error="classify crashed",
    )
    await redis.xadd(f"{settings.namespace}:{DEADLETTER}", {"data": letter.model_dump_json()})
    async with run_services(settings, "ingest"), browser(settings) as web:
        page = (await web.get("/deadletters")).text
        replayed = await web.post(f"/deadletters/{letter.id}/replay", data={"csrf": csrf_of(page)})
        after = (await web.get(replayed.headers["location"])).text
    assert "classify crashed" in page
    assert "Replay</button>" in page
    assert "Replayed." in after
    assert "Replay</button>" not in after
