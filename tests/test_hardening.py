"""Input that cannot hurt: no 500 from what a client sends; an honest 503 while Redis is away."""

import asyncio
import time

import httpx
import pytest

from shared.embedded import EmbeddedRedis, free_port


@pytest.fixture
async def api(make_settings, redis, run_services):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as client:
        yield client


SILENCE = {"matchers": {"topic": "fire"}, "author": "ana"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/silences", {**SILENCE, "duration": 1e300}, "body.duration"),
        ("POST", "/v1/silences", {**SILENCE, "duration": "99999999999d"}, "body.duration"),
        (
            "POST",
            "/v1/silences",
            {**SILENCE, "starts_at": "9999-12-31T00:00:00Z", "duration": "9d"},
            "body.duration",
        ),
        ("GET", "/v1/incidents?offset=400000000000000000000000000000000", None, "query.offset"),
        ("GET", "/v1/incidents?offset=4e32", None, "query.offset"),
        ("GET", "/v1/incidents?limit=-1", None, "query.limit"),
        (
            "POST",
            "/v1/subscriptions",
            {"name": "x", "urls": ["json://h.example/"], "repeat_interval": 1e300},
            "body.repeat_interval",
        ),
    ],
)
async def test_hostile_numbers_are_a_422_naming_the_field(api, method, path, body, field):
    r = await api.request(method, path, json=body)
    assert r.status_code == 422, r.text
    if field is not None:
        assert r.json()["error"].startswith(field), r.text


async def test_while_redis_is_away_the_api_answers_503_and_recovers_at_once(
    make_settings, redis, run_services
):
    port = free_port()
    own = EmbeddedRedis(port, None, persist=False).start()
    settings = make_settings(redis_url=own.url)
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with (
            run_services(settings, "ingest"),
            httpx.AsyncClient(base_url=base, timeout=60) as api,
        ):
            assert (await api.get("/v1/incidents")).status_code == 200
            await asyncio.to_thread(own.stop)
            down = await api.get("/v1/incidents")
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "5"
            assert "redis unreachable" in down.json()["error"]
            assert (await api.get("/readyz")).status_code == 503
            assert (await api.get("/healthz")).status_code == 200  # the process itself is fine
            await asyncio.to_thread(own.start)
            started = time.monotonic()
            back = await api.get("/v1/incidents")  # the first request after: no stale failure
            assert back.status_code == 200, back.text
            print(f"first answer after Redis came back: {time.monotonic() - started:.2f} s")
    finally:
        own.stop()


async def test_what_users_can_create_is_capped_with_a_409_naming_the_cap(
    make_settings, redis, run_services
):
    settings = make_settings(max_subscriptions=2, max_silences=1, max_sources=1)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as api:
        for i in range(2):
            sub = {"name": f"s{i}", "urls": [f"json://127.0.0.1:9/{i}"]}
            assert (await api.post("/v1/subscriptions", json=sub)).status_code == 201
        silence = {**SILENCE, "duration": "1h"}
        assert (await api.post("/v1/silences", json=silence)).status_code == 201
        hook = {"name": "h0", "kind": "webhook", "secret": "s" * 16}
        assert (await api.post("/v1/sources", json=hook)).status_code == 201
        over = [
            await api.post("/v1/subscriptions", json={"name": "s9", "urls": ["json://h.example/"]}),
            await api.post("/v1/silences", json=silence),
            await api.post("/v1/sources", json={**hook, "name": "h1"}),
        ]
    assert [r.status_code for r in over] == [409, 409, 409]
    errors = [r.json()["detail"] for r in over]
    assert "REDALERT_MAX_SUBSCRIPTIONS" in errors[0]
    assert "REDALERT_MAX_SILENCES" in errors[1]
    assert "REDALERT_MAX_SOURCES" in errors[2]


async def test_a_body_that_is_not_json_text_is_a_422_not_a_bare_400(api):
    r = await api.post(
        "/v1/posts", content=b"\xff\xfe\x00garbage", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith("body")
