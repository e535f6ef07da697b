"""The contracts: OpenAPI says how to authenticate, what answers look like and which errors
come back; AsyncAPI says what is on each stream — and both match the models, so neither drifts."""

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from redis.asyncio import Redis

from services.ingest import contracts
from services.ingest.app import create_app
from shared import asyncapi, keys
from shared.incidents import INTERNAL_FIELDS
from shared.models import Incident
from shared.settings import PROJECT_ROOT, Settings
from tests.conftest import SEED, eventually
from tests.sinks import HttpSink

CHECKED_IN = PROJECT_ROOT / "docs" / "asyncapi.json"
CHECKED_IN_OPENAPI = PROJECT_ROOT / "docs" / "openapi.json"
SEED_LINES = Path(SEED).read_text().splitlines()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()


def test_openapi_declares_the_bearer_scheme_on_the_api(openapi: dict[str, Any]):
    schemes = openapi["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert openapi["paths"]["/v1/incidents"]["get"]["security"]


def _responses(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return openapi["paths"][path][method]["responses"]


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("post", "/v1/posts", {"202", "401", "403", "413", "415", "422", "503"}),
        ("get", "/v1/incidents/{incident_id}", {"200", "401", "403", "404"}),
        ("post", "/v1/subscriptions", {"201", "401", "403", "409", "413", "422"}),
        ("put", "/v1/rules", {"401", "403", "412", "413", "422"}),
        ("post", "/v1/webhooks/alertmanager", {"202", "401", "413", "422", "503"}),
    ],
)
def test_error_answers_are_documented_with_the_schema_redalert_answers_with(
    openapi: dict[str, Any], method: str, path: str, codes: set[str]
):
    responses = _responses(openapi, method, path)
    assert codes <= set(responses)
    for code in codes - {"200", "201", "202"}:
        schema = responses[code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, code
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_incident_answers_are_typed_and_keep_internal_fields_out(openapi: dict[str, Any]):
    ok = _responses(openapi, "get", "/v1/incidents")["200"]["content"]["application/json"]
    assert ok["schema"]["items"] == {"$ref": "#/components/schemas/IncidentView"}
    detail = _responses(openapi, "get", "/v1/incidents/{incident_id}")["200"]
    assert detail["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IncidentDetail"
    }
    shown = set(openapi["components"]["schemas"]["IncidentView"]["properties"])
    assert shown == set(Incident.model_fields) - INTERNAL_FIELDS
    assert _responses(openapi, "get", "/readyz")["200"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/webhooks/pagerduty", "PagerDutyEvent"),
        ("/v1/webhooks/alertmanager", "AlertmanagerWebhook"),
        ("/v1/webhooks/grafana", "GrafanaWebhook"),
        ("/v1/sources/{name}/posts", "PostIn"),
    ],
)
def test_the_signed_webhooks_have_request_schemas(openapi: dict[str, Any], path: str, model: str):
    body = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert f"#/components/schemas/{model}" in json.dumps(body["schema"])
    assert model in openapi["components"]["schemas"]


def _typed(schema: dict[str, Any]) -> bool:
    """A schema that says what is in it: a $ref, an object with properties, a list of those."""
    if "$ref" in schema or schema.get("properties"):
        return True
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}))
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    return bool(alternatives) and all(_typed(a) for a in alternatives)


def test_every_json_answer_has_a_schema_that_says_what_is_in_it(openapi: dict[str, Any]):
    # A route answering a free-form object (a dict with no response model) fails here; routes
    # answering HTML, text, a calendar… declare that media type instead (response_class).
    untyped = []
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            for code, answer in op["responses"].items():
                if not code.startswith("2"):
                    continue
                assert code == "204" or answer.get("content"), (method, path, code)
                json_answer = answer.get("content", {}).get("application/json")
                if json_answer is not None and not _typed(json_answer.get("schema", {})):
                    untyped.append(f"{method.upper()} {path} {code}")
    assert untyped == []


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/v1/people/{name}/oncall.ics", "text/calendar"),
        ("/v1/schedules/{name}/oncall.ics", "text/calendar"),
        ("/v1/corrections.jsonl", "application/x-ndjson"),
    ],
)
def test_files_declare_their_media_type(openapi: dict[str, Any], path: str, media_type: str):
    (declared,) = _responses(openapi, "get", path)["200"]["content"]
    assert declared.startswith(media_type)


