"""The pure core of sources: documents and statuses in, Posts out; specs; schedule; signatures.

No network and no Redis: realistic payloads parsed directly.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.ingest.sources import mastodon
from services.ingest.sources.base import SourceError
from services.ingest.sources.rss import parse_feed
from services.ingest.sources.schedule import next_delay, parse_retry_after
from services.ingest.sources.spec import Source, SourceSpec, load_sources_file, public
from services.ingest.sources.text import html_to_text
from shared.yamlfile import ConfigError
from tests.source_servers import HARWOOD, ROSCOSMOS, WATCHER, Item, atom, boost, rss2, status

LEAK = Item(
    "5501",
    "Leak reported on the station's Nauka module",
    "<p>A leak from a radiator on the Russian <strong>Nauka</strong> laboratory module has "
    "been confirmed by the crew.</p><p>NASA has asked for the window shutters to be closed."
    "&nbsp;<a href='https://example.org/live'>Listen live</a></p>",
    minutes=5,
)
CALM = Item("5502", "Roscosmos: crew not in danger", "The crew &amp; station are safe.", minutes=40)


# --- RSS and Atom ------------------------------------------------------------------------------


def test_rss2_items_become_posts_with_clean_text():
    feed = parse_feed(rss2([CALM, LEAK]), "news", url="https://news.example.org/feed/")
    assert feed.well_formed
    assert feed.warnings == []
    calm, leak = feed.posts
    assert leak.id == "https://news.example.org/?p=5501"  # the guid
    assert leak.source == "news"
    assert leak.author == "Spaceflight Now"
    assert leak.url == "https://news.example.org/2023/10/09/5501/"
    assert leak.published_at == datetime(2023, 10, 9, 20, 5, tzinfo=UTC)
    assert leak.text == (
        "Leak reported on the station's Nauka module\n\n"
        "A leak from a radiator on the Russian Nauka laboratory module has been confirmed by the "
        "crew.\n\nNASA has asked for the window shutters to be closed. Listen live"
    )
    assert calm.text == "Roscosmos: crew not in danger\n\nThe crew & station are safe."
    assert feed.ids == [calm.id, leak.id]


def test_atom_entries_become_posts():
    feed = parse_feed(atom([LEAK]), "iss-atom")
    (post,) = feed.posts
    assert post.id == "tag:news.example.org,2023:5501"
    assert post.author == "Spaceflight Now"
    assert post.text.startswith("Leak reported on the station's Nauka module\n\nA leak from")
    assert "<" not in post.text
    assert "&nbsp;" not in post.text
    assert post.published_at == datetime(2023, 10, 9, 20, 5, tzinfo=UTC)


RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://agency.example/rss">
    <title>Agency releases</title><link>https://agency.example/</link>
    <description>Press releases</description>
    <items><rdf:Seq><rdf:li resource="https://agency.example/r/77"/></rdf:Seq></items>
  </channel>
  <item rdf:about="https://agency.example/r/77">
    <title>Station crew shelter in Soyuz</title>
    <link>https://agency.example/r/77</link>
    <description>Crew members moved to the Soyuz as a precaution.</description>
    <dc:date>2023-10-09T21:30:00Z</dc:date>
    <dc:creator>Press office</dc:creator>
  </item>
</rdf:RDF>"""

RSS091 = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91">
  <channel>
    <title>Old wire</title><link>http://wire.example/</link><description>Wire</description>
    <language>en-us</language>
    <item>
      <title>Radiator leak on Nauka</title>
      <link>http://wire.example/story/1</link>
      <description>Coolant flakes seen from the cupola.</description>
    </item>
  </channel>
