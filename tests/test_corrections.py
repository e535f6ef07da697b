"""Corrections: labelling posts (API, CLI, console), exporting them, and what the rules learn."""

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.classify.rules import compile_rules
from services.classify.rules.evaluate import read_labelled
from services.classify.rules.suggest import ngrams, suggest
from services.cli.main import main
from shared.models import Post
from shared.settings import get_settings
from tests.conftest import eventually
from tests.console_helpers import browser, csrf_of
from tests.rules_helpers import SHIPPED, api

RED = "Fire at the chemical plant on Route 9, evacuate the area now"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


async def _posted(client, text: str) -> tuple[str, str]:
    """Post a text and wait until it opened an incident: (post id, incident id)."""
    r = await client.post("/v1/posts", json={"text": text}, headers={"accept": "application/json"})
    post_id = r.json()["accepted"][0]
    found: list[str] = []

    async def opened() -> bool:
        found[:] = [i["id"] for i in (await client.get("/v1/incidents")).json()]
        return bool(found)

    await eventually(opened)
    return post_id, found[0]


async def test_a_label_is_stored_with_who_why_and_what_redalert_said(settings, run_services):
    async with run_services(settings, "ingest", "classify"), api(settings) as client:
        post_id, incident_id = await _posted(client, RED)
        r = await client.post(
            f"/v1/posts/api/{post_id}/label",
            json={"label": "no_danger", "why": "a drill, announced", "actor": "kim"},
        )
        again = await client.post(
            f"/v1/posts/api/{post_id}/label", json={"label": "assessing", "actor": "lee"}
        )
        missing = await client.post("/v1/posts/api/nope/label", json={"label": "assessing"})
        given = await client.post(
            "/v1/posts/x/gone/label", json={"label": "red_alert", "text": "tank rupture"}
        )
        bad = await client.post(f"/v1/posts/api/{post_id}/label", json={"label": "panic"})
        exported = await client.get("/v1/corrections.jsonl")
    assert r.status_code == 201
    c = r.json()
    assert (c["label"], c["predicted"], c["by"], c["why"]) == (
        "no_danger",
        "red_alert",
        "kim",
        "a drill, announced",
    )
    assert c["incident_id"] == incident_id
    assert again.json()["label"] == "assessing"
    assert again.json()["previous"][0]["by"] == "kim"  # the replaced correction is kept
    assert missing.status_code == 404
    assert "give its `text`" in missing.json()["detail"]
    assert given.status_code == 201
    assert bad.status_code == 422
    assert "label" in bad.json()["error"]
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [(x["id"], x["label"]) for x in lines] == [
        (f"api:{post_id}", "assessing"),
        ("x:gone", "red_alert"),
    ]
    assert lines[0]["tags"] == ["correction"]
    assert lines[0]["text"] == RED


async def test_labelling_needs_the_token_when_one_is_set(make_settings, run_services):
    settings = make_settings(api_token=SecretStr("corrections-token-0123456789"))
    async with run_services(settings, "ingest"), api(settings) as client:
        r = await client.post("/v1/posts/x/y/label", json={"label": "assessing", "text": "t"})
    assert r.status_code == 401


@pytest.fixture
def cli_env(redis_url: str, namespace: str, monkeypatch):
    monkeypatch.setenv("REDALERT_REDIS_URL", redis_url)
    monkeypatch.setenv("REDALERT_NAMESPACE", namespace)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_cli_label_then_eval_feedback_counts_it(
    capsys, cli_env, settings, run_services, tmp_path: Path
):
    async with run_services(settings, "ingest", "classify"), api(settings) as client:
        post_id, _ = await _posted(client, RED)
        url = f"http://127.0.0.1:{settings.http_port}"
        code, out, err = await asyncio.to_thread(
            run, capsys, "label", "api", post_id, "no-danger", "--why", "drill", "--url", url
        )
        assert code == 0, err
        assert out.strip().endswith("is no danger (redalert said red alert), says " + _me())
        code, exported, _ = await asyncio.to_thread(
            run, capsys, "corrections", "export", "--url", url
        )
    assert code == 0
    path = tmp_path / "corrections.jsonl"
    path.write_text(exported)
    assert [(i.post.text, i.label.value) for i in read_labelled(path)] == [(RED, "no_danger")]

    code, out, _ = await asyncio.to_thread(run, capsys, "rules", "eval", "--feedback")
    assert code == 0
    assert "operators' corrections: 1 posts, 0 agree with the rules" in out
    code, out, _ = await asyncio.to_thread(run, capsys, "rules", "eval", "--feedback", "--json")
    assert json.loads(out)["feedback"]["n"] == 1


