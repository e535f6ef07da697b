"""The shipped rules against the seed story and the labelled posts, and the posts themselves."""

import json
from collections import Counter
from pathlib import Path

import pytest

from services.classify.rules import Engine, load_rules_file
from services.classify.rules.evaluate import evaluate, read_labelled
from shared.models import Post
from shared.settings import PROJECT_ROOT
from shared.severity import Severity
from tests.conftest import SEED

DATA = Path(__file__).parent / "data"
TUNE, HELDOUT = DATA / "tune.jsonl", DATA / "heldout.jsonl"
# A second author's batch, split by line: odd lines tuned against first, even lines from the
# third round on.
FRESH_TUNE, FRESH_HELDOUT = DATA / "fresh-tune.jsonl", DATA / "fresh-heldout.jsonl"
# A third author's batch, written before reading the rules: never tuned on, never looked at
# post by post. The only held-out part left.
BLIND = DATA / "blind.jsonl"
PARTS = [TUNE, HELDOUT, FRESH_TUNE, FRESH_HELDOUT, BLIND]
KINDS = {
    "space",
    "quake",
    "wildfire",
    "weather",
    "industrial",
    "it",
    "health",
    "transport",
    "safety",
}
HARD = {"negated", "all_clear", "stand_down", "hedged", "past", "joke", "chatter", "drill"}


@pytest.fixture(scope="module")
def shipped() -> Engine:
    return Engine(load_rules_file(PROJECT_ROOT / "config" / "rules.yaml"))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed() -> list[dict]:
    return rows(Path(SEED))


@pytest.mark.parametrize("post", seed(), ids=lambda p: p["id"])
def test_every_seed_post_gets_its_label(shipped, post):
    fields = {k: post[k] for k in ("id", "source", "author", "text", "thread_id")}
    assert shipped.classify(Post(**fields)).severity is Severity(post["label"])


def test_the_seed_thread_reads_as_the_story(shipped):
    """Red alert at once, Roscosmos' reassurance is an all-clear, the watcher stands down."""
    by_id = {p["id"]: shipped.classify(Post(text=p["text"], source=p["source"])) for p in seed()}
    assert by_id["iss-1"].topics == ["iss"]
    assert by_id["iss-11"].all_clear
    assert not by_id["iss-11"].stand_down
    assert by_id["iss-12"].stand_down
    assert [i for i, c in by_id.items() if c.all_clear] == ["iss-11", "iss-12", "iss-13"]


def test_the_blind_batch_does_not_fall(shipped):
    """NEVER TUNED ON: a floor 0.03 under the figure measured once after the third round
    (0.854, from 0.783 before it), not a target to tune for. Only the totals are printed: a
    change that needs to see these posts one by one belongs to a new batch."""
    report = evaluate(shipped, read_labelled(BLIND))
    assert report.macro_f1 >= 0.82, f"macro-F1 {report.macro_f1:.3f} on posts never tuned on"


def test_the_first_held_out_part_reaches_the_target(shipped):
    # Held out for two rounds, tuned on since the third (with the other three parts).
    report = evaluate(shipped, read_labelled(HELDOUT))
    assert report.macro_f1 >= 0.85, report.as_json()["misclassified"]


@pytest.mark.parametrize(
    ("path", "floor"),
    [(TUNE, 0.95), (FRESH_TUNE, 0.95), (HELDOUT, 0.95), (FRESH_HELDOUT, 0.90)],
    ids=["tune", "fresh-tune", "heldout", "fresh-heldout"],
)
def test_the_tuning_parts_stay_where_they_were_tuned(shipped, path, floor):
    report = evaluate(shipped, read_labelled(path))
    assert report.macro_f1 >= floor, report.as_json()["misclassified"]


@pytest.mark.parametrize("path", PARTS, ids=lambda p: p.stem)
def test_each_part_covers_every_kind_severity_and_hard_case(path):
    data = rows(path)
    assert {r["kind"] for r in data} == KINDS
    for kind in KINDS:
        labels = Counter(r["label"] for r in data if r["kind"] == kind)
        assert set(labels) == {s.value for s in Severity}, kind
    labels = Counter(r["label"] for r in data)
    assert min(labels.values()) >= len(data) / 4, labels
    tags = Counter(t for r in data for t in r.get("tags", []))
    assert set(tags) >= HARD, HARD - set(tags)


