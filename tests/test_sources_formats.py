"""Structured formats, parsed without a network: status-page incidents, CAP 1.2 messages and
Atom feeds of them, unsafe XML refused, and the JSON field-path mapping."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.ingest.sources import cap, statuspage
from services.ingest.sources.base import SourceError
from services.ingest.sources.jsonmap import JsonMapping, MappingError, find, parse_path
from services.ingest.sources.spec import SourceSpec
from tests.source_servers import (
    BILLION_LAUGHS,
    CAP_AMBER,
    CAP_EARTHQUAKE,
    CAP_HSAS,
    CAP_THUNDERSTORM,
    STATUS_T0,
    StatusPage,
    StatusUpdate,
    cap_alert,
    external_entity,
    huge_cap,
)

# --- status pages --------------------------------------------------------------------------------


def github_incident() -> StatusPage:
    page = StatusPage()
    page.update(
        "kf0hq2yw0b3r",
        "Incident with Actions and Pages",
        "major",
        StatusUpdate(
            "u1",
            "investigating",
            "We are investigating reports of degraded performance for Actions and Pages.",
            0,
            {"Actions": "degraded_performance", "Pages": "degraded_performance"},
        ),
    )
    page.update(
        "kf0hq2yw0b3r",
        "Incident with Actions and Pages",
        "major",
        StatusUpdate(
            "u2", "monitoring", "Pages is operating normally.", 20, {"Pages": "operational"}
        ),
    )
    return page


def test_each_statuspage_update_is_a_post_in_its_incidents_thread_oldest_first():
    found = statuspage.parse_incidents(github_incident().body(), "githubstatus")
    first, second = found.posts
    assert [p.id for p in found.posts] == ["u1", "u2"]
    assert first.thread_id == second.thread_id == "incident:kf0hq2yw0b3r"
    assert first.text == (
        "Incident with Actions and Pages — Investigating: We are investigating reports of "
        "degraded performance for Actions and Pages."
    )
    assert first.hint.scheme == "statuspage"
    assert first.hint.values == {"status": "investigating", "impact": "major"}
    assert first.labels == {
        "component:Actions": "degraded_performance",
        "component:Pages": "degraded_performance",
    }
    assert second.labels == {"component:Pages": "operational"}
    assert (first.author, first.url) == ("GitHub", "https://stspg.io/kf0hq2")
    assert first.published_at == STATUS_T0
    assert found.history == set()  # the incident is not over


def test_updates_of_incidents_already_over_are_history():
    page = github_incident()
    page.update("kf0hq2yw0b3r", "x", "major", StatusUpdate("u3", "resolved", "Resolved.", 30))
    assert statuspage.parse_incidents(page.body(), "s").history == {"u1", "u2", "u3"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"<html>maintenance</html>", "invalid JSON"),
        (b'{"page": {}}', "no `incidents` list"),
        (b"[]", "no `incidents` list"),
    ],
)
def test_a_document_that_is_no_incidents_json_is_refused(body, error):
    with pytest.raises(SourceError, match=error):
        statuspage.parse_incidents(body, "s")


def test_the_page_address_or_its_json():
    assert statuspage.incidents_url("https://www.githubstatus.com/") == (
        "https://www.githubstatus.com/api/v2/incidents.json"
    )
    own = "https://status.example.com/api/v2/incidents.json"
    assert statuspage.incidents_url(own) == own


# --- CAP -----------------------------------------------------------------------------------------

SPEC_TIME = datetime(2003, 6, 17, 22, 0, tzinfo=UTC)  # 15:00 PDT, during the thunderstorm


def one(document: str | bytes, **kw) -> object:
    body = document.encode() if isinstance(document, str) else document
    (entry,) = cap.parse_document(body, "warnings", now=kw.pop("now", SPEC_TIME), **kw).entries
    return entry.post


def test_the_specs_homeland_security_alert():
    post = one(CAP_HSAS)
    assert post.id == post.thread_id == "43b080713727"
    assert post.text.startswith("Homeland Security Sets Code ORANGE\n\nThe Department of")
    assert post.author == "U.S. Government, Department of Homeland Security"
    assert post.url == "http://www.dhs.gov/dhspublic/display?theme=29"
    assert post.published_at == datetime(2003, 4, 2, 19, 39, 1, tzinfo=UTC)
    assert post.hint.values == {
        "msg_type": "Alert",
        "status": "Actual",
        "severity": "Severe",
        "certainty": "Likely",
        "urgency": "Immediate",
    }
    assert post.labels == {
        "event": "Homeland Security Advisory System Update",
        "category": "Security",
        "area:U.S._nationwide_and_interests_worldwide": "affected",
        "area_desc": "U.S. nationwide and interests worldwide",
    }


def test_the_specs_thunderstorm_warning_expires():
    during = one(CAP_THUNDERSTORM)
    assert during.hint.values["expires"] == "future"
    assert during.hint.values["response_type"] == "Shelter"
    assert during.labels["geocode:SAME"] == "006109 006009 006003"
    assert during.text.endswith("SOUTHWESTERN ALPINE COUNTY IN CALIFORNIA")  # the areas, named
    after = one(CAP_THUNDERSTORM, now=SPEC_TIME + timedelta(hours=2))
    assert after.hint.values["expires"] == "past"
    (area,) = [k for k in after.labels if k.startswith("area:")]
    assert area.startswith("area:EXTREME_NORTH_CENTRAL_TUOLUMNE_COUNTY_IN_CALIFORNIA_EXTREME_")
    assert len(area) == 128  # a label name's limit
    assert (during.labels[area], after.labels[area]) == ("affected", "clear")


def test_the_specs_earthquake_update_joins_the_message_it_references():
    post = one(CAP_EARTHQUAKE)
    assert post.id == "TRI13970876.2"
    assert post.thread_id == post.in_reply_to == "TRI13970876.1"
    assert post.text.startswith("Update: EQ 3.4 Imperial County CA")
    assert post.hint.values["urgency"] == "Past"


@pytest.mark.parametrize(
    ("language", "headline"),
    [
        (None, "Amber Alert in Los Angeles County"),
        ("en-US", "Amber Alert in Los Angeles County"),
        ("es-US", "Alerta Amber en el condado de Los Ángeles"),
        ("es", "Alerta Amber en el condado de Los Ángeles"),  # the same language elsewhere
        ("fr", "Amber Alert in Los Angeles County"),  # none in French: the first
    ],
)
def test_the_specs_multilingual_amber_alert_reads_the_configured_language(language, headline):
    post = one(CAP_AMBER, language=language)
    assert post.text.startswith(headline)
    # The event, when the headline does not say it, is in the text for the rules' topics.
    event = "Abducción de Niño" if headline.startswith("Alerta") else "Child Abduction"
    assert f"\n\nEvent: {event}\n\nAreas: " in post.text


def test_an_alert_its_update_and_its_cancel_are_one_thread():
    t0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    alert = one(cap_alert("HGX-1", sent=t0, headline="Chlorine release"), now=t0)
    update = one(
        cap_alert("HGX-2", sent=t0 + timedelta(minutes=30), msg_type="Update",
                  references=[("HGX-1", t0)], headline="Chlorine release spreads"),
        now=t0,
    )  # fmt: skip
    cancel = one(
        cap_alert("HGX-3", sent=t0 + timedelta(hours=2), msg_type="Cancel",
                  references=[("HGX-1", t0), ("HGX-2", t0 + timedelta(minutes=30))],
                  headline="All clear"),
        now=t0,
    )  # fmt: skip
    assert {alert.thread_id, update.thread_id, cancel.thread_id} == {"HGX-1"}
    assert (update.in_reply_to, cancel.in_reply_to) == ("HGX-1", "HGX-2")
    assert cancel.hint.values["msg_type"] == "Cancel"
    assert cancel.text.startswith("Cancel: All clear")


def test_an_atom_feed_of_cap_entries_embedded_linked_or_inline():
    alert = cap_alert("HGX-1", sent=SPEC_TIME, headline="Chlorine release")
    embedded = alert.split("?>", 1)[1]
    feed = f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2">
  <id>urn:feed</id><title>Warnings</title><updated>2003-06-17T22:00:00Z</updated>
  <entry><id>urn:embedded</id><title>t</title><updated>2003-06-17T22:00:00Z</updated>
    <content type="text/xml">{embedded}</content></entry>
  <entry><id>urn:linked</id><title>t</title><updated>2003-06-17T22:00:00Z</updated>
    <link type="application/cap+xml" href="/cap/2.xml"/></entry>
  <entry><id>https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.1</id>
    <updated>2003-06-17T22:00:00Z</updated><title>Flood Warning issued June 17</title>
    <summary>THE FLOOD WARNING CONTINUES FOR THE BRAZOS RIVER</summary>
    <cap:event>Flood Warning</cap:event><cap:effective>2003-06-17T21:00:00Z</cap:effective>
    <cap:expires>2003-06-18T21:00:00Z</cap:expires><cap:status>Actual</cap:status>
    <cap:msgType>Alert</cap:msgType><cap:category>Met</cap:category>
    <cap:urgency>Immediate</cap:urgency><cap:severity>Severe</cap:severity>
    <cap:certainty>Observed</cap:certainty><cap:areaDesc>Fort Bend, TX</cap:areaDesc>
    <cap:geocode><valueName>FIPS6</valueName><value>048157</value></cap:geocode>
  </entry>
</feed>"""
    doc = cap.parse_document(
        feed.encode(), "w", now=SPEC_TIME, url="https://alerts.example/feed.atom"
    )
    embedded_entry, linked, inline = doc.entries
    assert embedded_entry.post.id == "HGX-1"
    assert (linked.post, linked.link) == (None, "https://alerts.example/cap/2.xml")
    nws = inline.post
    assert nws.id == "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.1"
    assert nws.text.startswith("Flood Warning issued June 17")
    assert nws.hint.values["severity"] == "Severe"
    assert nws.labels == {
        "event": "Flood Warning",
        "category": "Met",
        "area:Fort_Bend_TX": "affected",
        "area_desc": "Fort Bend, TX",
        "geocode:FIPS6": "048157",
    }


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (BILLION_LAUGHS, "unsafe XML refused: DTDForbidden"),
        (external_entity("http://127.0.0.1:9/never"), "unsafe XML refused: DTDForbidden"),
        (huge_cap(3), "XML document of 3000.* bytes refused"),
        (b"<alert><unclosed></alert>", "malformed XML"),
        (b"<rss version='2.0'><channel/></rss>", r"not a CAP alert nor an Atom feed .*<rss>"),
    ],
    ids=["entity-expansion", "external-entity", "too-large", "malformed", "not-cap"],
)
def test_unsafe_or_foreign_xml_is_refused_before_anything_expands(document, error):
    with pytest.raises(SourceError, match=error):
        cap.parse_document(document, "w")


