"""The contract's small parts: codec, YAML errors with lines, masking, signed links."""

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.codec import DecodeError, decode, encode, printable_fields, restore_fields
from shared.links import action_link, sign_links, signature, unsigned_link, verify
from shared.models import Post
from shared.redis import redis_client
from shared.secrets import mask_url, redact, url_secrets
from shared.settings import Settings
from shared.severity import Severity
from shared.yamlfile import ConfigError, load_file, load_model


def test_severities_are_ordered_by_meaning_not_alphabet():
    assert Severity.NO_DANGER < Severity.ASSESSING < Severity.RED_ALERT
    assert max(Severity) is Severity.RED_ALERT
    assert Severity.RED_ALERT.label == "red alert"
    assert [s.apprise_type for s in Severity] == ["success", "warning", "failure"]


def test_codec_round_trip_and_foreign_producers():
    post = Post(id="1", text="leak", source="s")
    assert decode({k.encode(): v.encode() for k, v in encode(post).items()}, Post) == post
    flat = decode(
        {b"text": b"leak", b"source": b"cli", b"published_at": b"2026-01-01T00:00:00Z"}, Post
    )
    assert flat.source == "cli"
    assert flat.published_at.year == 2026
    assert decode({b"json": json.dumps({"text": "hi"}).encode()}, Post).text == "hi"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({b"data": b"\xff\xfe"}, "UTF-8"),
        ({b"data": b"{oops"}, "JSON"),
        ({b"source": b"x"}, "text: Field required"),
        ({}, "empty entry"),
        ({b"data": json.dumps({"text": ""}).encode()}, "text: String should have at least 1"),
    ],
)
def test_undecodable_entries_say_why(fields, message):
    with pytest.raises(DecodeError, match=message):
        decode(fields, Post)


def test_binary_fields_survive_a_dead_letter_round_trip():
    fields = {b"data": b"\xff\x00binary", b"text": b"plain"}
    shown = printable_fields(fields)
    assert shown["text"] == "plain"
    assert shown["data"].startswith("base64:")
    assert restore_fields(shown) == {"data": b"\xff\x00binary", "text": b"plain"}


class Conf(BaseModel):
    name: str
    items: list[int] = []


def test_config_errors_name_file_line_and_reason(tmp_path: Path):
    path = tmp_path / "conf.yaml"
    path.write_text("name: ok\nitems:\n  - 1\n  - two\n")
    with pytest.raises(ConfigError) as e:
        load_file(Conf, path)
    assert str(e.value).startswith(f"{path}:4: items.1:")
    with pytest.raises(ConfigError, match=r"conf:2: invalid YAML"):
        load_model(Conf, "name: [unclosed\nitems: 1", "conf")
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(Conf, tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        (
            "json://user:s3cretpass@127.0.0.1:8000/hook?+Authorization=Bearer%20tok12345",
            "s3cretpass",
        ),
        ("json://127.0.0.1:8000/hook?+X-Api-Key=abcdef123456", "abcdef123456"),
        ("ntfy://127.0.0.1:8081/topic?token=tk_0123456789", "tk_0123456789"),
        ("gotify://127.0.0.1/AbCdEfGhIjKlMn", "AbCdEfGhIjKlMn"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "TIiajkdnlazkcOXrIdevi7FQ"),
        ("not a url with hunter22secret", "hunter22secret"),
    ],
)
def test_masked_urls_carry_no_secret(url, secret):
    masked = mask_url(url)
    assert secret not in masked
    assert "Bearer" not in masked or "tok12345" not in masked
    assert redact(f"failed to send to {url}", url_secrets(url)).count(secret) == 0


def test_links_are_signed_bound_to_a_version_and_expire():
    settings = Settings(_env_file=None, public_url="https://ra.example", link_ttl_s=60)
    link = action_link(settings, b"k", "inc1", "ack", 3, now=1000)
    assert link.startswith("https://ra.example/v1/incidents/inc1/ack/link?v=3&expires=1060&sig=")
    sig = link.rsplit("sig=", 1)[1]
    assert sig == signature(b"k", "inc1", "ack", 3, 1060)
    assert verify(b"k", "inc1", "ack", 3, 1060, sig, now=1001) is None
    assert verify(b"k", "inc1", "resolve", 3, 1060, sig, now=1001)[0] == 403
    assert verify(b"k", "inc1", "ack", 4, 1060, sig, now=1001)[0] == 403  # another version
    assert verify(b"other", "inc1", "ack", 3, 1060, sig, now=1001)[0] == 403
    assert verify(b"k", "inc1", "ack", 3, 1060, sig, now=2000) == (410, "it has expired")
    assert verify(b"k", "inc1", "explode", 3, 1060, sig, now=1001)[0] == 404


def test_messages_are_rendered_with_unsigned_links_and_signed_as_they_go_out():
    settings = Settings(_env_file=None, public_url="https://ra.example", link_ttl_s=60)
    unsigned = unsigned_link(settings.public_url, "inc1", "resolve", 7)
    assert unsigned == "https://ra.example/v1/incidents/inc1/resolve/link?v=7"
    text = f"Resolve: {unsigned}\nAgain: {unsigned}\nPage: https://ra.example/v1/incidents/inc1"
    signed = sign_links(text, settings, b"k", now=1000)
    expected = action_link(settings, b"k", "inc1", "resolve", 7, now=1000)
    assert signed.count(expected) == 2
    assert signed.endswith("Page: https://ra.example/v1/incidents/inc1")
    assert sign_links(signed, settings, b"k", now=1000) == signed  # never signed twice
    assert sign_links("no links here", settings, b"k") == "no links here"


async def test_a_burst_of_commands_waits_for_the_pool_instead_of_failing(make_settings):
    # redis-py 8's default pool raises "Too many connections" past its size; redalert's waits.
    client = redis_client(make_settings(redis_max_connections=4))
    try:
        pongs = await asyncio.gather(*(client.ping() for _ in range(300)))
        pool = client.connection_pool
        opened = len(pool._available_connections) + len(pool._in_use_connections)
    finally:
        await client.aclose()
    assert pongs == [True] * 300
    assert opened <= 4
