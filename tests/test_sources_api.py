"""/v1/sources: validation, auth, secrets kept secret, polling on demand, signed webhook pushes;
and the `redalert sources` command that drives it."""

import asyncio
import json
from typing import Any

import pytest

from services.cli.main import main as cli
from shared import keys
from shared.signing import HEADER as SIGNATURE_HEADER
from shared.signing import sign
from tests.conftest import eventually
from tests.source_servers import FeedDocument, Item, SourceServer
from tests.test_sources_polling import FAST, api, published

TOKEN = "api-token-for-tests"
SECRET = "webhook-secret-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server():
    s = SourceServer().start()
    yield s
    s.stop()


def error_locs(response) -> list[list[Any]]:
    return [e["loc"] for e in response.json()["detail"]]


async def test_bad_sources_are_refused_naming_the_field(make_settings, run_services):
    settings = make_settings(**FAST)
    async with run_services(settings, "ingest"), api(settings) as client:
        bad_kind = await client.post(
            "/v1/sources", json={"name": "x", "kind": "gopher", "url": "http://a.example/"}
        )
        bad_url = await client.post(
            "/v1/sources", json={"name": "x", "kind": "rss", "url": "ftp://a.example/feed"}
        )
        no_target = await client.post(
            "/v1/sources", json={"name": "x", "kind": "mastodon", "url": "https://m.example"}
        )
        no_secret = await client.post("/v1/sources", json={"name": "x", "kind": "webhook"})
        nothing_made = (await client.get("/v1/sources")).json()
    assert bad_kind.status_code == 422
    assert error_locs(bad_kind) == [["body", "kind"]]
    assert bad_kind.json()["error"].startswith("body.kind: Input should be 'rss', 'mastodon'")
    assert error_locs(bad_url) == [["body", "url"]]
    assert "http:// or https://" in bad_url.json()["error"]
    assert error_locs(no_target) == [["body", "list"]]
    assert error_locs(no_secret) == [["body", "secret"]]
    assert nothing_made == []


async def test_writes_need_the_token_and_secrets_are_never_shown(
    make_settings, run_services, server
):
    settings = make_settings(api_token=TOKEN, **FAST)
    url = server.route("/feed.xml", FeedDocument([]))
    spec = {
        "name": "m",
        "kind": "mastodon",
        "url": server.url(),
        "list": "7",
        "token": "tok-9f8e7d",
    }
    async with run_services(settings, "ingest"), api(settings) as client:
        assert (await client.post("/v1/sources", json=spec)).status_code == 401
        created = await client.post("/v1/sources", json=spec, headers=AUTH)
        assert created.status_code == 201, created.text
        again = await client.post("/v1/sources", json=spec, headers=AUTH)
        hook = await client.post(
            "/v1/sources",
            json={"name": "relay", "kind": "webhook", "secret": SECRET},
            headers=AUTH,
        )
        feed = await client.post(
            "/v1/sources", json={"name": "feed", "kind": "rss", "url": url}, headers=AUTH
        )
        assert (await client.get("/v1/sources")).status_code == 401  # reads need a token too
        listed = await client.get("/v1/sources", headers=AUTH)
        assert (await client.delete("/v1/sources/m")).status_code == 401
        deleted = await client.delete("/v1/sources/m", headers=AUTH)
        gone = await client.get("/v1/sources/m", headers=AUTH)
        deleted_again = await client.delete("/v1/sources/m", headers=AUTH)
    assert again.status_code == 409
    assert "exists" in again.json()["detail"]
    assert hook.status_code == feed.status_code == 201
    shown = json.dumps([created.json(), hook.json(), listed.json()])
    assert "tok-9f8e7d" not in shown
    assert SECRET not in shown
    assert created.json()["token"] == hook.json()["secret"] == "****"
    assert [s["name"] for s in listed.json()] == ["feed", "m", "relay"]
    assert (deleted.status_code, gone.status_code, deleted_again.status_code) == (204, 404, 404)


async def test_poll_now_answers_what_it_did(make_settings, run_services, server, redis):
    settings = make_settings(**FAST)
    feed = FeedDocument([Item("1", "Leak on the station", "<p>Radiator leak</p>")])
    url = server.route("/feed.xml", feed)
    async with run_services(settings, "ingest"), api(settings) as client:
        # A long interval: only the first poll, at creation, and the ones asked for happen.
        spec = {"name": "feed", "kind": "rss", "url": url, "interval_s": 3600}
        assert (await client.post("/v1/sources", json=spec)).status_code == 201
        await eventually(lambda: server.requests_to("/feed.xml"))
        first = (await client.post("/v1/sources/feed/poll")).json()
        feed.add(Item("2", "Crew safe", "<p>Not in any danger</p>"))
        second = (await client.post("/v1/sources/feed/poll")).json()
        missing = await client.post("/v1/sources/nope/poll")
        await client.post(
            "/v1/sources", json={"name": "relay", "kind": "webhook", "secret": SECRET}
        )
        webhook_poll = await client.post("/v1/sources/relay/poll")
    assert first["summary"] == "not modified"
    assert (second["ingested"], second["error"], second["summary"]) == (
        1,
        None,
        "1 new, 0 already seen",
    )
    assert missing.status_code == 404
    assert webhook_poll.status_code == 409
    assert len(await published(redis, settings)) == 2


