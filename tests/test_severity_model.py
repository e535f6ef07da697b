"""The severity model: training, its file, how it combines with the rules, live reload, the CLI."""

import asyncio
import json
import logging
from pathlib import Path

import pytest
import sklearn

from services.classify.incidents import opens_incident
from services.classify.model import Combined, ModelAlone, ModelArtifact, ModelError
from services.classify.model.artifact import FORMAT
from services.classify.model.combine import MIXED, NOTHING, unsure
from services.classify.model.features import features, readable
from services.classify.model.train import Example, fit, train, training_files
from services.classify.rules import Engine, load_rules_file
from services.classify.rules.explain import explain
from services.classify.rules.live import LiveRules
from services.cli.main import main
from shared.models import Post, SourceHint
from shared.settings import PROJECT_ROOT, get_settings
from shared.severity import Severity
from tests.rules_helpers import api

SHIPPED_MODEL = PROJECT_ROOT / "config" / "model.json"
DATA = [PROJECT_ROOT / "tests" / "data", PROJECT_ROOT / "examples" / "iss-coolant-leak.jsonl"]
RED, ASSESSING, CLEAR = Severity.RED_ALERT, Severity.ASSESSING, Severity.NO_DANGER


@pytest.fixture(scope="module")
def rules() -> Engine:
    return Engine(load_rules_file(PROJECT_ROOT / "config" / "rules.yaml"))


def tiny(confidence: float = 0.6) -> ModelArtifact:
    """A model written by hand: "flat" and "gone" mean red alert, "quiet" means no danger."""
    red, clear = (-3.0, -1.0, 6.0), (6.0, 0.0, -3.0)
    weights = {"w flat": red, "w gone": red, "w quiet": clear}
    body = ModelArtifact(weights, (0.5, 0.0, -0.5), confidence, {"posts": 0}).dumps()
    return ModelArtifact.loads(body)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def write_set(path: Path, rows: list[tuple[str, str]], register: str = "test") -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"x{i}", "register": register, "label": label, "text": text}) + "\n"
            for i, (text, label) in enumerate(rows)
        )
    )
    return path


SMALL = [
    ("Fire in the warehouse, people trapped", "red_alert"),
    ("Explosion at the plant, evacuate now", "red_alert"),
    ("The site is down for every user", "red_alert"),
    ("Reports of smoke, unconfirmed", "assessing"),
    ("Some users see slow pages, investigating", "assessing"),
    ("Possible gas smell near the school", "assessing"),
    ("All clear, the warning was lifted", "no_danger"),
    ("Lovely day at the beach", "no_danger"),
    ("This album is fire", "no_danger"),
]


# --- features and the file ----------------------------------------------------------------------


def test_features_are_words_pairs_and_letter_groups():
    f = features("Dashboards went FLAT, flat!")
    assert f["w flat"] == 1  # a word counts once however often it is said
    assert f["p went flat"] == 1
    assert f["p ^ dashboards"] == 1
    assert f["c <fla"] == 1
    assert f["c at>"] == 1
    assert readable("p ^ dashboards") == "(start) dashboards"
    assert readable("c <fla") == "letters '<fla'"


def test_a_model_file_round_trips_and_its_version_is_its_content(tmp_path: Path):
    m = tiny()
    m.save(tmp_path / "m.json")
    again = ModelArtifact.load(tmp_path / "m.json")
    assert again.version == m.version
    assert again.weights == m.weights
    assert tiny(confidence=0.7).version != m.version


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not JSON"),
        ('{"format": "other"}', "not a severity model"),
        (json.dumps({"format": FORMAT, "classes": ["a", "b", "c"]}), "classes must be"),
        (
            json.dumps({"format": FORMAT, "classes": [s.value for s in Severity], "weights": {}}),
            "malformed",
        ),
        (
            json.dumps(
                {
                    "format": FORMAT,
                    "classes": [s.value for s in Severity],
                    "intercept": [0, 0, 0],
                    "weights": {"w x": [0, "nan", 0]},
                }
            ),
            "finite",
        ),
    ],
    ids=["json", "format", "classes", "intercept", "nan"],
)
def test_a_bad_model_file_is_refused_with_its_reason(tmp_path: Path, body: str, reason: str):
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(ModelError, match=reason):
        ModelArtifact.load(path)
    with pytest.raises(ModelError, match="cannot read"):
        ModelArtifact.load(tmp_path / "missing.json")


