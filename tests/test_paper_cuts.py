"""What a newcomer trips over first: each of these was reported, each is fixed and stays fixed."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import free_port
from shared.models import Post
from tests.conftest import SEED, eventually

BIN = Path(sys.executable).parent


@pytest.fixture
async def api(make_settings: Any, redis: Any, run_services: Any):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as client:
        client.settings = settings  # type: ignore[attr-defined]
        yield client


def _cli(api: httpx.AsyncClient, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDALERT_")}
    return subprocess.run(
        [BIN / "redalert", *args, "--url", str(api.base_url)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_subscription_names_are_unique(api: httpx.AsyncClient):
    first = await api.post("/v1/subscriptions", json={"name": "Ops", "urls": ["console://"]})
    assert first.status_code == 201
    again = await api.post("/v1/subscriptions", json={"name": "ops", "urls": ["console://"]})
    assert again.status_code == 409
    assert "'Ops' exists" in again.json()["detail"]
    other = await api.post("/v1/subscriptions", json={"name": "other", "urls": ["console://"]})
    renamed = await api.patch(f"/v1/subscriptions/{other.json()['id']}", json={"name": "OPS"})
    assert renamed.status_code == 409
    assert len((await api.get("/v1/subscriptions")).json()) == 2


async def test_two_demos_share_one_subscription_and_the_walkthrough_then_works(
    api: httpx.AsyncClient,
):
    for _ in range(2):
        demo = await asyncio.to_thread(_cli, api, "demo", "--delay", "0")
        assert demo.returncode == 0, demo.stderr
        assert "duplicate" not in demo.stderr  # the second demo tells the story again
    names = [s["name"] for s in (await api.get("/v1/subscriptions")).json()]
    assert names == ["demo console"]
    # "The same by hand", in the README's order, after the demo: posts are accepted.
    by_hand = await asyncio.to_thread(_cli, api, "replay", SEED, "--fresh")
    assert by_hand.returncode == 0, by_hand.stderr
    assert by_hand.stderr.count("accepted") == 14
    # Without --fresh, the file the demo sent comes back as duplicates (the README says so).
    plain = await asyncio.to_thread(_cli, api, "replay", SEED)
    assert plain.stderr.count("accepted") + plain.stderr.count("duplicate") == 14


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("application/json", 422)],
)
async def test_plain_text_gets_told_to_send_json(
    api: httpx.AsyncClient, content_type: str, status: int
):
    body = b'"a leak on the ISS"' if status == 422 else b"a leak on the ISS"
    r = await api.post("/v1/posts", content=body, headers={"content-type": content_type})
    assert r.status_code == status
    assert 'send JSON: {"text": "…"}' in r.json()["error"]
    assert "PostIn" not in r.text


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("https://hooks.example.org/abc", "jsons://"),
        ("http://hooks.example.org/abc", "json://"),
        ("slak://T000/B000/tokenzzz", "did you mean slack://?"),
    ],
)
async def test_a_url_apprise_cannot_send_to_gets_the_nearest_scheme(
    api: httpx.AsyncClient, url: str, hint: str
):
    r = await api.post("/v1/subscriptions", json={"name": "x", "urls": [url]})
    assert r.status_code == 422
    assert hint in r.json()["error"]
    assert "tokenzzz" not in r.text


async def test_a_down_target_gets_a_readable_error(api: httpx.AsyncClient):
    port = free_port()
    sub = await api.post(
        "/v1/subscriptions", json={"name": "mm", "urls": [f"mmost://127.0.0.1:{port}/abcdefghijk"]}
    )
    answer = await api.post(f"/v1/subscriptions/{sub.json()['id']}/test")
    (result,) = answer.json()["results"]
    assert result["ok"] is False
    assert "None" not in result["error"]
    assert f"127.0.0.1:{port}" in result["error"]


async def test_incidents_keep_their_internal_fields_to_themselves(api: httpx.AsyncClient):
    post = Post(text="Red alert: fire in the reactor hall, evacuate now")
    await api.post("/v1/posts", json={"text": post.text})

    async def opened() -> bool:
        return bool((await api.get("/v1/incidents")).json())

    await eventually(opened, timeout=20)
    (incident,) = (await api.get("/v1/incidents")).json()
    assert "terms" not in incident
    detail = (await api.get(f"/v1/incidents/{incident['id']}")).json()
    assert "terms" not in detail["incident"]


def test_a_closed_pipe_ends_quietly():
    run = subprocess.run(
        f"'{BIN}/redalert' rules eval tests/data/tune.jsonl | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    assert run.stdout.strip()
    assert "Traceback" not in run.stderr
    assert "BrokenPipeError" not in run.stderr


def test_version():
    run = subprocess.run([BIN / "redalert", "--version"], capture_output=True, text=True)
    assert run.returncode == 0
    assert run.stdout.startswith("redalert ")