async def test_signed_pushes_are_published_and_unsigned_ones_refused(
    make_settings, run_services, redis
):
    settings = make_settings(api_token=TOKEN, **FAST)
    stream = f"{settings.namespace}:{keys.POSTS}"
    body = json.dumps(
        [
            {"id": "a1", "text": "Coolant leak confirmed on the radiator", "source": "spoofed"},
            {"id": "a2", "text": "Crew sheltering", "thread_id": "leak"},
        ]
    ).encode()
    headers = {"content-type": "application/json"}
    async with run_services(settings, "ingest"), api(settings) as client:
        r = await client.post(
            "/v1/sources",
            json={"name": "relay", "kind": "webhook", "secret": SECRET, "post_source": "relay"},
            headers=AUTH,
        )
        assert r.status_code == 201, r.text
        path = "/v1/sources/relay/posts"
        unsigned = await client.post(path, content=body, headers=headers)
        wrong = await client.post(
            path,
            content=body,
            headers={**headers, SIGNATURE_HEADER: sign("not-the-secret!!", body)},
        )
        tampered = await client.post(
            path,
            content=body.replace(b"Crew", b"Nobody"),
            headers={**headers, SIGNATURE_HEADER: sign(SECRET, body)},
        )
        assert await redis.xlen(stream) == 0  # nothing published by any of those
        signed = {**headers, SIGNATURE_HEADER: sign(SECRET, body)}
        accepted = await client.post(path, content=body, headers=signed)
        replayed = await client.post(path, content=body, headers=signed)
        bad_json = b"{not json"
        invalid = await client.post(
            path, content=bad_json, headers={SIGNATURE_HEADER: sign(SECRET, bad_json)}
        )
        no_text = json.dumps({"id": "a3"}).encode()
        missing_field = await client.post(
            path, content=no_text, headers={SIGNATURE_HEADER: sign(SECRET, no_text)}
        )
        unknown = await client.post("/v1/sources/nope/posts", content=body, headers=signed)
        status = (await client.get("/v1/sources/relay", headers=AUTH)).json()["status"]
    assert [unsigned.status_code, wrong.status_code, tampered.status_code] == [401, 401, 401]
    assert SIGNATURE_HEADER in unsigned.json()["detail"]
    assert accepted.status_code == 202
    assert accepted.json() == {"accepted": ["a1", "a2"], "duplicates": []}
    assert replayed.json() == {"replayed": True, "accepted": []}  # tests/test_webhook_replay.py
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body"]
    assert missing_field.status_code == 422
    assert missing_field.json()["detail"][0]["loc"] == ["body", "text"]
    assert unknown.status_code == 404
    posts = await published(redis, settings)
    assert [(p["id"], p["source"]) for p in posts] == [("a1", "relay"), ("a2", "relay")]
    assert status["items_ingested"] == 2


async def test_the_sources_command(make_settings, run_services, server, redis, capsys):
    settings = make_settings(api_token=TOKEN, **FAST)
    url = server.route("/feed.xml", FeedDocument([Item("1", "Leak", "<p>Radiator leak</p>")]))
    base = ["--url", f"http://127.0.0.1:{settings.http_port}", "--token", TOKEN]

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli, ["sources", *args, *base])
        out, err = capsys.readouterr()
        return code, out, err

    async with run_services(settings, "ingest"):
        added = await run("add", "news", "rss", url, "--interval", "3600")
        bad = await asyncio.to_thread(_exit_code, ["sources", "add", "x", "rss", "nope", *base])
        bad_err = capsys.readouterr().err
        polled = await run("poll-once")
        listed = await run("list")
        as_json = await run("list", "--json")
        removed = await run("rm", "news")
        after = await run("list")
    assert added[0] == 0
    assert "news" in added[1]
    assert bad == 1
    assert "body.url: must be an http:// or https:// URL with a host" in bad_err
    assert polled[0] == 0
    assert "news" in polled[1]
    assert "news" in listed[1]
    assert "rss" in listed[1]
    (shown,) = json.loads(as_json[1])
    assert shown["name"] == "news"
    assert shown["status"]["items_ingested"] == 1
    assert removed[0] == 0
    assert "news" not in after[1]
    assert len(await published(redis, settings)) == 1


def _exit_code(argv: list[str]) -> int:
    try:
        return cli(argv)
    except SystemExit as e:
        return int(e.code or 0)