def test_an_entity_declared_without_a_doctype_name_is_refused_too():
    # defusedxml is what refuses this; the stdlib parser alone would expand it.
    body = b'<!DOCTYPE a [<!ENTITY e "boom">]><a>&e;</a>'
    with pytest.raises(SourceError, match="unsafe XML"):
        cap.safe_xml(body)


# --- sources declared --------------------------------------------------------------------------


def test_kinds_and_their_fields():
    sp = SourceSpec(name="gh", kind="statuspage", url="https://www.githubstatus.com")
    assert sp.polled
    assert SourceSpec(name="w", kind="cap", url="https://a.example/f", language="es-US").polled
    json_source = SourceSpec(name="j", kind="json", secret="s" * 16, mapping={"text": "$.message"})
    assert not json_source.polled
    with pytest.raises(ValidationError, match=r"language\n.*only for cap sources"):
        SourceSpec(name="x", kind="rss", url="http://a", language="en")
    with pytest.raises(ValidationError, match=r"mapping\n.*required for json sources"):
        SourceSpec(name="x", kind="json", secret="s" * 16)
    with pytest.raises(ValidationError, match=r"url\n.*json sources are pushed to"):
        SourceSpec(name="x", kind="json", secret="s" * 16, url="http://a", mapping={"text": "a"})
    with pytest.raises(ValidationError, match=r"mapping.text\n.*cannot read a path step"):
        SourceSpec(name="x", kind="json", secret="s" * 16, mapping={"text": "$.a b"})


