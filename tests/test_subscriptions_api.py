"""Subscriptions through the API and the CLI — validated, masked — and secrets that stay secret."""

import json
import logging
from pathlib import Path

from shared import keys
from shared.subscriptions import SubscriptionStore
from tests.conftest import eventually
from tests.delivery_helpers import cli, deadletters, deliveries, live, post_thread, subscribe

LEAK = "Gas leak reported at plant 3"


async def test_the_api_refuses_bad_subscriptions_naming_the_field(settings, run_services):
    async with live(run_services, settings) as api:
        cases = [
            ({"name": "x", "urls": ["nonsense://where"]}, "body.urls", "urls[0]"),
            ({"name": "x", "urls": ["json://h/"], "min_severity": "loud"}, "min_severity", ""),
            (
                {"name": "x", "urls": ["json://h/"], "quiet_hours": {"ranges": ["9-5"]}},
                "quiet_hours.ranges",
                "is not a time range",
            ),
            (
                {"name": "x", "urls": ["json://h/"], "templates": {"body": "{{ nope }}"}},
                "body",
                "templates.body: 'nope' is undefined",
            ),
            (
                {
                    "name": "x",
                    "webhook": {"url": "http://h/", "secret": "0123456789abcdef"},
                    "rate_limit": {"count": 1, "window": 60},
                },
                "body",
                "rate_limit: only for `urls` subscriptions",
            ),
        ]
        for body, where, message in cases:
            r = await api.post("/v1/subscriptions", json=body)
            assert r.status_code == 422, (body, r.text)
            assert where in r.json()["error"], r.json()
            assert message in r.json()["error"], r.json()


