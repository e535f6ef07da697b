"""Metrics: each one moves when its event happens, every replica can be scraped, and the
exposition passes `promtool check metrics` (Debian's `prometheus` package; CI installs it)."""

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from shared import keys
from shared.embedded import free_port
from shared.settings import PROJECT_ROOT, Settings
from tests.conftest import eventually
from tests.sinks import HttpSink

RED = "Red alert: fire on board the station, the crew is evacuating"


def value(text: str, name: str, **labels: str) -> float:
    """The sample's value in a scrape (0 when absent: a counter not yet incremented)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture
def settings_with_rules(make_settings: Any, tmp_path: Path) -> Settings:
    rules = tmp_path / "rules.yaml"
    rules.write_text((PROJECT_ROOT / "config" / "rules.yaml").read_text())
    return make_settings(rules_file=rules, rules_reload_s=0.1)


async def test_each_metric_moves_when_its_event_happens(
    settings_with_rules: Settings, redis: Redis, run_services: Any, sink: HttpSink
):
    settings = settings_with_rules
    k = keys.Keys(settings.namespace)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:

        async def scrape() -> str:
            r = await api.get("/metrics")
            assert r.status_code == 200
            return r.text

        before = await scrape()
        assert value(before, "redalert_build_info") == 1
        sub = {"name": "sink", "urls": [sink.url], "min_severity": "assessing"}
        assert (await api.post("/v1/subscriptions", json=sub)).status_code == 201
        assert (await api.post("/v1/posts", json={"id": "m1", "text": RED})).status_code == 202
        await api.post("/v1/posts", json={"id": "m1", "text": RED})  # a duplicate
        await api.post("/v1/posts", content=b"plain", headers={"content-type": "text/plain"})
        await redis.xadd(k.stream(keys.POSTS), {"data": b"\xff not json"})  # dead-lettered
        await eventually(lambda: len(sink.messages()) >= 1, timeout=30)
        # A refused rules file, then a good change.
        rules = Path(str(settings.rules_file))
        good = await asyncio.to_thread(rules.read_text)
        await asyncio.to_thread(rules.write_text, "cues: [this is not: valid")
        await eventually(
            lambda: _moved(scrape, before, "redalert_rules_reloads_total", outcome="refused"), 30
        )
        changed = good.replace("\ntopics:\n", "\ntopics:\n  metrics-test: [zzqqx]\n", 1)
        await asyncio.to_thread(rules.write_text, changed)
        await eventually(
            lambda: _moved(scrape, before, "redalert_rules_reloads_total", outcome="ok"), 30
        )
        await eventually(
            lambda: _moved(scrape, before, "redalert_dead_letters_total", stream="posts"), 30
        )
        after = await scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("redalert_posts_total", outcome="accepted") == 1
    assert delta("redalert_posts_total", outcome="duplicate") == 1
    assert delta("redalert_posts_total", outcome="refused") == 1
    assert (
        delta("redalert_http_requests_total", method="POST", route="/v1/posts", status="202") == 2
    )
    assert (
        delta("redalert_http_requests_total", method="POST", route="/v1/posts", status="415") == 1
    )
    assert delta("redalert_http_request_duration_seconds_count", route="/v1/posts") == 3
    assert delta("redalert_classifications_total", severity="red_alert") == 1
    assert delta("redalert_post_classified_seconds_count") >= 1
    assert delta("redalert_incident_transitions_total", kind="opened") == 1
    assert delta("redalert_post_event_seconds_count") >= 1
    assert delta("redalert_deliveries_total", scheme="json", outcome="sent") == 1
    assert delta("redalert_post_delivered_seconds_count", scheme="json", outcome="sent") == 1
    assert delta("redalert_dead_letters_total", stream="posts") == 1
    assert delta("redalert_rules_reloads_total", outcome="refused") >= 1
    assert delta("redalert_rules_reloads_total", outcome="ok") >= 1
    # The deployment's state, from Redis.
    assert value(after, "redalert_open_incidents", severity="red_alert") == 1
    assert value(after, "redalert_deadletter_entries") == 1
    assert value(after, "redalert_stream_lag", stream="posts", group="classify") == 0


async def _moved(scrape: Any, before: str, name: str, **labels: str) -> bool:
    return value(await scrape(), name, **labels) > value(before, name, **labels)


async def test_lag_pending_and_oldest_pending_age_show_stuck_work(
    settings: Settings, redis: Redis, run_services: Any
):
    k = keys.Keys(settings.namespace)
    stream = k.stream(keys.POSTS)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as api:
        for n in range(3):
            await api.post("/v1/posts", json={"text": f"smoke seen {n}"})
        # A classify replica that read one entry and died: pending, and ageing.
        await redis.xreadgroup("classify", "dead", {stream: ">"}, count=1)
        await asyncio.sleep(0.05)
        text = (await api.get("/metrics")).text
    assert value(text, "redalert_stream_lag", stream="posts", group="classify") == 2
    assert value(text, "redalert_stream_pending", stream="posts", group="classify") == 1
    assert value(text, "redalert_stream_oldest_pending_seconds", stream="posts") > 0
    assert value(text, "redalert_stream_consumers", stream="posts") == 1


async def test_circuits_open_and_sources_failing(
    make_settings: Any, redis: Redis, run_services: Any
):
    settings = make_settings(circuit_failures=1, send_attempts=1, poll_timeout_s=1)
    base = f"http://127.0.0.1:{settings.http_port}"
    dead = f"json://127.0.0.1:{free_port()}/"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:
        await api.post("/v1/subscriptions", json={"name": "down", "urls": [dead]})
        feed = {"name": "feed", "kind": "rss", "url": f"http://127.0.0.1:{free_port()}/feed"}
        assert (await api.post("/v1/sources", json=feed)).status_code == 201
        await api.post("/v1/posts", json={"text": RED})

        async def state() -> bool:
            text = (await api.get("/metrics")).text
            return (
                value(text, "redalert_circuits_open") == 1
                and value(text, "redalert_sources_failing") == 1
            )

        await eventually(state, timeout=60)


async def test_classify_and_notify_are_scraped_on_their_metrics_port(
    make_settings: Any, redis: Redis, run_services: Any
):
    settings = make_settings(metrics_port=free_port(), metrics_token="scrape-token-123")
    url = f"http://127.0.0.1:{settings.metrics_port}"
    auth = {"Authorization": "Bearer scrape-token-123"}
    async with run_services(settings, "classify", "notify"), httpx.AsyncClient() as client:
        r = await client.get(f"{url}/metrics", headers=auth)
        anonymous = await client.get(f"{url}/metrics")
        wrong = await client.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
        missing = await client.get(f"{url}/", headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert value(r.text, "redalert_build_info") == 1
    assert "redalert_stream_lag" in r.text
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert missing.status_code == 404


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_promtool_accepts_the_exposition(
    settings: Settings, redis: Redis, run_services: Any, sink: HttpSink
):
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:
        await api.post("/v1/subscriptions", json={"name": "s", "urls": [sink.url]})
        await api.post("/v1/posts", json={"text": RED})
        await eventually(lambda: len(sink.messages()) >= 1, timeout=30)
        text = (await api.get("/metrics")).text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == ""
    assert check.stderr.strip() == ""


def _exemplars(text: str, family: str) -> list[dict[str, str]]:
    (found,) = [f for f in openmetrics_families(text) if f.name == family]
    return [dict(s.exemplar.labels) for s in found.samples if s.exemplar is not None]


async def test_an_openmetrics_scrape_shows_which_post_each_latency_bucket_saw(
    settings: Settings, redis: Redis, run_services: Any, sink: HttpSink
):
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:
        await api.post("/v1/subscriptions", json={"name": "s", "urls": [sink.url]})
        await api.post("/v1/posts", json={"text": RED, "id": "slow-one", "source": "iss"})
        await eventually(lambda: len(sink.messages()) >= 1, timeout=30)
        accept = {"Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"}
        om = await api.get("/metrics", headers=accept)
        plain = await api.get("/metrics")
        incident_id = (await api.get("/v1/incidents")).json()[0]["id"]
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert {"post": "iss:slow-one"} in _exemplars(om.text, "redalert_post_classified_seconds")
    assert {"post": "iss:slow-one"} in _exemplars(om.text, "redalert_post_event_seconds")
    delivered = _exemplars(om.text, "redalert_post_delivered_seconds")
    assert {"incident_id": incident_id} in delivered
    # The Prometheus text (what promtool checks) is as before: no exemplars in it.
    assert plain.headers["content-type"].startswith("text/plain")
    assert " # {" not in plain.text


DEPLOY = PROJECT_ROOT / "deploy"


async def _exposed_names(redis: Redis, namespace: str) -> set[str]:
    from services import metrics

    names = set()
    text = (await metrics.exposition(redis, namespace)).decode()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


async def test_the_dashboard_and_the_alerts_use_only_metrics_that_exist(
    redis: Redis, namespace: str
):
    import json
    import re

    import yaml

    exposed = await _exposed_names(redis, namespace)
    dashboard = json.loads((DEPLOY / "grafana" / "redalert.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {name for e in exprs for name in re.findall(r"\bredalert_[a-z_]+\b", e)}
    assert len(used) >= 15
    assert sorted(used - exposed) == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    rules = DEPLOY / "prometheus"
    check = subprocess.run(
        ["promtool", "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"], cwd=rules, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


async def test_a_hanging_target_shows_in_the_lane_gauges(
    make_settings: Any, redis: Redis, run_services: Any
):
    hanging = HttpSink(delay=4).start()
    settings = make_settings(send_timeout_s=10)
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:
            await api.post("/v1/subscriptions", json={"name": "slow", "urls": [hanging.url]})
            before = (await api.get("/metrics")).text
            assert value(before, "redalert_notify_lane_deliveries") == 0
            await api.post("/v1/posts", json={"text": RED})

            async def busy() -> bool:
                text = (await api.get("/metrics")).text
                return (
                    value(text, "redalert_notify_lane_deliveries") == 1
                    and value(text, "redalert_notify_lane_deepest") == 1
                )

            async def drained() -> bool:
                text = (await api.get("/metrics")).text
                return value(text, "redalert_notify_lane_deliveries") == 0

            await eventually(busy, timeout=30)
            await eventually(drained, timeout=30)
            assert len(hanging.messages()) == 1
    finally:
        hanging.stop()
