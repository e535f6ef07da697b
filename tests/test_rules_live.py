"""Rules at run time, with real services: changes reach a running classifier, bad ones never do."""

import itertools
import json
from pathlib import Path

import httpx
from redis.asyncio import Redis

from services.classify.rules import compile_rules
from services.classify.rules.store import RulesStore
from shared import keys
from tests.conftest import eventually
from tests.rules_helpers import KETTLE, SHIPPED
from tests.rules_helpers import api as client

TEAPOT = KETTLE.replace("kettle", "teapot")
BROKEN = KETTLE.replace("severity: red_alert", "severity: scary")
TEXT = "The kettle is whistling"

_ids = itertools.count()


async def classify_now(api: httpx.AsyncClient, redis: Redis, namespace: str) -> dict:
    """Post TEXT and wait for its classification."""
    post_id = f"p{next(_ids)}"
    r = await api.post("/v1/posts", json={"id": post_id, "text": TEXT})
    assert r.status_code == 202, r.text
    found: dict = {}

    async def done() -> bool:
        stream = keys.Keys(namespace).stream(keys.CLASSIFIED)
        for _, fields in await redis.xrange(stream):
            c = json.loads(fields[b"data"])
            if c["post"]["id"] == post_id:
                found.update(c)
                return True
        return False

    await eventually(done, timeout=20)
    return found


async def until_classified_by(api, redis, namespace, version: str) -> dict:
    """Post until a post is classified by `version`: the reload happened (no timing asserted)."""
    seen: list[str] = []

    async def adopted() -> bool:
        c = await classify_now(api, redis, namespace)
        seen.append(c["rules_version"])
        return c["rules_version"] == version

    await eventually(adopted, timeout=30, every=0.2)
    return {"versions_seen": seen}


async def test_a_rules_change_through_the_api_reaches_a_running_classifier(
    make_settings, redis, run_services
):
    settings = make_settings(rules_reload_s=0.2)
    shipped = compile_rules(SHIPPED).version
    async with run_services(settings, "ingest", "classify"), client(settings) as api:
        before = await classify_now(api, redis, settings.namespace)
        assert before["severity"] == "no_danger"
        assert before["rules_version"] == shipped

        r = await api.put("/v1/rules", content=KETTLE, headers={"content-type": "application/yaml"})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True
        assert r.json()["source"] == "api"
        new = r.json()["version"]
        assert r.json()["revision"] == (
            await RulesStore(redis, keys.Keys(settings.namespace)).revision()
        )

        await until_classified_by(api, redis, settings.namespace, new)
        after = await classify_now(api, redis, settings.namespace)
        assert after["severity"] == "red_alert"
        assert after["hits"][0]["rule"] == "kettle"
        assert (await api.get("/v1/rules")).json()["version"] == new


async def test_a_broken_body_is_refused_and_the_classifier_keeps_its_last_good_rules(
    make_settings, redis, run_services
):
    settings = make_settings(rules_reload_s=0.2)
    store = RulesStore(redis, keys.Keys(settings.namespace))
    async with run_services(settings, "ingest", "classify"), client(settings) as api:
        good = (await api.put("/v1/rules", content=KETTLE)).json()
        await until_classified_by(api, redis, settings.namespace, good["version"])

        r = await api.put("/v1/rules", content=BROKEN)
        assert r.status_code == 422
        assert r.json()["error"].startswith("body:3: cues.0.severity: Input should be")
        assert r.json()["detail"][0]["line"] == 3
        assert (await api.get("/v1/rules")).json()["revision"] == good["revision"]

        # Even rules written to Redis behind the API's back never replace good ones.
        revision = await store.revision()
        doc = (await store.current()).model_copy(
            update={"revision": revision + 1, "yaml": BROKEN, "version": "broken"}
        )
        await redis.set(store.keys.rules, doc.model_dump_json())
        await redis.set(store.keys.rules_revision, revision + 1)
        for _ in range(3):  # several reload periods go by
            c = await classify_now(api, redis, settings.namespace)
            assert c["rules_version"] == good["version"]
            assert c["severity"] == "red_alert"

        # The next good change is taken as usual.
        teapot = (await api.put("/v1/rules", content=TEAPOT)).json()
        assert teapot["revision"] == revision + 2
        seen = await until_classified_by(api, redis, settings.namespace, teapot["version"])
        assert "broken" not in seen["versions_seen"]


async def test_a_changed_rules_file_is_picked_up_and_a_broken_one_is_not(
    make_settings, redis, run_services, tmp_path: Path
):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(SHIPPED)
    settings = make_settings(rules_reload_s=0.2, rules_file=rules_file)
    async with run_services(settings, "ingest", "classify"), client(settings) as api:
        first = await classify_now(api, redis, settings.namespace)
        assert first["rules_version"] == compile_rules(SHIPPED).version
        doc = (await api.get("/v1/rules")).json()
        assert (doc["revision"], doc["source"]) == (1, f"file {rules_file}")

        rules_file.write_text(KETTLE)
        kettle = compile_rules(KETTLE).version
        await until_classified_by(api, redis, settings.namespace, kettle)
        doc = (await api.get("/v1/rules")).json()
        assert (doc["revision"], doc["version"]) == (2, kettle)

        rules_file.write_text(BROKEN)
        for _ in range(3):
            c = await classify_now(api, redis, settings.namespace)
            assert c["rules_version"] == kettle
        assert (await api.get("/v1/rules")).json()["revision"] == 2


async def test_a_restart_keeps_the_rules_changed_through_the_api(
    make_settings, redis, run_services
):
    settings = make_settings(rules_reload_s=0.2)
    async with run_services(settings, "ingest", "classify"), client(settings) as api:
        kettle = (await api.put("/v1/rules", content=KETTLE)).json()["version"]
    # The rules file has not changed since it was published: the API's rules stay in use.
    async with run_services(settings, "ingest", "classify"), client(settings) as api:
        c = await classify_now(api, redis, settings.namespace)
        assert c["rules_version"] == kettle
