"""The HTTP front door, over real HTTP: validation, limits, auth, masking, readiness."""

import asyncio
import json

import httpx
import pytest

from services.ingest import publish, wire
from services.ingest.routes.posts import PostIn
from shared import keys
from shared.codec import decode
from shared.models import Post, utcnow


@pytest.fixture
async def api(make_settings, redis, run_services, request):
    overrides = getattr(request, "param", {})
    settings = make_settings(**overrides)
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as client:
        client.settings = settings
        yield client


def errors(response: httpx.Response) -> str:
    return response.json()["error"]


async def test_one_post_is_published_once(api, redis):
    r = await api.post("/v1/posts", json={"id": "a", "text": "Tornado warning", "source": "nws"})
    assert r.status_code == 202
    assert r.json() == {"accepted": ["a"], "duplicates": []}
    again = await api.post(
        "/v1/posts", json={"id": "a", "text": "Tornado warning", "source": "nws"}
    )
    assert again.json() == {"accepted": [], "duplicates": ["a"]}
    other_source = await api.post("/v1/posts", json={"id": "a", "text": "x", "source": "other"})
    assert other_source.json()["accepted"] == ["a"]
    entries = await redis.xrange(f"{api.settings.namespace}:{keys.POSTS}")
    assert [json.loads(f[b"data"])["source"] for _, f in entries] == ["nws", "other"]


async def test_a_post_without_id_gets_one(api):
    r = await api.post("/v1/posts", json={"text": "Smoke seen near the ridge"})
    (generated,) = r.json()["accepted"]
    assert len(generated) == 32


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"source": "x"}, "body.text: Field required"),
        ({"text": ""}, "body.text: String should have at least 1 character"),
        ({"text": "x" * 10_001}, "body.text: String should have at most 10000 characters"),
        ({"text": "ok", "published_at": "yesterday"}, "body.published_at:"),
        ({"text": "ok", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ([{"text": "ok"}, {"text": 5}], "body.1.text: Input should be a valid string"),
        ("just a string", 'body: send JSON: {"text": "…"}'),
        ([], "body: empty list"),
    ],
)
async def test_bad_posts_get_a_422_naming_the_field(api, body, expected):
    r = await api.post("/v1/posts", json=body)
    assert r.status_code == 422
    assert expected in errors(r)