def test_the_labelled_set_is_big_enough_and_its_parts_are_disjoint():
    tune, heldout = rows(TUNE), rows(HELDOUT)
    assert len(tune) + len(heldout) >= 300
    assert len(heldout) >= 100
    ids = [r["id"] for r in tune + heldout]
    assert len(ids) == len(set(ids))
    assert not {r["text"] for r in tune} & {r["text"] for r in heldout}
    assert all(r["id"].startswith("h-") for r in heldout)


def test_the_fresh_batch_is_new_and_its_halves_are_disjoint():
    fresh_tune, fresh_heldout = rows(FRESH_TUNE), rows(FRESH_HELDOUT)
    assert len(fresh_heldout) >= 100
    fresh = fresh_tune + fresh_heldout
    ids = [r["id"] for r in fresh]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("f-") for i in ids)
    older = {r["text"] for r in rows(TUNE) + rows(HELDOUT)}
    assert not {r["text"] for r in fresh_tune} & {r["text"] for r in fresh_heldout}
    assert not {r["text"] for r in fresh} & older


def test_the_blind_batch_is_new():
    blind = rows(BLIND)
    assert len(blind) >= 180
    ids = [r["id"] for r in blind]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("b-") for i in ids)
    older = {r["text"] for path in PARTS if path != BLIND for r in rows(path)}
    assert not {r["text"] for r in blind} & older


# --- the registers (issue 16): seven ways of writing, a blind part and a tune part each ----------

REGISTERS = DATA / "registers"
REGISTER_NAMES = {
    "ops_chat",
    "status_page",
    "official",
    "social",
    "non_native",
    "space_ops",
    "newswire",
}


@pytest.mark.parametrize("register", sorted(REGISTER_NAMES))
def test_each_register_has_a_balanced_blind_part_and_a_tune_part(register):
    blind, tune = (
        rows(REGISTERS / f"{register}-blind.jsonl"),
        rows(REGISTERS / f"{register}-tune.jsonl"),
    )
    assert len(blind) >= 60
    assert len(tune) >= 90
    for part, prefix in ((blind, f"r-{register}-b-"), (tune, f"r-{register}-t-")):
        assert {r["register"] for r in part} == {register}
        assert all(r["id"].startswith(prefix) for r in part)
        counts = Counter(r["label"] for r in part)
        assert set(counts) == {s.value for s in Severity}
        assert max(counts.values()) == min(counts.values()), counts  # balanced
    assert not {r["text"] for r in blind} & {r["text"] for r in tune}


def test_the_register_sets_are_new():
    new = [r for p in sorted(REGISTERS.glob("*.jsonl")) for r in rows(p)]
    assert {p.stem.rsplit("-", 1)[0] for p in REGISTERS.glob("*.jsonl")} == REGISTER_NAMES
    assert len({r["id"] for r in new}) == len(new)
    older = {r["text"] for path in PARTS for r in rows(path)}
    assert not {r["text"] for r in new} & older


def test_the_register_blind_parts_do_not_fall(shipped):
    """NEVER TUNED OR TRAINED ON: floors 0.03 under what was measured after tuning (rules alone
    0.833, from 0.792 before; with the model 0.902), totals only. Looking at these posts one by
    one spoils them."""
    from services.classify.model import Combined, ModelArtifact

    items = [i for p in sorted(REGISTERS.glob("*-blind.jsonl")) for i in read_labelled(p)]
    assert evaluate(shipped, items).macro_f1 >= 0.80
    model = ModelArtifact.load(PROJECT_ROOT / "config" / "model.json")
    combined = evaluate(Combined(shipped, model), items)
    assert combined.macro_f1 >= 0.87, f"macro-F1 {combined.macro_f1:.3f} with the model"


def test_with_the_model_the_seed_stays_whole_and_the_old_blind_batch_no_worse(shipped):
    from services.classify.model import Combined, ModelArtifact

    combined = Combined(shipped, ModelArtifact.load(PROJECT_ROOT / "config" / "model.json"))
    for post in seed():
        fields = {k: post[k] for k in ("id", "source", "author", "text", "thread_id")}
        assert combined.classify(Post(**fields)).severity is Severity(post["label"]), post["id"]
    assert evaluate(combined, read_labelled(BLIND)).macro_f1 >= 0.82
