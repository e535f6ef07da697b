"""Logs that never leak: DEBUG logs of a real setup, grepped for every secret in it."""

import logging

import httpx

from shared import logscrub
from tests.conftest import eventually
from tests.delivery_helpers import post_thread
from tests.source_servers import Answer, SourceServer

LEAK = "Gas leak reported at plant 3"
SECRETS = {
    "api token": "ApiT0ken-4c1d9e",
    "link secret": "L1nkSecret-77ab",
    "pagerduty secret": "PdS3cret-91ff",
    "url password": "hunter2-Pass",
    "header value": "XApiK3y-5150",
    "webhook token": "whTok-2b2b2b",
    "webhook secret": "whS3cret-abcdef-0123",
    "feed password": "feedPa55-9",
}


def test_scrub_masks_what_libraries_log():
    logscrub.register("K-n0wn-secret")
    cases = {
        'HTTP Request: GET http://bob:pw-123@h/feed "HTTP/1.1 200 OK"': "http://bob:****@h/feed",
        "POST http://h/hook?token=tok-abc&x=1": "token=****&x=1",
        "{'User-Agent': 'Apprise', 'X-Api-Key': 'k3y-9'}": "'X-Api-Key': '****'",
        "Authorization: Bearer ra_abcdefghijk": "Authorization: Bearer ****",
        "json://u:p@h/x?+X-Api-Key=abc987": "+X-Api-Key=****",
        "json://h/x?a=1&%2BX-Custom=abc987": "%2BX-Custom=****",
        "the value K-n0wn-secret here": "the value **** here",
    }
    for line, expected in cases.items():
        assert expected in logscrub.scrub(line)
    assert logscrub.scrub("a token of trust") == "a token of trust"  # words stay words


async def test_debug_logs_of_a_real_setup_hold_no_secret(
    make_settings, redis, run_services, make_sink, caplog
):
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        api_token=SECRETS["api token"],
        link_secret=SECRETS["link secret"],
        pagerduty_secret=SECRETS["pagerduty secret"],
        log_level="DEBUG",
        poll_tick_s=0.1,
    )
    auth = {"Authorization": f"Bearer {SECRETS['api token']}"}
    chat, hook = make_sink(), make_sink()
    feeds = SourceServer().start()
    feed = feeds.route("/feed.xml", lambda r: Answer(200, b"<rss version='2.0'><channel/></rss>"))
    feed = feed.replace("http://", f"http://reader:{SECRETS['feed password']}@")
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with run_services(settings), httpx.AsyncClient(base_url=base, headers=auth) as api:
            url = (
                f"json://ops:{SECRETS['url password']}@127.0.0.1:{chat.port}/hook"
                f"?+X-Api-Key={SECRETS['header value']}"
            )
            webhook = {
                "url": f"http://127.0.0.1:{hook.port}/in?token={SECRETS['webhook token']}",
                "secret": SECRETS["webhook secret"],
            }
            for body in (
                {"name": "chat", "urls": [url], "min_severity": "assessing"},
                {"name": "tool", "webhook": webhook},
            ):
                r = await api.post("/v1/subscriptions", json=body)
                assert r.status_code == 201, r.text
            r = await api.post("/v1/sources", json={"name": "feed", "kind": "rss", "url": feed})
            assert r.status_code == 201, r.text
            await post_thread(api, "plant-3", LEAK)
            await eventually(lambda: chat.messages() and hook.requests, timeout=20)
            await eventually(lambda: feeds.requests_to("/feed.xml"), timeout=20)
            await api.get("/v1/incidents")
    finally:
        feeds.stop()
    logged = caplog.text + "".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "127.0.0.1" in logged  # the libraries did log their requests…
    assert "/feed.xml" in logged
    leaked = [name for name, secret in SECRETS.items() if secret in logged]
    assert leaked == []  # …and not one secret