async def test_malformed_json_is_a_422(api):
    r = await api.post(
        "/v1/posts", content=b'{"text": "unterminated', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "body" in errors(r)
    assert "JSON" in errors(r)


@pytest.mark.parametrize("api", [{"max_body_bytes": 2048}], indirect=True)
async def test_a_body_over_the_limit_is_a_413(api):
    r = await api.post("/v1/posts", json={"text": "x" * 5000})
    assert r.status_code == 413
    assert "2048 bytes" in errors(r)


async def test_more_than_a_thousand_posts_is_a_413(api, redis):
    r = await api.post("/v1/posts", json=[{"text": f"p{i}"} for i in range(1001)])
    assert r.status_code == 413
    assert "at most 1000" in errors(r)
    assert await redis.xlen(f"{api.settings.namespace}:{keys.POSTS}") == 0


@pytest.mark.parametrize("api", [{"api_token": "s3cret-token"}], indirect=True)
async def test_reads_and_writes_need_the_token_when_one_is_set(api):
    post = {"text": "Flooding on Main St"}
    assert (await api.post("/v1/posts", json=post)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await api.post("/v1/posts", json=post, headers=wrong)).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert (await api.post("/v1/posts", json=post, headers=good)).status_code == 202
    assert (await api.get("/v1/incidents")).status_code == 401  # reads too (tests/test_auth.py)
    assert (await api.get("/v1/incidents", headers=good)).status_code == 200
    sub = {"name": "x", "urls": ["json://127.0.0.1:9/"]}
    assert (await api.post("/v1/subscriptions", json=sub)).status_code == 401


async def test_subscriptions_never_show_their_secrets(api):
    url = "json://bob:hunter2pass@127.0.0.1:9999/hook?+Authorization=Bearer%20tok-abcdef"
    r = await api.post(
        "/v1/subscriptions", json={"name": "ops", "urls": [url], "min_severity": "red_alert"}
    )
    assert r.status_code == 201
    created = r.json()
    listed = (await api.get("/v1/subscriptions")).text
    one = (await api.get(f"/v1/subscriptions/{created['id']}")).text
    for shown in (json.dumps(created), listed, one):
        assert "hunter2pass" not in shown
        assert "tok-abcdef" not in shown
    assert created["urls"][0].startswith("json://bob:")
    assert (await api.delete(f"/v1/subscriptions/{created['id']}")).status_code == 204
    assert (await api.delete(f"/v1/subscriptions/{created['id']}")).status_code == 404


async def test_a_subscription_with_a_bad_url_is_refused_without_echoing_it(api):
    r = await api.post(
        "/v1/subscriptions",
        json={"name": "x", "urls": ["console://", "nosuchscheme://tok-zzz9876@host"]},
    )
    assert r.status_code == 422
    assert "body.urls: urls[1]" in errors(r)
    assert "tok-zzz9876" not in r.text
    r = await api.post(
        "/v1/subscriptions", json={"name": "x", "urls": ["console://"], "min_severity": "huge"}
    )
    assert r.status_code == 422
    assert "body.min_severity" in errors(r)


async def test_unknown_incident_is_a_404(api):
    r = await api.get("/v1/incidents/nope")
    assert r.status_code == 404


async def test_health_and_readiness(api, redis):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["groups"] == {"posts": True, "commands": True, "incident-events": True}
    await redis.delete(f"{api.settings.namespace}:{keys.POSTS}")
    not_ready = await api.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["groups"]["posts"] is False


async def test_openapi_is_served(api):
    schema = (await api.get("/openapi.json")).json()
    assert "/v1/posts" in schema["paths"]
    assert (await api.get("/docs")).status_code == 200


async def test_posts_are_published_when_redis_has_forgotten_the_script(
    make_settings, redis, monkeypatch
):
    """A restarted or failed-over Redis has no scripts: EVALSHA answers NOSCRIPT, nothing ran,
    and the publisher loads the script and publishes once. (A script text of this test's own,
    so it need not flush the scripts of a shared Redis.)"""
    settings = make_settings()
    script = publish._PUBLISH_ONCE + f"\n-- {settings.namespace}\n"
    monkeypatch.setattr(publish, "_PUBLISH_ONCE", script)
    publisher = publish.Publisher(redis, settings)
    assert await redis.script_exists(publisher._publish_once.sha) == [False]
    post = Post(id="a", text="Smoke on the ridge")
    assert await publisher.posts([post]) == (["a"], [])
    assert await publisher.posts([post]) == ([], ["a"])
    assert await redis.xlen(f"{settings.namespace}:{keys.POSTS}") == 1


@pytest.mark.parametrize(
    "given",
    [
        {"text": "Smoke seen near the ridge"},
        {
            "id": " a-1 ",
            "source": " nws ",
            "text": "Tornado warning \u2014 \u201cseek shelter\u201d \U0001f32a",
        },
        {
            "id": "full",
            "text": 'all fields: "quoted" \\ back',
            "author": "ana",
            "url": "https://example.test/p/1",
            "thread_id": "t1",
            "in_reply_to": "p0",
            "published_at": "2026-03-01T10:00:00.25+02:00",
            "labels": {"team": "db", "env": "prod"},
        },
        {"text": "naive time", "published_at": "2026-03-01T10:00:00"},
        {"text": "utc time", "published_at": "2026-03-01T10:00:00Z"},
    ],
)
def test_a_post_published_directly_reads_as_the_post_it_was(given):
    """POST /v1/posts writes entries without building Posts (PostIn.to_entry): what a reader
    decodes must be the Post the general way builds (PostIn.to_post)."""
    now = utcnow()
    post_in = PostIn.model_validate(given)
    key, post_id, data = post_in.to_entry(now)
    read = decode({b"data": data}, Post)
    expected = post_in.to_post(now)
    if "id" not in given:
        expected = expected.model_copy(update={"id": post_id})
    assert read == expected
    assert key == expected.key


async def test_concurrent_requests_share_publishing_calls_and_each_gets_its_own_answer(
    make_settings, redis
):
    """Requests publishing at once go together in one call (group commit): each still gets the
    answer for its own posts, in its order, and a post sent twice is published once."""
    settings = make_settings()
    publisher = publish.Publisher(redis, settings)

    async def send(i: int) -> tuple[list[str], list[str]]:
        posts = [Post(id=f"p{i}", text="x"), Post(id=f"p{i + 1}", text="x")]
        return await publisher.posts(posts)

    answers = await asyncio.gather(*(send(i) for i in range(60)))
    for i, (accepted, duplicates) in enumerate(answers):
        assert sorted(accepted + duplicates) == sorted([f"p{i}", f"p{i + 1}"])
    accepted = [a for answer, _ in answers for a in answer]
    assert sorted(accepted) == sorted(f"p{i}" for i in range(61))
    assert await redis.xlen(f"{settings.namespace}:{keys.POSTS}") == 61


class _Recorded(asyncio.Transport):
    """What reaches the socket: each write as one system call would send it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_a_response_goes_to_the_socket_in_one_write():
    """uvicorn writes head and body apart; the corked transport sends them as one write at the
    end of the loop's turn, flushes before closing, and lets a large body through at once."""
    raw = _Recorded()
    corked = wire.CorkedTransport(raw)
    corked.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
    corked.write(b"x" * wire.FLUSH_AT)
    assert len(raw.writes) == 2  # flow control sees a large body as it is written
    corked.write(b"last")
    corked.close()
    assert raw.writes[-1] == b"last"
    assert raw.closed