async def test_crud_put_and_patch_keep_masked_secrets(settings, run_services, sink):
    url = f"json://bot:Hunter2-Pass@127.0.0.1:{sink.port}/hook"
    async with live(run_services, settings) as api:
        created = await subscribe(api, urls=[url], topics=["ISS"])
        assert created["urls"] == [f"json://bot:****@127.0.0.1:{sink.port}/hook"]
        assert created["topics"] == ["iss"]

        # GET, change one field, PUT it back: the password survives without being known.
        shown = (await api.get(f"/v1/subscriptions/{created['id']}")).json()
        assert shown["circuits"] == [
            {"index": 0, "url": created["urls"][0], "state": "closed", "failures": 0}
        ]
        body = {k: shown[k] for k in ("name", "urls", "min_severity", "topics")}
        r = await api.put(f"/v1/subscriptions/{created['id']}", json={**body, "name": "renamed"})
        assert r.status_code == 200, r.text
        r = await api.patch(
            f"/v1/subscriptions/{created['id']}",
            json={"repeat_interval": "30m", "format": "markdown"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "renamed"
        assert r.json()["repeat_interval"] == 1800
        r = await api.patch(f"/v1/subscriptions/{created['id']}", json={"format": "pdf"})
        assert r.status_code == 422
        assert "body.format" in r.json()["error"]
        r = await api.post(f"/v1/subscriptions/{created['id']}/test")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert sink.requests[-1]["headers"]["Authorization"].startswith("Basic ")  # kept
        assert sink.messages()[-1]["title"] == "[TEST] redalert test message for renamed"

        r = await api.delete(f"/v1/subscriptions/{created['id']}")
        assert r.status_code == 204
        assert (await api.get(f"/v1/subscriptions/{created['id']}")).status_code == 404
        assert (await api.patch("/v1/subscriptions/nope", json={})).status_code == 404


async def test_a_webhook_subscription_round_trips_through_get_put_and_patch(
    settings, redis, run_services
):
    secret = "0123456789abcdef-secret"
    async with live(run_services, settings) as api:
        hook = await subscribe(
            api, name="tool", webhook={"url": "https://tool.example/h/tok123", "secret": secret}
        )
        assert hook["webhook"] == {"url": "https://tool.example/****", "secret": "****"}
        shown = (await api.get(f"/v1/subscriptions/{hook['id']}")).json()
        r = await api.put(f"/v1/subscriptions/{hook['id']}", json={**shown, "name": "tool 2"})
        assert r.status_code == 200, r.text
        r = await api.patch(f"/v1/subscriptions/{hook['id']}", json={"min_severity": "red_alert"})
        assert r.status_code == 200, r.text
        r = await api.patch(f"/v1/subscriptions/{hook['id']}", json={"id": "other"})
        assert r.status_code == 422
        assert "body.id: does not match the URL" in r.json()["error"]
        r = await api.patch(f"/v1/subscriptions/{hook['id']}", json={"format": "html"})
        assert r.status_code == 422
        assert "format: only for `urls` subscriptions" in r.json()["error"]
    stored = await SubscriptionStore(redis, keys.Keys(settings.namespace)).get(hook["id"])
    assert stored is not None
    assert stored.webhook is not None
    assert (stored.name, stored.min_severity.value) == ("tool 2", "red_alert")
    assert (stored.webhook.url, stored.webhook.secret) == ("https://tool.example/h/tok123", secret)


async def test_cli_add_list_test_rm_and_apply(settings, run_services, make_sink, tmp_path: Path):
    good, bad = make_sink(), make_sink(status=500)
    async with live(run_services, settings) as api:
        code, out = await cli(
            settings,
            "subscriptions",
            "add",
            "ops chat",
            good.url,
            bad.url,
            "--min-severity",
            "red_alert",
            "--rate-limit",
            "5/10m",
            "--quiet",
            "22:00-07:00",
            "--timezone",
            "Europe/Paris",
            "--urgent-bypass",
        )
        assert code == 0, out
        code, out = await cli(settings, "subscriptions", "list")
        assert code == 0
        assert "ops chat" in out
        assert "quiet 22:00-07:00 Europe/Paris" in out
        assert "≤ 5/600s" in out

        code, out = await cli(settings, "subscriptions", "test", "ops chat")
        assert code == 1  # one URL fails
        lines = out.strip().splitlines()
        assert lines[0].endswith("ms)")
        assert "FAILED: " in lines[1]
        assert "HTTP 500" in lines[1]
        assert len(good.messages()) == 1

        code, out = await cli(settings, "subscriptions", "rm", "ops chat")
        assert code == 0, out
        assert (await api.get("/v1/subscriptions")).json() == []

        path = tmp_path / "subs.yaml"
        path.write_text(
            "subscriptions:\n"
            "  - name: console\n"
            '    urls: ["console://"]\n'
            "  - name: tool\n"
            "    webhook: {url: 'http://127.0.0.1:9/hook', secret: 0123456789abcdef}\n"
        )
        code, out = await cli(settings, "subscriptions", "apply", str(path))
        assert code == 0, out
        assert out.split() == ["created", "console", "created", "tool"]
        path.write_text("subscriptions:\n  - name: console\n    urls: ['console://']\n")
        code, out = await cli(settings, "subscriptions", "apply", str(path))
        assert out.split() == ["removed", "tool"]
        code, out = await cli(settings, "subscriptions", "apply", str(path))
        assert out.strip() == "nothing to change"
        [file_sub] = (await api.get("/v1/subscriptions")).json()
        r = await api.patch(f"/v1/subscriptions/{file_sub['id']}", json={"name": "x"})
        assert r.status_code == 409
        assert "subscriptions file" in r.json()["detail"]

        path.write_text("subscriptions:\n  - name: console\n    urls: ['console://']\n    x: 1\n")
        code, out = await cli(settings, "subscriptions", "apply", str(path))
        assert code == 1
        assert f"{path}:4: subscriptions.0.x: Extra inputs are not permitted" in out


async def test_no_answer_log_line_or_record_shows_a_password_or_token(
    make_settings, redis, run_services, make_sink, caplog
):
    """Subscriptions with a password, a header token, a path token and a webhook secret."""
    password, header_token, path_token = "Pa55-w0rd-XYZZY", "hdr-T0KEN-QWERTY", "GotifyT0kenPATH99"
    secret = "whsec-SUPER-SECRET-42"
    secrets = (password, header_token, path_token, secret)
    ok, failing, hook = make_sink(), make_sink(status=500), make_sink()
    settings = make_settings(send_attempts=2, circuit_failures=1)
    caplog.set_level(logging.INFO)
    answers = []
    async with live(run_services, settings) as api:

        async def call(method: str, path: str, **kw) -> dict:
            r = await api.request(method, path, **kw)
            answers.append(r.text)
            return r.json() if r.content else {}

        a = await call(
            "POST",
            "/v1/subscriptions",
            json={
                "name": "ops",
                "urls": [
                    f"json://bot:{password}@127.0.0.1:{ok.port}/hook?+X-Api-Key={header_token}",
                    f"gotify://127.0.0.1:{failing.port}/{path_token}",
                ],
            },
        )
        await call(
            "POST",
            "/v1/subscriptions",
            json={
                "name": "tool",
                "webhook": {"url": f"http://127.0.0.1:{hook.port}/", "secret": secret},
            },
        )
        await call(
            "POST",
            "/v1/subscriptions",
            json={"name": "bad", "urls": [f"nonsense://u:{password}@h/{path_token}"]},
        )
        await post_thread(api, "plant-3", LEAK)
        await eventually(lambda: len(ok.messages()) == 1 and len(hook.messages()) == 1)
        await eventually(lambda: _letters(redis, settings))
        incident = (await call("GET", "/v1/incidents"))[0]
        await call("GET", f"/v1/incidents/{incident['id']}")
        await call("GET", "/v1/subscriptions")
        await call("GET", f"/v1/subscriptions/{a['id']}")
        await call("PATCH", f"/v1/subscriptions/{a['id']}", json={"min_severity": "red_alert"})
        await call("POST", f"/v1/subscriptions/{a['id']}/test")
        await call("GET", "/v1/deadletter")
        letter = (await call("GET", "/v1/deadletter"))[0]
        await call("POST", f"/v1/deadletter/{letter['id']}/replay")
        answers.append((await api.get("/metrics")).text)
        for command in (("subscriptions", "list"), ("deadletter", "list")):
            answers.append((await cli(settings, *command))[1])

    # The secrets really were used: the targets got them.
    assert ok.requests[0]["headers"]["X-Api-Key"] == header_token
    assert failing.requests[0]["headers"]["X-Gotify-Key"] == path_token
    # …and they appear nowhere else.
    shown = {
        "answers": "\n".join(answers),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
        "deliveries": json.dumps(await deliveries(redis, settings)),
        "deadletter": json.dumps(await deadletters(redis, settings)),
        "redis": await _every_value_but_the_subscriptions(redis, settings),
    }
    assert "error=500" in shown["deadletter"]  # the records are there to be searched
    for where, text in shown.items():
        for s in secrets:
            assert s not in text, f"{s!r} found in {where}"


async def _letters(redis, settings) -> bool:
    return bool(await redis.xlen(f"{settings.namespace}:{keys.DEADLETTER}"))


async def _every_value_but_the_subscriptions(redis, settings) -> str:
    """Every key redalert wrote in the test's namespace, except the one that must hold secrets."""
    vault = keys.Keys(settings.namespace).subscriptions
    out = []
    async for key in redis.scan_iter(match=f"{settings.namespace}:*"):
        if key.decode() == vault:
            continue
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out.append(await redis.get(key))
        elif kind == "list":
            out += await redis.lrange(key, 0, -1)
        elif kind == "hash":
            out += [k + b"=" + v for k, v in (await redis.hgetall(key)).items()]
        elif kind == "set":
            out += list(await redis.smembers(key))
        elif kind == "zset":
            out += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            out += [b" ".join(f.values()) for _, f in await redis.xrange(key)]
    return b"\n".join(out).decode(errors="replace")
