"""The benchmarks run and print their figures (a benchmark that no longer runs measures nothing).
Tiny sizes: this checks they work, not how fast anything is."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

CASES = {
    "pipeline.py": (["--posts", "300"], {"posts_per_s", "p50_ms", "p99_ms", "redis_xadd_per_s"}),
    "rules_engine.py": (
        ["--seconds", "0.2", "--rounds", "1"],
        {"posts_per_s", "model_posts_per_s", "combined_posts_per_s"},
    ),
    "fanout.py": (["--subscriptions", "20"], {"deliveries_per_s"}),
    "sources.py": (["--items", "20", "--rounds", "2"], {"rss_items_per_s"}),
    "formats.py": (
        ["--incidents", "5", "--seconds", "0.05"],
        {"statuspage_updates_per_s", "cap_messages_per_s", "classify_hint_us", "refuse_bomb_us"},
    ),
    "correlation_pairs.py": ([], {"tune_precision", "heldout_precision", "heldout_recall"}),
    "console.py": (
        ["--incidents", "3", "--rounds", "2"],
        {"list_page_ms", "incident_page_ms", "rules_page_ms", "live_event_ms"},
    ),
    "oncall.py": (
        ["--seconds", "0.05", "--pages", "2"],
        {"matcher_checks_per_s", "on_call_us", "route_decide_us", "page_p50_ms"},
    ),
    "ingest_http.py": (
        ["--seconds", "0.3", "--batch", "5", "--connections", "2"],
        {"batch_posts_per_s", "single_requests_per_s"},
    ),
}


HELPERS = {"sink.py"}  # the HTTP target fanout.py and pipeline.py deliver to


def test_every_benchmark_is_exercised():
    assert {p.name for p in BENCH.glob("*.py")} - HELPERS == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_prints_its_figures(script, redis_url):
    args, expected = CASES[script]
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "REDALERT_REDIS_URL": redis_url},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert expected <= set(figures)
    assert all(figures[k] > 0 for k in expected)