def test_the_fast_path_and_the_explained_path_agree():
    m = ModelArtifact.load(SHIPPED_MODEL)
    for text in ["Dashboards went flat, nobody can pay", "The tornado warning has been lifted"]:
        fast, slow = m.predict(text), m.predict(text, words=5)
        assert fast.probabilities == slow.probabilities
        assert fast.severity is slow.severity
        assert slow.words
        assert not fast.words


# --- training ------------------------------------------------------------------------------------


def test_training_is_deterministic():
    items = [Example(t, Severity(label)) for t, label in SMALL]
    first, second = fit(items, min_df=1), fit(list(reversed(items)), min_df=1)
    assert first.dumps() == second.dumps()
    assert first.version == second.version
    assert first.predict("Fire in the warehouse").severity is RED


def test_the_blind_parts_are_never_trained_on():
    names = [p.name for p in training_files(*DATA)]
    assert "tune.jsonl" in names
    assert "ops_chat-tune.jsonl" in names
    assert "iss-coolant-leak.jsonl" in names
    assert not [n for n in names if "blind" in n]


def test_the_shipped_model_is_what_training_on_the_repositorys_data_gives():
    """Retrain after changing any labelled set: `redalert model train`."""
    shipped = ModelArtifact.load(SHIPPED_MODEL)
    model = train(DATA)
    assert model.trained["data_digest"] == shipped.trained["data_digest"], "retrain the model"
    assert not [name for name in model.trained["sets"] if "blind" in name]
    if shipped.trained["scikit_learn"] == sklearn.__version__:
        # Same data, same library: the same model, up to the last rounded digit (numpy's and
        # scipy's builds move a weight by 0.0001 here and there; the file's digest with them).
        assert model.weights.keys() == shipped.weights.keys()
        for name, weights in model.weights.items():
            assert weights == pytest.approx(shipped.weights[name], abs=0.0005), name
        assert model.intercept == pytest.approx(shipped.intercept, abs=0.0005)


# --- rules first, the model where they are unsure ------------------------------------------------


def test_the_model_decides_where_nothing_fired(rules):
    c = Combined(rules, tiny()).classify(Post(text="All the dashboards went flat"))
    assert rules.classify(c.post).severity is CLEAR
    assert c.severity is RED
    assert c.model is not None
    assert c.model.decided
    assert c.model.unsure == NOTHING
    assert c.model.rules_severity is CLEAR
    assert opens_incident(c)  # no topic, no cue: the model's word is enough
    lines = explain(c)
    assert "the rules were unsure (nothing fired): they said no danger" in lines
    assert any(line.startswith("decided by: the model (red alert") for line in lines)


def test_sure_rules_are_not_second_guessed(rules):
    text = "Explosion and fire at the plant, two workers injured, evacuate now"
    c = Combined(rules, tiny()).classify(Post(text=f"{text}. quiet"))
    assert c.severity is RED
    assert c.model is None
    assert "decided by: the rules (sure, or no model in use)" in explain(c)


def test_the_model_never_talks_a_danger_word_down_alone(rules):
    c = Combined(rules, tiny(), words=3).classify(Post(text="Explosion. Quiet"))
    assert unsure(rules.classify(c.post)) is not None
    assert c.severity is RED
    assert c.model is not None
    assert c.model.severity is CLEAR
    assert not c.model.decided
    assert any("may lower a severity only where" in line for line in explain(c))


def test_on_mixed_signals_the_model_may_lower(rules):
    text = "Gas leak at the depot. All clear for the school, quiet here"
    before = rules.classify(Post(text=text))
    assert unsure(before) == MIXED
    assert before.severity is not CLEAR
    c = Combined(rules, tiny()).classify(Post(text=text))
    assert c.severity is CLEAR
    assert c.model is not None
    assert c.model.decided
    assert not c.all_clear
    assert not c.stand_down


