"""Topic words that mean different things in different fields ("flight", "ship"), checked
against the seed story and the labelled posts (each labelled with its field, `kind`)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from services.classify.rules import Engine, load_rules_file
from shared.models import Post
from shared.settings import PROJECT_ROOT
from tests.conftest import SEED

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules_file(PROJECT_ROOT / "config" / "rules.yaml"))


def test_the_iss_leak_is_about_the_iss_not_aviation_or_maritime(engine: Engine):
    topics = set()
    for line in Path(SEED).read_text().splitlines():
        topics |= set(engine.classify(Post(text=json.loads(line)["text"])).topics)
    assert "iss" in topics
    assert topics.isdisjoint({"aviation", "maritime"})


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        ("The flight director told the crew to shelter", "space", "aviation"),
        ("Flight controllers see a pressure drop on the ISS", "iss", "aviation"),
        ("A Progress cargo ship is tumbling after undocking", "space", "maritime"),
        ("Our flight diverted to Shannon with smoke in the cabin", "aviation", "space"),
        ("A cargo ship lost propulsion in the Bosporus", "maritime", "space"),
    ],
)
def test_the_longer_phrase_says_what_a_word_means(engine, text, wanted, unwanted):
    topics = engine.classify(Post(text=text)).topics
    assert wanted in topics
    assert unwanted not in topics


def _topic_counts(engine: Engine) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            for topic in engine.classify(Post(text=d["text"])).topics:
                if topic in ("aviation", "maritime"):
                    counts[(topic, d.get("kind", "?"))] += 1
    return counts


def test_transport_keeps_its_topics_and_space_loses_the_borrowed_ones(engine: Engine):
    counts = _topic_counts(engine)
    # Floors and ceilings measured on the labelled sets when the space phrases were added
    # (space posts before: 9 aviation, 4 maritime — "flight director", "cargo ship").
    assert counts[("aviation", "transport")] >= 27
    assert counts[("maritime", "transport")] >= 14
    assert counts[("aviation", "space")] <= 2
    assert counts[("maritime", "space")] <= 2
