"""The rules workbench over HTTP: check, try, evaluate, backtest, save, history, roll back."""

import json
from pathlib import Path

from services.classify.rules import compile_rules
from shared import keys
from shared.models import Post
from tests.console_helpers import browser, csrf_of
from tests.rules_helpers import KETTLE, SHIPPED

BROKEN = KETTLE.replace("    weight: 2\n", "    weight: two\n")


async def _session(web) -> dict[str, str]:
    page = (await web.get("/rules")).text
    return {"x-csrf-token": csrf_of(page), "accept": "application/json"}


async def test_check_reports_problems_at_their_line(settings, run_services):
    async with run_services(settings, "ingest"), browser(settings) as web:
        headers = await _session(web)
        bad = await web.post("/console/rules/check", json={"rules": BROKEN}, headers=headers)
        good = await web.post("/console/rules/check", json={"rules": KETTLE}, headers=headers)
        forged = await web.post("/console/rules/check", json={"rules": KETTLE})
    assert bad.status_code == 422
    [problem] = bad.json()["problems"]
    assert problem["line"] == 4
    assert "weight" in problem["msg"]
    assert good.json() == {"ok": True, "version": compile_rules(KETTLE).version, "problems": []}
    assert forged.status_code == 403


async def test_try_a_text_explains_with_the_draft_or_the_rules_in_use(settings, run_services):
    async with run_services(settings, "ingest"), browser(settings) as web:
        headers = await _session(web)
        draft = await web.post(
            "/console/rules/try", json={"text": "The kettle!", "rules": KETTLE}, headers=headers
        )
        live = await web.post("/console/rules/try", json={"text": "The kettle!"}, headers=headers)
    assert draft.json()["severity"] == "red_alert"
    assert (
        '<mark class="hit cue sev-red" title="red alert cue (kettle)">kettle</mark>'
        in (draft.json()["html"])
    )
    assert live.json()["severity"] == "no_danger"


async def test_evaluate_backtest_save_and_roll_back(
    make_settings, run_services, redis, namespace, tmp_path: Path
):
    (tmp_path / "kettles.jsonl").write_text(
        json.dumps({"id": "k1", "label": "red_alert", "text": "the kettle is on fire"}) + "\n"
    )
    settings = make_settings(labelled_dir=tmp_path)
    shipped = compile_rules(SHIPPED)
    stream = keys.Keys(namespace).stream(keys.CLASSIFIED)
    for i, text in enumerate(["The kettle is whistling", "Nice view of the aurora"]):
        c = shipped.classify(Post(id=f"p{i}", source="test", text=text))
        await redis.xadd(stream, {"data": c.model_dump_json()})
    async with run_services(settings, "ingest"), browser(settings) as web:
        headers = await _session(web)
        draft = {"rules": KETTLE}
        evaluated = await web.post("/console/rules/eval", json=draft, headers=headers)
        tested = await web.post("/console/rules/backtest", json=draft, headers=headers)
        saved = await web.post(
            "/console/rules/save", json={**draft, "revision": 0}, headers=headers
        )
        stale = await web.post(
            "/console/rules/save", json={"rules": SHIPPED, "revision": 0}, headers=headers
        )
        page = (await web.get("/rules?diff=1")).text
        back = await web.post(
            "/console/rules/save", json={"rules": SHIPPED, "revision": 1}, headers=headers
        )
        rolled = await web.post("/rules/rollback/1", data={"csrf": headers["x-csrf-token"]})
        after = (await web.get(rolled.headers["location"])).text
        in_use = (await web.get("/v1/rules", headers={"accept": "application/json"})).json()
    html = evaluated.json()["html"]
    assert "<strong>kettles.jsonl</strong>: 1 posts, macro-F1 1.000" in html
    assert "<strong>corrections</strong>: 0 posts" in html
    assert tested.json()["changed"] == 1  # the whistling kettle: no danger -> red alert
    assert "1 of the last 2 posts would change severity" in tested.json()["html"]
    assert saved.json() == {"ok": True, "revision": 1, "changed": True}
    assert stale.status_code == 412
    assert "+    phrases: [kettle]" in page  # the diff of revision 1
    assert back.json()["revision"] == 2
    assert "Rolled back: revision 3 is revision 1" in after
    assert (in_use["revision"], in_use["yaml"]) == (3, KETTLE)


GRIBBLE = [
    "Gribble vat at the north works again, everyone stay back",
    "Second gribble vat this week on level two",
    "East crew reporting a gribble vat by the loading bay",
]


async def test_suggestions_and_the_trend_come_from_corrections(
    make_settings, run_services, tmp_path: Path
):
    settings = make_settings(labelled_dir=tmp_path)  # no labelled files: corrections only
    async with run_services(settings, "ingest"), browser(settings) as web:
        headers = await _session(web)
        for i, text in enumerate(GRIBBLE):
            r = await web.post(
                f"/v1/posts/test/g{i}/label",
                json={"label": "red_alert", "text": text},
                headers={"accept": "application/json"},
            )
            assert r.status_code == 201
        # Each candidate is a compile of the shipped rules: seconds on a busy machine.
        found = await web.post("/console/rules/suggest", headers=headers, timeout=120)
        await web.post(
            "/console/rules/save", json={"rules": KETTLE, "revision": 0}, headers=headers
        )
        trend = await web.post("/console/rules/trend", headers=headers)
    html = found.json()["html"]
    assert "“<strong>gribble vat</strong>”" in html
    assert "corrections: fixes 3, breaks 0" in html
    assert "1 <code>" in trend.json()["html"]
    assert "0 / 3 corrections" in trend.json()["html"]