def test_the_checked_in_asyncapi_matches_the_models():
    # Fails when a stream's model changes and docs/asyncapi.json was not regenerated.
    assert json.loads(CHECKED_IN.read_text()) == asyncapi.document(), (
        "docs/asyncapi.json is out of date: python -m shared.asyncapi > docs/asyncapi.json"
    )


def test_the_checked_in_openapi_matches_the_routes():
    # Fails when a route or a model changes and docs/openapi.json was not regenerated.
    assert json.loads(CHECKED_IN_OPENAPI.read_text()) == contracts.document(), (
        "docs/openapi.json is out of date: python -m services.ingest.contracts > docs/openapi.json"
    )


def test_the_openapi_copy_is_the_same_text_on_every_run():
    # Byte for byte, so regenerating without a change leaves no diff (no dict-order noise).
    assert CHECKED_IN_OPENAPI.read_text() == contracts.render()


def test_every_stream_has_a_real_payload_schema():
    doc = asyncapi.document()
    assert doc["asyncapi"].startswith("3.")
    for stream in (keys.POSTS, keys.COMMANDS, keys.CLASSIFIED, keys.INCIDENT_EVENTS):
        channel = doc["channels"][stream]
        (message,) = channel["messages"].values()
        name = message["$ref"].rsplit("/", 1)[1]
        payload = doc["components"]["messages"][name]["payload"]
        schema = doc["components"]["schemas"][payload["$ref"].rsplit("/", 1)[1]]
        assert schema["properties"], stream


def _validator(doc: dict[str, Any], model: str) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{model}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


async def test_what_the_services_write_is_what_the_asyncapi_says(
    settings: Settings, redis: Redis, run_services: Any, sink: HttpSink
):
    """The seed story through the real services; every entry of every stream validates against
    its payload schema, fetched from the running API."""
    k = keys.Keys(settings.namespace)
    base = f"http://127.0.0.1:{settings.http_port}"
    posts = [json.loads(line) for line in SEED_LINES]
    async with run_services(settings), httpx.AsyncClient(base_url=base, timeout=30) as api:
        doc = (await api.get("/asyncapi.json")).json()
        await api.post("/v1/subscriptions", json={"name": "s", "urls": [sink.url]})
        fields = ("id", "thread_id", "source", "author", "text")
        await api.post("/v1/posts", json=[{f: p[f] for f in fields if f in p} for p in posts])
        await eventually(lambda: len(sink.messages()) >= 1, timeout=60)
        (incident,) = (await api.get("/v1/incidents")).json()
        await api.post(f"/v1/incidents/{incident['id']}/ack", json={"note": "on it"})
        await eventually(lambda: _has(redis, k.stream(keys.COMMANDS)), timeout=30)
    assert doc == asyncapi.document()
    checked = 0
    for stream in asyncapi.STREAMS:
        validator = _validator(doc, stream.model.__name__)
        for _, entry in await redis.xrange(k.stream(stream.name)):
            validator.validate(json.loads(entry[b"data"]))
            checked += 1
    assert checked >= len(posts) * 2  # posts and their classifications at least


async def _has(redis: Redis, stream: str) -> bool:
    return bool(await redis.xlen(stream))


@pytest.mark.parametrize(
    ("method", "path", "code", "model"),
    [
        ("post", "/v1/posts", "202", "Accepted"),
        ("post", "/v1/incidents/{incident_id}/{action}", "202", "CommandAccepted"),
        ("get", "/v1/subscriptions", "200", "SubscriptionView"),
        ("post", "/v1/subscriptions", "201", "SubscriptionView"),
        ("get", "/v1/subscriptions/{sub_id}", "200", "SubscriptionWithCircuits"),
        ("patch", "/v1/subscriptions/{sub_id}", "200", "SubscriptionView"),
        ("post", "/v1/subscriptions/{sub_id}/test", "200", "SubscriptionTest"),
        ("get", "/healthz", "200", "Health"),
        ("get", "/readyz", "200", "Readiness"),
    ],
)
def test_answers_name_their_model(
    openapi: dict[str, Any], method: str, path: str, code: str, model: str
):
    schema = _responses(openapi, method, path)[code]["content"]["application/json"]["schema"]
    # (FastAPI qualifies a name two models share: …__posts__Accepted)
    assert re.search(rf'#/components/schemas/(\w+__)?{model}"', json.dumps(schema))