# --- JSON field paths --------------------------------------------------------------------------


def test_field_paths():
    data = {"a": {"b c": [{"d": 1}, {"d": 2}]}, "items": [{"x": "1"}, {"x": "2"}]}
    assert find(data, parse_path("$.a['b c'][1].d")) == [2]
    assert find(data, parse_path("a['b c'][0].d")) == [1]  # `$` may be left out
    assert find(data, parse_path('$["items"][*].x', wildcard=True)) == ["1", "2"]
    assert find(data, parse_path("$.a.missing.deeper")) == []
    with pytest.raises(ValueError, match=r"\[\*\] is only for `items`"):
        parse_path("$.items[*].x")
    with pytest.raises(ValueError, match=r"cannot read a path step at '..b'"):
        parse_path("$.a..b")


UPTIME = {
    "monitor": {"id": 8812, "name": "checkout-api", "url": "https://shop.example/api"},
    "alerts": [
        {
            "id": "evt-1",
            "incident": {"id": "inc-42"},
            "state": "down",
            "level": "CRITICAL",
            "title": "checkout-api is down",
            "details": "Connection timed out from 3 regions",
            "region": "eu-west",
            "at": "2026-11-30T14:00:00Z",
        },
        {
            "id": "evt-2",
            "incident": {"id": "inc-42"},
            "state": "resolved",
            "title": "checkout-api is up again",
            "region": "eu-west",
            "at": "2026-11-30T14:20:00Z",
        },
    ],
}
MAPPING = JsonMapping(
    items="$.alerts[*]",
    text=["$.title", "$.details"],
    id="$.id",
    thread="$.incident.id",
    severity="$.level",
    status="$.state",
    labels={"region": "$.region", "service": "$.missing"},
    published_at="$.at",
)


