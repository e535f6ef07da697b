"""/v1/rules and the rules store: versions, validation, auth, trying rules, races."""

import asyncio

from pydantic import SecretStr

from services.classify.rules import compile_rules
from services.classify.rules.store import RulesStore
from shared import keys
from tests.rules_helpers import KETTLE, SHIPPED
from tests.rules_helpers import api as client


async def test_before_any_change_the_rules_file_is_in_use(settings, run_services):
    async with run_services(settings, "ingest"), client(settings) as api:
        r = await api.get("/v1/rules")
    assert r.status_code == 200
    doc = r.json()
    assert doc["revision"] == 0
    assert doc["source"] == f"file {settings.rules_file}"
    assert doc["version"] == compile_rules(SHIPPED).version
    assert doc["yaml"] == SHIPPED


async def test_put_versions_the_rules_and_keeps_a_history(settings, run_services):
    async with run_services(settings, "ingest"), client(settings) as api:
        first = (await api.put("/v1/rules", content=KETTLE)).json()
        again = (await api.put("/v1/rules", content=KETTLE + "# same rules, a comment\n")).json()
        second = await api.put("/v1/rules", content=KETTLE.replace("weight: 2", "weight: 3"))
        assert second.status_code == 200
        history = (await api.get("/v1/rules/history")).json()
        old = (await api.get("/v1/rules/1")).json()
        missing = await api.get("/v1/rules/99")
    assert (first["revision"], first["changed"]) == (1, True)
    assert (again["revision"], again["changed"]) == (1, False)  # same version: no new revision
    assert second.json()["revision"] == 2
    assert [h["revision"] for h in history] == [2, 1]
    assert "yaml" not in history[0]
    assert old["yaml"] == KETTLE
    assert old["version"] == first["version"]
    assert missing.status_code == 404


async def test_put_with_if_match_applies_only_to_the_revision_read(settings, run_services):
    async with run_services(settings, "ingest"), client(settings) as api:
        await api.put("/v1/rules", content=KETTLE)
        stale = await api.put("/v1/rules", content=SHIPPED, headers={"if-match": "0"})
        fresh = await api.put("/v1/rules", content=SHIPPED, headers={"if-match": '"1"'})
        bad = await api.put("/v1/rules", content=SHIPPED, headers={"if-match": "latest"})
    assert stale.status_code == 412
    assert "the rules are at revision 1" in stale.json()["detail"]
    assert fresh.json()["revision"] == 2
    assert bad.status_code == 422


async def test_put_refuses_what_does_not_validate_with_lines(settings, run_services):
    async with run_services(settings, "ingest"), client(settings) as api:
        bad_regex = await api.put(
            "/v1/rules", content=KETTLE.replace("phrases: [kettle]", "regex: ['(kettle']")
        )
        not_yaml = await api.put("/v1/rules", content="cues: [\n  - oops: {\n")
        empty = await api.put("/v1/rules", content="")
        binary = await api.put("/v1/rules", content=b"\xff\xfe")
        after = (await api.get("/v1/rules")).json()
    assert bad_regex.status_code == 422
    assert bad_regex.json()["error"] == (
        "body:5: cues.0.regex.0: bad regex '(kettle': missing ), unterminated subpattern "
        "at position 0"
    )
    assert bad_regex.json()["detail"] == [
        {
            "line": 5,
            "msg": "cues.0.regex.0: bad regex '(kettle': missing ), unterminated subpattern "
            "at position 0",
        }
    ]
    assert not_yaml.status_code == 422
    assert not_yaml.json()["error"].startswith("body:")
    assert empty.json()["error"] == "body: the rules file is empty"
    assert binary.json()["error"] == "body: the body is not UTF-8 text"
    assert after["revision"] == 0  # nothing was stored