def test_an_unsure_model_leaves_the_rules_answer(rules):
    c = Combined(rules, tiny(confidence=1.0)).classify(Post(text="the graphs went flat"))
    assert c.severity is CLEAR
    assert c.model is not None
    assert not c.model.decided
    assert any("decided by: the rules (the model's red alert" in line for line in explain(c))


def test_a_source_that_set_the_severity_is_not_second_guessed(rules):
    post = Post(text="the graphs went flat", severity=ASSESSING)
    c = Combined(rules, tiny()).classify(post)
    assert c.severity is ASSESSING
    assert c.model is None
    assert ModelAlone(rules, tiny()).classify(Post(text="quiet")).severity is CLEAR


def test_a_source_hint_that_decided_is_not_second_guessed(rules):
    hint = SourceHint(scheme="statuspage", values={"status": "investigating", "impact": "minor"})
    c = Combined(rules, tiny()).classify(Post(text="the graphs went flat", hint=hint))
    assert c.severity is ASSESSING
    assert c.model is None
    assert "decided by: the source's hint" in explain(c)


# --- a running service: a missing or bad file leaves the rules alone -----------------------------


async def test_a_missing_or_bad_model_file_leaves_the_rules_alone_with_a_warning(
    redis, make_settings, tmp_path: Path, caplog, rules
):
    path = tmp_path / "model.json"
    text = (PROJECT_ROOT / "config" / "rules.yaml").read_text()
    caplog.set_level(logging.INFO, logger="redalert.model")
    live = LiveRules(redis, make_settings(model_file=path), rules, text=text)
    assert "no severity model at" in caplog.text
    assert "the rules decide alone" in caplog.text
    assert live.engine is rules
    post = Post(text="All the dashboards went flat")
    assert live.engine.classify(post).severity is CLEAR

    path.write_text("{not a model")
    caplog.clear()
    live = LiveRules(redis, make_settings(model_file=path), rules, text=text)
    assert "severity model not used, the rules decide alone" in caplog.text
    assert live.engine is rules

    tiny().save(path)  # a good file appears: swapped in on the next look
    await live.sync()
    assert isinstance(live.engine, Combined)
    assert live.engine.classify(post).severity is RED

    caplog.clear()
    path.write_text('{"format": "nope"}')
    await live.sync()
    assert "severity model not applied, keeping " + tiny().version in caplog.text
    assert live.engine.classify(post).severity is RED  # the good one stays

    path.unlink()
    await live.sync()
    assert live.engine is rules
    assert "removed: the rules decide alone" in caplog.text


async def test_a_pinned_engine_is_used_alone(redis, make_settings, tmp_path: Path, rules):
    tiny().save(tmp_path / "model.json")
    live = LiveRules(redis, make_settings(model_file=tmp_path / "model.json"), rules)
    assert live.engine is rules


# --- the CLI -------------------------------------------------------------------------------------


