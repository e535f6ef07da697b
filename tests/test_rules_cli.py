"""`redalert rules test|eval|backtest`: what an operator sees, and the --json shapes."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from services.classify.rules import compile_rules
from services.cli.main import main
from shared import keys
from shared.models import Post
from shared.settings import get_settings
from tests.rules_helpers import KETTLE, SHIPPED

KETTLE = KETTLE.replace("[kettle]", "[kettle, leak]")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rules_test_highlights_what_fired(capsys):
    code, out, _ = run(capsys, "rules", "test", "Possible gas leak at the plant, not a drill?")
    assert code == 0
    lines = out.splitlines()
    # Two red-alert cues, both hedged (2 + 2), the hedge itself (1) and the question (0.5).
    assert lines[0].startswith("assessing (scores: red alert 0, assessing 5.5, all-clear 0")
    assert "[Possible] gas leak" not in out  # one mark per match, the longest phrase
    assert "[Possible] [gas leak] at the plant, [not a drill][?]" in out
    assert 'red alert cue (leak, 2): "gas leak" at 9-17 — hedged by hedge' in out
    assert "rules version " + compile_rules(SHIPPED).version in out


def test_rules_test_json_is_the_classification(capsys, tmp_path: Path):
    rules = tmp_path / "kettle.yaml"
    rules.write_text(KETTLE)
    code, out, _ = run(
        capsys, "rules", "test", "The kettle!", "--rules", str(rules), "--json", "--no-model"
    )
    assert code == 0
    c = json.loads(out)
    assert c["severity"] == "red_alert"
    assert c["scores"] == {"red_alert": 2.0, "assessing": 0.0, "no_danger": 0.0}
    assert c["hits"] == [
        {
            "rule": "kettle",
            "kind": "cue",
            "text": "kettle",
            "start": 4,
            "end": 10,
            "severity": "red_alert",
            "weight": 2.0,
            "effect": "counted",
            "by": None,
        }
    ]
    assert c["rules_version"] == compile_rules(KETTLE).version


def test_rules_test_with_a_broken_rules_file_fails_with_its_line(capsys, tmp_path: Path):
    rules = tmp_path / "bad.yaml"
    rules.write_text(KETTLE.replace("weight: 2", "weight: heavy"))
    code, _, err = run(capsys, "rules", "test", "x", "--rules", str(rules))
    assert code == 1
    assert err.startswith(f"{rules}:4: cues.0.weight: Input should be a valid number")


def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    rows = [
        ("a kettle", "red_alert"),  # right
        ("a leak", "red_alert"),  # right
        ("a kettle", "assessing"),  # predicted red_alert
        ("calm", "no_danger"),  # right
        ("calm", "assessing"),  # predicted no_danger
    ]
    lines = [json.dumps({"id": f"p{i}", "text": t, "label": x}) for i, (t, x) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rules_eval_json_has_the_scores_by_severity(capsys, tmp_path: Path):
    rules = tmp_path / "kettle.yaml"
    rules.write_text(KETTLE)
    code, out, _ = run(
        capsys, "rules", "eval", str(labelled(tmp_path)), "--rules", str(rules), "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["n"] == 5
    assert report["accuracy"] == 0.6
    assert report["per_class"] == {
        "no_danger": {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1},
        "assessing": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2},
        "red_alert": {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2},
    }
    assert report["macro_f1"] == round((0.6667 + 0.0 + 0.8) / 3, 4)
    assert report["confusion"] == {
        "no_danger": {"no_danger": 1, "assessing": 0, "red_alert": 0},
        "assessing": {"no_danger": 1, "assessing": 0, "red_alert": 1},
        "red_alert": {"no_danger": 0, "assessing": 0, "red_alert": 2},
    }
    assert [m["id"] for m in report["misclassified"]] == ["p2", "p4"]
    assert report["rules_version"] == compile_rules(KETTLE).version


def test_rules_eval_prints_a_table_and_the_misclassified(capsys, tmp_path: Path):
    rules = tmp_path / "kettle.yaml"
    rules.write_text(KETTLE)
    code, out, _ = run(capsys, "rules", "eval", str(labelled(tmp_path)), "--rules", str(rules))
    assert code == 0
    assert "  red alert       0.667   1.000   0.800        2" in out
    assert "macro-F1 0.489    accuracy 0.600" in out
    assert "  assessing            1          0          1" in out
    assert "misclassified (2):" in out
    assert "  p2: assessing -> red alert\n    a [kettle]" in out


def test_rules_eval_names_the_bad_line(capsys, tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": "no_danger"}\n{"text": "x", "label": "panic"}\n')
    code, _, err = run(capsys, "rules", "eval", str(path))
    assert code == 1
    assert err.startswith(f"{path}:2: 'panic' is not a valid Severity")


@pytest.fixture
def cli_env(redis_url: str, namespace: str, monkeypatch) -> Iterator[sync_redis.Redis]:
    """The CLI reads its settings from the environment: point it at this test's namespace."""
    monkeypatch.setenv("REDALERT_REDIS_URL", redis_url)
    monkeypatch.setenv("REDALERT_NAMESPACE", namespace)
    get_settings.cache_clear()
    client = sync_redis.Redis.from_url(redis_url)
    yield client
    client.delete(keys.Keys(namespace).stream(keys.CLASSIFIED))
    client.close()
    get_settings.cache_clear()


def test_rules_backtest_reports_what_would_change(capsys, cli_env, namespace, tmp_path: Path):
    shipped = compile_rules(SHIPPED)
    stream = keys.Keys(namespace).stream(keys.CLASSIFIED)
    texts = [
        "There's a leak coming from the radiator",  # red alert -> red alert
        "The kettle is whistling",  # no danger -> red alert
        "Possible leak on the Progress",  # assessing -> red alert (nothing hedges in KETTLE)
        "Still assessing with Moscow",  # assessing -> no danger
        "Nice view of the aurora",  # no danger -> no danger
    ]
    for i, text in enumerate(texts):
        c = shipped.classify(Post(id=f"p{i}", source="test", text=text))
        cli_env.xadd(stream, {"data": c.model_dump_json()})
    cli_env.xadd(stream, {"data": "not json"})
    rules = tmp_path / "kettle.yaml"
    rules.write_text(KETTLE)

    code, out, _ = run(capsys, "rules", "backtest", str(rules), "--last", "10", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["n"] == 5
    assert report["skipped"] == 1
    assert report["changed"] == 3
    assert report["changes"] == {
        "no_danger -> red_alert": 1,
        "assessing -> red_alert": 1,
        "assessing -> no_danger": 1,
    }
    assert report["examples"]["no_danger -> red_alert"][0]["post_id"] == "p1"
    assert report["old_versions"] == {shipped.version: 5}

    # --last counts from the newest; the human report names the changes with examples.
    code, out, _ = run(capsys, "rules", "backtest", str(rules), "--last", "2")
    assert code == 0
    assert "against the last 1 classified posts" in out
    assert "1 entries could not be read" in out
    assert "0 would change severity, 1 would not" in out