def _me() -> str:
    import getpass

    return getpass.getuser()


async def test_console_label_shows_on_the_incident_page(settings, run_services):
    async with run_services(settings, "ingest", "classify"), browser(settings) as web:
        post_id, incident_id = await _posted(web, RED)
        page = (await web.get(f"/incidents/{incident_id}")).text
        assert "This was really" in page
        r = await web.post(
            f"/posts/api/{post_id}/label",
            data={
                "severity": "assessing",
                "why": "unconfirmed",
                "incident_id": incident_id,
                "csrf": csrf_of(page),
            },
        )
        assert r.status_code == 303
        page = (await web.get(r.headers["location"])).text
    assert "Corrected to" in page
    assert "unconfirmed" in page


# --- suggest -------------------------------------------------------------------------------------

# The shipped rules know nothing of a "gribble vat" (a made-up hazard); the red alerts about it
# share that phrase and nothing else, while the calm posts use its words apart.
MISSING_PHRASE = [
    ("g1", "red_alert", "Gribble vat at the north works again, everyone stay back"),
    ("g2", "red_alert", "Second gribble vat this week on level two"),
    ("g3", "red_alert", "East crew reporting a gribble vat by the loading bay"),
    ("n1", "no_danger", "Gribble season starts next month at the farm"),
    ("n2", "no_danger", "The new vat arrived at the brewery today"),
    ("n3", "no_danger", "Loved the vat tour at the distillery"),
]


def _labelled(tmp_path: Path) -> Path:
    path = tmp_path / "gribble.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "label": label, "text": text}) + "\n"
            for i, label, text in MISSING_PHRASE
        )
    )
    return path


def test_suggest_proposes_the_known_missing_phrase(tmp_path: Path):
    engine = compile_rules(SHIPPED)
    items = read_labelled(_labelled(tmp_path))
    before = [engine.classify(i.post).severity.value for i in items]
    assert before[:3] != ["red_alert"] * 3
    traffic = [
        engine.classify(Post(id=f"r{i}", text=text))
        for i, text in enumerate(["A gribble vat in hall 9", "Nice weather for a picnic"])
    ]
    found = suggest(engine, items, {"gribble": items}, tried=3, traffic=traffic)
    top = found[0]
    assert (top.phrase, top.severity.value) == ("gribble vat", "red_alert")
    effect = top.effects["gribble"]
    assert effect.broken == 0
    assert effect.fixed >= 2
    assert effect.after > effect.before
    assert 'phrases: ["gribble vat"]' in top.yaml()
    assert top.traffic == 2
    assert dict(top.traffic_changed) == {f"{traffic[0].severity.value} -> red_alert": 1}
    # Proposed, never applied: the rules say what they said.
    assert [engine.classify(i.post).severity.value for i in items] == before


def test_ngrams_skip_stop_words_at_the_edges():
    assert "the gribble" not in ngrams("the gribble vat")
    assert {"gribble", "gribble vat"} <= ngrams("the gribble vat")


def test_cli_suggest_lists_the_phrase_with_its_effect(capsys, tmp_path: Path):
    path = _labelled(tmp_path)
    code, out, _ = run(capsys, "rules", "suggest", str(path), "--tried", "2", "--last", "0")
    assert code == 0
    assert '"gribble vat" -> red alert' in out
    assert f"{path}: fixes" in out
    code, out, _ = run(
        capsys, "rules", "suggest", str(path), "--json", "--tried", "1", "--last", "0"
    )
    assert json.loads(out)[0]["phrase"] == "gribble vat"