def test_a_json_mapping_reads_each_event():
    down, up = MAPPING.posts(UPTIME, "uptime")
    assert (down.id, down.thread_id, up.thread_id) == ("evt-1", "inc-42", "inc-42")
    assert down.text == "checkout-api is down\n\nConnection timed out from 3 regions"
    assert down.hint.values == {"severity": "critical", "status": "down"}
    assert up.hint.values == {"status": "resolved"}
    assert down.labels == {"region": "eu-west"}  # a path that finds nothing gives nothing
    assert down.published_at == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_a_json_mapping_names_what_it_could_not_read():
    body = json.loads(json.dumps(UPTIME))
    body["alerts"][1].pop("title")
    with pytest.raises(MappingError, match=r"event 1: mapping.text \(\$.title, \$.details\)"):
        MAPPING.posts(body, "uptime")
    body["alerts"][1]["title"] = "ok"
    body["alerts"][1]["at"] = "yesterday"
    with pytest.raises(MappingError, match="event 1: published_at: Input should be a valid"):
        MAPPING.posts(body, "uptime")


def test_without_items_the_body_is_one_event_or_a_list_and_ids_default_to_a_digest():
    mapping = JsonMapping(text="$.msg")
    (one_post,) = mapping.posts({"msg": "disk full"}, "s")
    again, other = mapping.posts([{"msg": "disk full"}, {"msg": "disk fine"}], "s")
    assert one_post.id == again.id != other.id
    assert one_post.id.startswith("sha256:")


# --- status page history feeds ------------------------------------------------------------------

HISTORY = [
    (
        "Investigating",
        "We are investigating reports of degraded performance for Actions and Pages.",
    ),
    ("Update", "Pages is operating normally."),
    ("Monitoring", "A fix has been deployed for Actions; we are monitoring."),
    ("Resolved", "This incident has been resolved."),
]


def test_a_history_feed_entry_is_an_incident_and_each_paragraph_an_update():
    from tests.source_servers import status_history

    body = status_history(
        [("19372", "Incident with GitHub Actions and Pages", STATUS_T0, HISTORY[:3])]
    )
    found = statuspage.parse_history(body, "githubstatus")
    posts = found.posts
    assert [p.text for p in posts] == [
        "Incident with GitHub Actions and Pages — Investigating: We are investigating reports of "
        "degraded performance for Actions and Pages.",
        "Incident with GitHub Actions and Pages — Update: Pages is operating normally.",
        "Incident with GitHub Actions and Pages — Monitoring: A fix has been deployed for "
        "Actions; we are monitoring.",
    ]
    assert {p.thread_id for p in posts} == {"incident:tag:www.githubstatus.com,2005:Incident/19372"}
    # The components named in the incident's name (the page's own name dropped), on its first
    # update; the hint only where the status says something by itself.
    assert posts[0].labels == {"component:Actions": "affected", "component:Pages": "affected"}
    assert posts[1].labels == {"component:Pages": "operational"}  # Statuspage's own sentence
    assert posts[2].labels == {}
    assert [p.hint.values if p.hint else None for p in posts] == [
        None,
        None,
        {"status": "monitoring"},
    ]
    assert posts[0].author == "GitHub"
    assert posts[0].url == "https://www.githubstatus.com/incidents/19372"
    assert found.history == set()
    # The same update keeps its id as the entry grows.
    more = status_history([("19372", "Incident with GitHub Actions and Pages", STATUS_T0, HISTORY)])
    again = statuspage.parse_history(more, "githubstatus")
    assert [p.id for p in again.posts][:3] == [p.id for p in posts]
    assert again.history == {p.id for p in again.posts}  # resolved: history, if first seen so


@pytest.mark.parametrize(
    ("name", "subjects"),
    [
        ("Incident with GitHub Actions, Codespaces, Issues, and Webhooks",
         ["Actions", "Codespaces", "Issues", "Webhooks"]),
        ("Disruption with some GitHub services", []),
        ("Degraded performance for Git Operations", ["Git Operations"]),
        ("We are investigating elevated error rates", []),
    ],
)  # fmt: skip
def test_subjects_from_an_incidents_name(name, subjects):
    assert statuspage.subjects_in(name, "GitHub") == subjects


def test_components_from_statuspages_own_sentences():
    said = statuspage.components_said(
        "Git Operations is experiencing degraded performance. GitHub Pages is operating "
        "normally. We are still investigating why the API is slow.",
        "GitHub",
    )
    assert said == {"Git Operations": "degraded_performance", "Pages": "operational"}
    still = statuspage.components_said("Actions is still experiencing a major outage.", "")
    assert still == {"Actions": "major_outage"}
