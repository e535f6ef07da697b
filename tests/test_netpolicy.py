"""The target policy: no source, webhook or apprise target may reach a denied address."""

import httpx
import pytest

from services.ingest.sources.base import SourceError
from services.ingest.sources.fetch import Http
from shared import keys
from shared.models import Subscription
from shared.netpolicy import TargetPolicy, networks
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually
from tests.delivery_helpers import live, post_thread
from tests.source_servers import Answer, SourceServer

LEAK = "Gas leak reported at plant 3"


def test_the_default_policy_refuses_link_local_and_metadata_and_allows_the_rest():
    policy = TargetPolicy()
    assert "169.254.0.0/16" in policy.refusal("169.254.169.254")
    assert policy.refusal("100.100.100.200") is not None
    assert policy.refusal("fe80::1") is not None
    assert policy.refusal("::ffff:169.254.169.254") is not None  # IPv4-mapped: the same host
    for allowed in ("127.0.0.1", "10.1.2.3", "192.168.0.10", "::1", "93.184.216.34"):
        assert policy.refusal(allowed) is None
    private_only = TargetPolicy(networks(["127.0.0.2/32"]), networks(["127.0.0.0/8"]))
    assert private_only.refusal("127.0.0.1") is None
    assert private_only.refusal("127.0.0.2") is not None  # deny wins over allow
    assert "REDALERT_TARGET_ALLOW" in private_only.refusal("10.0.0.1")


async def test_urls_are_checked_on_their_resolved_address_and_tokens_are_never_looked_up():
    policy = TargetPolicy(networks(["127.0.0.0/8"]))
    assert "127.0.0.1" in await policy.check_url("json://localhost:9/hook")
    assert await policy.check_url("http://127.0.0.1:9/") is not None
    assert await policy.check_url("slack://T0AAAA/B0BBBB/secrettoken") is None
    assert await policy.check_url("http://no-such-host.invalid/") is None  # fails on its own


@pytest.fixture
def server():
    s = SourceServer().start()
    yield s
    s.stop()


async def test_a_redirect_into_a_denied_range_is_refused_before_connecting(server):
    port = server.url().rsplit(":", 1)[1]
    feed = server.route("/feed.xml", lambda r: Answer(200, b"<rss/>"))
    hop = server.route(
        "/moved", lambda r: Answer(302, b"", {"location": f"http://127.0.0.2:{port}/feed.xml"})
    )
    http = Http(5, policy=TargetPolicy(networks(["127.0.0.2/32"])))
    try:
        assert (await http.get(feed)).status == 200  # 127.0.0.1 itself is allowed
        with pytest.raises(SourceError, match=r"refused: target 127\.0\.0\.2: .*TARGET_DENY"):
            await http.get(hop)
    finally:
        await http.aclose()
    assert server.requests_to("/moved")  # the first hop was made; the second never was


async def test_a_refused_target_is_a_422_at_save_time(make_settings, redis, run_services):
    settings = make_settings(target_deny=["169.254.0.0/16", "127.0.0.2/32"])
    base = f"http://127.0.0.1:{settings.http_port}"
    async with run_services(settings, "ingest"), httpx.AsyncClient(base_url=base) as api:
        cases = [
            (
                "/v1/subscriptions",
                {"name": "a", "urls": ["json://127.0.0.1:9/ok", "json://169.254.169.254/x"]},
                "body.urls.1",
            ),
            (
                "/v1/subscriptions",
                {"name": "b", "webhook": {"url": "http://127.0.0.2:9/hook", "secret": "s" * 16}},
                "body.webhook.url",
            ),
            (
                "/v1/sources",
                {"name": "meta", "kind": "rss", "url": "http://169.254.169.254/latest/meta-data"},
                "body.url",
            ),
        ]
        for path, body, field in cases:
            r = await api.post(path, json=body)
            assert r.status_code == 422, r.text
            assert r.json()["error"].startswith(f"{field}: target "), r.text
            assert "REDALERT_TARGET_DENY" in r.json()["error"]
        ok = await api.post(
            "/v1/subscriptions", json={"name": "c", "urls": ["json://127.0.0.1:9/"]}
        )
        assert ok.status_code == 201
        changed = await api.patch(
            f"/v1/subscriptions/{ok.json()['id']}", json={"urls": ["json://169.254.1.1/"]}
        )
        assert changed.status_code == 422


async def test_a_refused_target_at_send_time_is_a_clear_dead_letter(
    make_settings, redis, run_services, make_sink
):
    settings = make_settings(target_deny=["127.0.0.0/8"], send_attempts=3)
    sink = make_sink()
    async with live(run_services, settings) as api:
        # Saved before the policy denied it (here: straight into the store).
        await SubscriptionStore(redis, keys.Keys(settings.namespace)).put(
            Subscription(name="old", urls=[sink.url], min_severity="red_alert")
        )
        await post_thread(api, "plant-3", LEAK)

        async def letters() -> list:
            return (await api.get("/v1/deadletter")).json()

        await eventually(letters, timeout=20)
        [letter] = await letters()
    assert "refused: target 127.0.0.1: 127.0.0.1 is in 127.0.0.0/8" in letter["error"]
    assert sink.requests == []  # never connected