</rss>"""


def test_rss1_items_are_identified_by_their_link():
    (post,) = parse_feed(RSS1, "agency").posts
    assert post.id == "https://agency.example/r/77"
    assert post.text == (
        "Station crew shelter in Soyuz\n\nCrew members moved to the Soyuz as a precaution."
    )
    assert post.author == "Press office"
    assert post.published_at == datetime(2023, 10, 9, 21, 30, tzinfo=UTC)


def test_rss091_items_without_guid_use_the_link():
    (post,) = parse_feed(RSS091, "wire").posts
    assert post.id == "http://wire.example/story/1"
    assert post.text == "Radiator leak on Nauka\n\nCoolant flakes seen from the cupola."


def test_items_without_guid_or_link_are_identified_by_their_text():
    doc = (
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>Leak on the ISS</title></item>"
        b"<item><title>Leak on the ISS</title></item>"  # the same item twice: once
        b"<item><description></description></item>"  # nothing to read: skipped, said so
        b"</channel></rss>"
    )
    feed = parse_feed(doc, "bare")
    assert [p.text for p in feed.posts] == ["Leak on the ISS"]
    assert feed.posts[0].id.startswith("text:")
    assert parse_feed(doc, "bare").posts[0].id == feed.posts[0].id  # stable across reads
    assert feed.warnings == ["item 3 has no text, id or link: skipped"]


def test_long_guids_are_hashed_to_a_stable_id():
    guid = "https://news.example.org/" + "x" * 300
    doc = f'<rss version="2.0"><channel><item><title>a</title><guid>{guid}</guid></item>'
    post = parse_feed((doc + "</channel></rss>").encode(), "n").posts[0]
    assert post.id.startswith("sha256:")
    assert len(post.id) <= 200


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        b"\x00\xff\xfe garbage",
        b'{"items": []}',
        b"",
    ],
)
def test_what_is_not_a_feed_is_an_error(body):
    with pytest.raises(SourceError, match="malformed feed"):
        parse_feed(body, "news")


def test_a_feed_cut_short_is_read_leniently_and_said_so():
    body = rss2([CALM, LEAK])
    feed = parse_feed(body[: body.index(b"<item>", body.index(b"5502")) + 40], "news")
    assert [p.id for p in feed.posts][:1] == ["https://news.example.org/?p=5502"]
    assert not feed.well_formed
    assert "not well-formed" in feed.warnings[0]


def test_a_body_that_looks_like_a_path_or_url_is_not_opened():
    # feedparser opens strings naming files or URLs; the parser must only ever read the body.
    for body in (b"/etc/hostname", b"http://127.0.0.1:1/feed"):
        with pytest.raises(SourceError):
            parse_feed(body, "news")


# --- HTML to text ------------------------------------------------------------------------------


def test_mastodon_html_becomes_readable_text():
    html = (
        '<p><span class="h-card"><a href="https://social.example/@harwood" class="u-url mention">'
        "@<span>harwood</span></a></span> ISS: MCC to Mogensen: &quot;We&#39;re still assessing"
        '&quot;<br />more soon <a href="https://social.example/tags/ISS" class="mention hashtag" '
        'rel="tag">#<span>ISS</span></a></p><p>Live: <a href="https://www.youtube.com/watch?v=1rc'
        'SyN74BY" rel="nofollow noopener" target="_blank"><span class="invisible">https://www.'
        '</span><span class="ellipsis">youtube.com/watch?v=1rcSy</span><span class="invisible">'
        "N74BY</span></a></p>"
    )
    assert html_to_text(html) == (
        '@harwood ISS: MCC to Mogensen: "We\'re still assessing"\nmore soon #ISS\n\n'
        "Live: https://www.youtube.com/watch?v=1rcSyN74BY"
    )


def test_html_to_text_drops_scripts_and_collapses_space():
    html = "<div>  Leak\n   confirmed <script>alert(1)</script><style>p{}</style></div><ul>"
    html += "<li>one</li><li>two</li></ul>"
    assert html_to_text(html) == "Leak confirmed\n\none\n\ntwo"


# --- Mastodon ----------------------------------------------------------------------------------

ROOT = status("111200", HARWOOD, "<p>ISS: there&#39;s a leak coming from the radiator on MLM</p>")
REPLY = status("111201", HARWOOD, "<p>Still assessing with Moscow</p>", in_reply_to=ROOT, minutes=3)
REPLY2 = status(
    "111205", ROSCOSMOS, "<p>The crew is not in any danger</p>", in_reply_to=REPLY, minutes=9
)
BOOST = boost("111210", WATCHER, ROOT, minutes=10)


def test_statuses_become_posts_with_author_url_and_time():
    posts, skipped = mastodon.parse_statuses([REPLY, ROOT], "social.example")
    assert skipped == []
    reply, root = posts
    assert root.id == "111200"
    assert root.source == "social.example"
    assert root.text == "ISS: there's a leak coming from the radiator on MLM"
    assert root.author == "harwood"
    assert root.url == "https://social.example/@harwood/111200"
    assert root.published_at == datetime(2023, 10, 9, 20, 0, tzinfo=UTC)
    assert (root.in_reply_to, root.thread_id) == (None, "111200")
    assert (reply.in_reply_to, reply.thread_id) == ("111200", "111200")


def test_replies_carry_their_thread_root_when_the_page_shows_it():
    posts, _ = mastodon.parse_statuses([REPLY2, REPLY, ROOT], "s")
    assert {p.id: (p.in_reply_to, p.thread_id) for p in posts} == {
        "111205": ("111201", "111200"),
        "111201": ("111200", "111200"),
        "111200": (None, "111200"),
    }
    # Without its ancestors on the page, a reply's thread is its parent.
    (alone,) = mastodon.parse_statuses([REPLY2], "s")[0]
    assert (alone.in_reply_to, alone.thread_id) == ("111201", "111201")
    assert alone.author == "roscosmos_fan@mastodon.example"


def test_a_boost_is_the_status_it_boosts_and_is_not_doubled():
    posts, _ = mastodon.parse_statuses([BOOST, REPLY, ROOT], "s")
    assert [p.id for p in posts] == ["111200", "111201"]
    (only,) = mastodon.parse_statuses([BOOST], "s")[0]
    assert only.id == "111200"
    assert only.author == "harwood"
    assert only.text == "ISS: there's a leak coming from the radiator on MLM"
    assert only.url == "https://social.example/@harwood/111200"


def test_content_warning_and_media_descriptions_are_text():
    cw = status("5", HARWOOD, "<p>details inside</p>", spoiler="ISS leak")
    media = status("6", HARWOOD, "")
    media["media_attachments"] = [{"type": "image", "description": "Flakes near the radiator"}]
    empty = status("7", HARWOOD, "")
    posts, skipped = mastodon.parse_statuses([cw, media, empty], "s")
    assert [p.text for p in posts] == ["ISS leak\n\ndetails inside", "Flakes near the radiator"]
    assert skipped == ["status 7: no text"]


def test_unreadable_statuses_are_skipped_not_fatal():
    bad_date = status("8", HARWOOD, "<p>leak</p>")
    bad_date["created_at"] = "yesterday"
    posts, skipped = mastodon.parse_statuses([{"no": "id"}, "text", bad_date, ROOT], "s")
    assert [p.id for p in posts] == ["111200"]
    assert skipped[:2] == ["status 1: not a status (no id)", "status 2: not a status (no id)"]
    assert skipped[2].startswith("status 8: published_at")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Bad gateway</html>", "invalid JSON"),
        (b'{"statuses": []}', "invalid JSON: expected a list of statuses, got dict"),
        (b'{"error": "This method requires an authenticated user"}', "server error: This method"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_a_page_that_is_not_a_list_of_statuses_is_an_error(body, message):
    with pytest.raises(SourceError, match=message):
        mastodon.decode_statuses(body)


def test_newest_id_compares_ids_as_mastodon_and_pleroma_order_them():
    assert mastodon.newest_id([{"id": "999"}, {"id": "1000"}, {"id": "998"}]) == "1000"
    assert mastodon.newest_id([{"id": "AbC1"}, {"id": "AbD0"}]) == "AbD0"
    assert mastodon.newest_id([]) is None


def test_requests_page_forward_from_the_cursor():
    tag = Source(name="t", kind="mastodon", url="https://s.example", hashtag="#ISS")
    assert mastodon.timeline_path(tag) == "/api/v1/timelines/tag/ISS"
    acct = Source(name="a", kind="mastodon", url="https://s.example", account="@harwood")
    assert mastodon.timeline_path(acct, "109312") == "/api/v1/accounts/109312/statuses"
    lst = Source(name="l", kind="mastodon", url="https://s.example", list="42")
    assert mastodon.timeline_path(lst) == "/api/v1/timelines/list/42"
    assert mastodon.page_params(None) == {"limit": "40"}
    assert mastodon.page_params("111200") == {
        "limit": "40",
        "since_id": "111200",
        "min_id": "111200",
    }


# --- specs -------------------------------------------------------------------------------------


def _errors(data: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as e:
        SourceSpec.model_validate(data)
    return {".".join(map(str, err["loc"])): err["msg"] for err in e.value.errors()}


def test_spec_errors_name_the_field():
    assert _errors({"name": "x", "kind": "gopher", "url": "http://a"}) == {
        "kind": "Input should be 'rss', 'mastodon', 'webhook', 'statuspage', 'cap' or 'json'"
    }
    assert _errors({"name": "x", "kind": "rss", "url": "feed.xml"}) == {
        "url": "Value error, must be an http:// or https:// URL with a host"
    }
    assert _errors({"name": "x", "kind": "rss"}) == {"url": "Value error, required for rss sources"}
    assert _errors({"name": "x", "kind": "mastodon", "url": "https://m.example"}) == {
        "list": "Value error, a mastodon source reads exactly one of account, hashtag, list"
    }
    assert "hashtag" in _errors({"name": "x", "kind": "rss", "url": "http://a", "hashtag": "iss"})
    assert _errors({"name": "x", "kind": "webhook"}) == {
        "secret": "Value error, required for webhook sources (the HMAC key senders sign with)"
    }
    assert "url" in _errors({"name": "x", "kind": "webhook", "url": "http://a", "secret": "s" * 16})
    assert "name" in _errors({"name": "no spaces", "kind": "rss", "url": "http://a"})
    assert "interval_s" in _errors({"name": "x", "kind": "rss", "url": "http://a", "interval_s": 0})
    assert "colour" in _errors({"name": "x", "kind": "rss", "url": "http://a", "colour": "red"})


def test_posts_of_a_mastodon_source_carry_the_server_so_sources_there_share_threads():
    a = Source(name="a", kind="mastodon", url="https://Social.Example/", account="harwood")
    b = Source(name="b", kind="mastodon", url="https://social.example", hashtag="iss")
    assert a.label == b.label == "social.example"
    assert Source(name="n", kind="rss", url="http://n.example/f").label == "n"
    assert Source(name="n", kind="rss", url="http://n/f", post_source="news").label == "news"
    assert a.target != b.target


def test_secrets_are_stored_but_never_shown():
    s = Source(
        name="m", kind="mastodon", url="https://u:pw@s.example", list="1", token="t0ken-value"
    )
    w = Source(name="w", kind="webhook", secret="a-webhook-secret-123")
    assert Source.model_validate_json(s.stored()).token.get_secret_value() == "t0ken-value"
    assert Source.model_validate_json(w.stored()).secret.get_secret_value() == (
        "a-webhook-secret-123"
    )
    shown = json.dumps([public(s), public(w)])
    assert "t0ken-value" not in shown
    assert "a-webhook-secret-123" not in shown
    assert "pw" not in shown
    assert public(s)["token"] == public(w)["secret"] == "****"
    assert public(s)["url"] == "https://u:****@s.example"


def test_sources_file_errors_name_file_line_and_reason(tmp_path: Path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - name: news\n"
        "    kind: rss\n"
        "    url: https://news.example.org/feed/\n"
        "  - name: iss\n"
        "    kind: mastodon\n"
        "    url: not a url\n"
        "    hashtag: iss\n"
        "  - name: relay\n"
        "    kind: carrier-pigeon\n"
    )
    with pytest.raises(ConfigError) as e:
        load_sources_file(path)
    assert str(e.value).splitlines() == [
        f"{path}:7: sources.1.url: must be an http:// or https:// URL with a host",
        f"{path}:10: sources.2.kind: Input should be 'rss', 'mastodon', 'webhook', 'statuspage', "
        "'cap' or 'json'",
    ]


def test_sources_file_loads(tmp_path: Path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - {name: news, kind: rss, url: 'https://news.example.org/feed/', interval_s: 300}\n"
        "  - {name: iss, kind: mastodon, url: 'https://social.example', hashtag: '#ISS'}\n"
    )
    news, iss = load_sources_file(path)
    assert (news.origin, news.interval_s, iss.hashtag) == ("file", 300, "ISS")


def test_duplicate_names_in_the_file_are_refused(tmp_path: Path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  - {name: a, kind: rss, url: 'http://x/f'}\n"
        "  - {name: a, kind: rss, url: 'http://y/f'}\n"
    )
    with pytest.raises(ConfigError, match=r":1: sources: two sources are named 'a'"):
        load_sources_file(path)


# --- schedule -------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    def delay(failures: int, retry_after: float | None = None) -> float:
        return next_delay(60, failures, backoff_s=30, backoff_max_s=600, retry_after_s=retry_after)

    assert [delay(n) for n in range(6)] == [60, 30, 60, 120, 240, 480]
    assert delay(50) == 600
    assert delay(1, retry_after=90) == 90
    assert delay(4, retry_after=90) == 240  # the backoff is already longer
    assert delay(1, retry_after=86_400) == 600  # a bogus Retry-After cannot silence a source


def test_retry_after_as_seconds_or_http_date():
    now = datetime(2023, 10, 9, 21, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Mon, 09 Oct 2023 21:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 09 Oct 2023 20:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_a_mastodon_post_carries_its_account_and_tags_as_labels():
    post = mastodon.status_to_post(
        status("9", HARWOOD, "<p>Leak on the ISS</p>", tags=("ISS", "space", "iss")), "s", "9"
    )
    assert post is not None
    assert post.labels == {"account": HARWOOD["acct"], "tags": "iss,space"}
    untagged = mastodon.status_to_post(status("10", HARWOOD, "<p>x</p>", tags=()), "s", "10")
    assert untagged is not None
    assert untagged.labels == {"account": HARWOOD["acct"]}