def test_rules_eval_by_register_reports_each_layer(capsys, tmp_path: Path):
    data = write_set(tmp_path / "a.jsonl", SMALL[:5], register="ops")
    more = write_set(tmp_path / "b.jsonl", SMALL[5:], register="news")
    tiny().save(tmp_path / "m.json")
    args = ["rules", "eval", str(data), str(more), "--by", "register", "--model"]
    code, out, _ = run(capsys, *args, str(tmp_path / "m.json"), "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report["layers"]) == {"rules", "model alone", "combined"}
    groups = report["by"]["register"]
    assert set(groups) == {"ops", "news"}
    assert groups["ops"]["rules"]["n"] == 5
    assert groups["news"]["combined"]["n"] == 4
    code, out, _ = run(capsys, *args, str(tmp_path / "m.json"))
    assert "by register (macro-F1 / accuracy)" in out
    assert "model alone" in out
    code, out, _ = run(capsys, "rules", "eval", str(data), "--no-model", "--json")
    assert "layers" not in json.loads(out)


def test_rules_eval_warns_and_goes_on_without_a_usable_model(capsys, tmp_path: Path):
    data = write_set(tmp_path / "a.jsonl", SMALL)
    args = ["rules", "eval", str(data), "--model", str(tmp_path / "none.json"), "--json"]
    code, out, err = run(capsys, *args)
    assert code == 0
    assert "warning:" in err
    assert "the rules alone" in err
    assert "layers" not in json.loads(out)


def test_rules_test_explains_both_layers(capsys, tmp_path: Path):
    tiny().save(tmp_path / "m.json")
    code, out, _ = run(
        capsys, "rules", "test", "the graphs went flat", "--model", str(tmp_path / "m.json")
    )
    assert code == 0
    assert out.startswith("red alert")
    assert f"model {tiny().version}: red alert" in out
    assert 'weighed most for red alert: "flat"' in out
    assert "decided by: the model" in out


def test_train_writes_a_versioned_file_keeps_the_previous_and_rolls_back(capsys, tmp_path: Path):
    out = tmp_path / "model.json"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write_set(tmp_path / "one" / "a.jsonl", SMALL)
    (tmp_path / "one" / "x-blind.jsonl").write_text("not even JSON")  # never read: blind
    code, printed, err = run(
        capsys, "model", "train", "--data", str(tmp_path / "one"), "--out", str(out), "--json"
    )
    assert code == 0, err
    v1 = json.loads(printed)["version"]
    assert ModelArtifact.load(out).version == v1
    assert not out.with_suffix(".json.previous").exists()
    write_set(tmp_path / "two" / "a.jsonl", [*SMALL, ("The servers are all gone", "red_alert")])
    code, printed, _ = run(
        capsys, "model", "train", "--data", str(tmp_path / "two"), "--out", str(out), "--json"
    )
    v2 = json.loads(printed)["version"]
    assert v2 != v1
    assert ModelArtifact.load(out).version == v2
    assert ModelArtifact.load(tmp_path / "model.json.previous").version == v1
    code, printed, _ = run(capsys, "model", "rollback", str(out))
    assert code == 0
    assert v1 in printed
    assert ModelArtifact.load(out).version == v1
    assert ModelArtifact.load(tmp_path / "model.json.previous").version == v2
    code, printed, _ = run(capsys, "model", "show", str(out))
    assert code == 0
    assert v1 in printed


# --- corrections ---------------------------------------------------------------------------------

CORRECTED = "the badge readers at the door are slow today"


@pytest.fixture
def cli_env(redis_url: str, namespace: str, monkeypatch):
    monkeypatch.setenv("REDALERT_REDIS_URL", redis_url)
    monkeypatch.setenv("REDALERT_NAMESPACE", namespace)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_a_correction_through_the_api_changes_the_next_models_answer(
    capsys, cli_env, settings, run_services, tmp_path: Path
):
    assert ModelArtifact.load(SHIPPED_MODEL).predict(CORRECTED).severity is CLEAR
    async with run_services(settings, "ingest"), api(settings) as client:
        r = await client.post(
            "/v1/posts/chat/b-1/label", json={"label": "red_alert", "text": CORRECTED}
        )
        assert r.status_code < 300, r.text
    out = tmp_path / "model.json"
    code, printed, err = await asyncio.to_thread(
        run, capsys, "model", "train", "--feedback", "--out", str(out), "--json"
    )
    assert code == 0, err
    assert json.loads(printed)["corrections"] == 1
    assert ModelArtifact.load(out).predict(CORRECTED).severity is RED


def test_an_all_clear_said_alone_is_not_second_guessed(rules):
    doubting = ModelArtifact.loads(
        ModelArtifact({"w crew": (-5.0, 5.0, 0.0)}, (0.0, 0.0, 0.0), 0.6, {}).dumps()
    )
    c = Combined(rules, doubting).classify(Post(text="The crew are not in any danger"))
    assert c.severity is CLEAR
    assert c.all_clear
    assert c.model is None