async def test_reads_and_writes_need_the_token_when_one_is_set(make_settings, run_services):
    settings = make_settings(api_token=SecretStr("s3cret"))
    async with run_services(settings, "ingest"):
        async with client(settings) as anonymous:
            put = await anonymous.put("/v1/rules", content=KETTLE)
            read = await anonymous.get("/v1/rules")
            tried = await anonymous.post("/v1/rules/test", json={"text": "leak"})
            custom = await anonymous.post(
                "/v1/rules/test", json={"text": "kettle", "rules": KETTLE}
            )
        async with client(settings, "s3cret") as operator:
            allowed = await operator.put("/v1/rules", content=KETTLE)
            custom_ok = await operator.post(
                "/v1/rules/test", json={"text": "kettle", "rules": KETTLE}
            )
    assert put.status_code == 401
    assert read.status_code == 401  # once a token exists, reads need one too
    assert tried.status_code == 401
    assert custom.status_code == 401
    assert allowed.status_code == 200
    assert custom_ok.json()["severity"] == "red_alert"


async def test_post_rules_test_explains_a_text(settings, run_services):
    text = "ISS: a possible leak from the radiator on MLM; origin not yet known"
    async with run_services(settings, "ingest"), client(settings) as api:
        r = await api.post("/v1/rules/test", json={"text": text})
        bad = await api.post("/v1/rules/test", json={"text": "x", "rules": "cues: 3"})
        missing = await api.post("/v1/rules/test", json={})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["severity"] == "assessing"
    assert body["topics"] == ["iss"]
    assert body["rules_version"] == compile_rules(SHIPPED).version
    hits = {(h["rule"], h["text"], h["effect"]) for h in body["hits"]}
    assert ("leak", "leak", "hedged") in hits
    assert all(text[h["start"] : h["end"]] == h["text"] for h in body["hits"])
    assert body["explanation"][0].startswith("assessing")
    assert "[leak]" in body["explanation"][1]
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("body:1: cues: Input should be a valid list")
    assert missing.status_code == 422
    assert "text" in missing.json()["error"]


async def test_concurrent_writers_get_distinct_revisions(settings, redis):
    store = RulesStore(redis, keys.Keys(settings.namespace))
    texts = [KETTLE.replace("weight: 2", f"weight: {w}") for w in range(2, 12)]
    results = await asyncio.gather(*(store.put(t, compile_rules(t), "api") for t in texts))
    assert sorted(doc.revision for doc, _ in results) == list(range(1, 11))
    assert await store.revision() == 10
    assert len(await store.history()) == 10
    assert (await store.current()).revision == 10


async def test_the_file_is_published_once_per_edit_and_never_over_newer_api_rules(settings, redis):
    store = RulesStore(redis, keys.Keys(settings.namespace))
    shipped = compile_rules(SHIPPED)
    # Rules put through the API before any file was published: the file is only remembered.
    await store.put(KETTLE, compile_rules(KETTLE), "api")
    assert await store.publish_file(SHIPPED, shipped, "file x") is None
    assert (await store.current()).source == "api"
    # The same file again (another replica, a restart): nothing.
    assert await store.publish_file(SHIPPED, shipped, "file x") is None
    # An edit of the file is the newest change: published.
    edited = SHIPPED + "\n# edited\n"
    doc = await store.publish_file(edited, compile_rules(edited), "file x")
    assert doc is not None
    assert (doc.revision, doc.source) == (2, "file x")
    # Two replicas seeing the same edit publish it once.
    again = SHIPPED.replace("red_alert: 2.0", "red_alert: 2.5")
    engine = compile_rules(again)
    results = await asyncio.gather(*(store.publish_file(again, engine, "file x") for _ in range(4)))
    assert sum(r is not None for r in results) == 1
    assert await store.revision() == 3


async def test_trying_the_rules_in_use_does_not_compile_them_per_call(
    settings, run_services, monkeypatch
):
    from services.ingest.routes import rules as route

    compiled: list[str] = []

    def counting(text: str, name: str = "<rules>"):
        compiled.append(name)
        return compile_rules(text, name)

    monkeypatch.setattr(route, "compile_rules", counting)
    route._compiled.cache_clear()
    async with run_services(settings, "ingest"), client(settings) as api:
        assert (await api.put("/v1/rules", content=KETTLE)).status_code == 200
        compiled.clear()
        for _ in range(3):
            r = await api.post("/v1/rules/test", json={"text": "the kettle"})
            assert r.json()["severity"] == "red_alert"
    assert compiled == ["revision 1"]  # once, then from the cache
