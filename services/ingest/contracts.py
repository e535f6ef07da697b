"""The API's contract as clients read it (/openapi.json), and the streams' (/asyncapi.json).

FastAPI describes what routes declare. What it cannot see is added here, in one place:
- the error answers every route can give (401, 403, 404, 409, 412, 413, 415, 422, 503), each with
  the `Error` schema redalert really answers with (FastAPI's default 422 schema is not ours);
- request schemas of the routes that read their body themselves (signed webhooks verify the
  raw bytes before parsing them): the models they parse it with.
Response models live with their routes (`response_model=`); views shared by several are below.

A copy of the document is kept in docs/openapi.json, and a test fails when a route or a model
changes without it being regenerated:

    python -m services.ingest.contracts > docs/openapi.json
"""

import json
import sys
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, create_model

from shared.asyncapi import document as asyncapi_document
from shared.incidents import INTERNAL_FIELDS
from shared.models import Incident

# --- views: what GET answers show (typed, so clients can generate code from them) --------------

IncidentView = create_model(  # an Incident without the fields kept for classify's own use
    "IncidentView",
    __config__=ConfigDict(extra="ignore"),
    __doc__="An incident as the API shows it.",
    **{  # type: ignore[call-overload]
        name: (field.annotation, field)
        for name, field in Incident.model_fields.items()
        if name not in INTERNAL_FIELDS
    },
)


class Open(BaseModel):
    """An answer's view. Answers may carry more than these fields (they grow); what is listed is
    guaranteed. Routes that build their answer as a dict declare such a view with
    `response_model_exclude_unset=True`: the dict goes out as it was built, no key dropped (extra
    ones allowed) and none added (fields it left out stay out)."""

    model_config = ConfigDict(extra="allow")


def view_of(
    model: type[BaseModel], name: str, doc: str, *, without: Iterable[str] = (), **more: Any
) -> type[Open]:
    """`model` as answers show it: its fields with their types and constraints, but not the
    model's own validators (an answer is not an input: a masked URL need not be sendable), less
    `without`, plus `more` (name=(type, default) or name=type)."""
    fields: dict[str, Any] = {
        n: (f.annotation, f) for n, f in model.model_fields.items() if n not in set(without)
    }
    fields.update({n: v if isinstance(v, tuple) else (v, ...) for n, v in more.items()})
    return create_model(name, __base__=Open, __doc__=doc, **fields)  # type: ignore[no-any-return]


class PostInIncident(Open):
    id: str
    source: str
    text: str
    severity: str
    received_at: str | None = None


class TimelineEntry(Open):
    # Transitions have an event id; escalation lines (escalation_started, page, escalation_held,
    # escalation_stopped: services/notify/escalation.py) have none, and name their `policy`.
    event_id: str | None = None
    kind: str
    at: str
    severity: str
    status: str
    reason: str


class IncidentDetail(Open):
    """An incident with its posts, its transitions and who was told what."""

    incident: IncidentView  # type: ignore[valid-type]
    posts: list[PostInIncident] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    deliveries: list[dict[str, Any]] = Field(default_factory=list)


class SubscriptionView(Open):
    """A subscription as the API shows it: URLs masked, a webhook's secret as ****."""

    id: str
    name: str
    origin: str = Field(description="api, or file (managed by the subscriptions file)")
    urls: list[str] = Field(default_factory=list, description="apprise URLs, masked")
    webhook: dict[str, Any] | None = Field(default=None, description="url (masked), secret ****")
    min_severity: str
    topics: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str | None = None


class SubscriptionWithCircuits(SubscriptionView):
    circuits: list[dict[str, Any]] = Field(
        default_factory=list, description="each URL's circuit breaker: state, failures, last error"
    )


class UrlTestResult(Open):
    index: int
    url: str = Field(description="masked")
    ok: bool
    latency_ms: float
    error: str | None = None


class SubscriptionTest(Open):
    subscription: str
    ok: bool
    results: list[UrlTestResult]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, consumer groups missing, or redis unreachable")
    groups: dict[str, bool] = Field(
        default_factory=dict, description="each work stream: does its consumer group exist"
    )


class Error(BaseModel):
    """Every 4xx and 5xx answer: `error` says what is wrong and names the field; 422s list each
    field in `detail`. (Some answers carry the message in `detail` alone.)"""

    error: str | None = Field(default=None, description="the message, naming the field")
    detail: str | list[dict[str, Any]] | None = Field(
        default=None, description="for 422: one entry per field (loc, msg, type)"
    )


# --- error answers ------------------------------------------------------------------------------

WHY = {
    "401": "no token, or an unknown one (`Authorization: Bearer <token>`), or a bad signature",
    "403": "the token's role may not do this",
    "404": "no such thing (the path names it)",
    "409": "conflicts with what exists (a name taken, managed by a file, busy)",
    "412": "`If-Match` does not match the current revision",
    "413": "body over REDALERT_MAX_BODY_BYTES, or too many items",
    "415": 'not JSON: send JSON, e.g. {"text": "…"}',
    "422": "a field is missing or invalid: `error` names it",
    "503": "Redis unreachable, or not confirmed by enough replicas (REDALERT_MIN_REPLICAS_ACK): "
    "retry",
}

# Answers some routes give besides the general ones (by method and path template).
EXTRA: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/v1/posts"): ("415", "503"),
    ("post", "/v1/sources/{name}/posts"): ("503",),
    ("post", "/v1/subscriptions"): ("409",),
    ("put", "/v1/subscriptions/{sub_id}"): ("409",),
    ("patch", "/v1/subscriptions/{sub_id}"): ("409",),
    ("delete", "/v1/subscriptions/{sub_id}"): ("409",),
    ("post", "/v1/sources"): ("409",),
    ("post", "/v1/sources/{name}/poll"): ("409",),
    ("post", "/v1/tokens"): ("409",),
    ("post", "/v1/people"): ("409",),
    ("post", "/v1/schedules"): ("409",),
    ("post", "/v1/escalation-policies"): ("409",),
    ("put", "/v1/rules"): ("412", "503"),
    ("get", "/v1/rules"): ("503",),
    ("post", "/v1/rules/test"): ("503",),
    ("post", "/v1/incidents/{incident_id}/{action}"): ("503",),
    ("post", "/v1/webhooks/pagerduty"): ("503",),
    ("post", "/v1/webhooks/alertmanager"): ("503",),
    ("post", "/v1/webhooks/grafana"): ("503",),
    ("post", "/v1/webhooks/json/{name}"): ("503",),
}

# Routes that read and verify their raw body, then parse it with these models.
REQUEST_BODIES: dict[tuple[str, str], str] = {
    ("post", "/v1/webhooks/pagerduty"): "services.ingest.routes.webhooks:PagerDutyEvent",
    ("post", "/v1/webhooks/alertmanager"): "services.ingest.routes.webhooks:AlertmanagerWebhook",
    ("post", "/v1/webhooks/grafana"): "services.ingest.routes.grafana:GrafanaWebhook",
    ("post", "/v1/sources/{name}/posts"): "services.ingest.routes.posts:PostIn",
}
LISTS_ALLOWED = {("post", "/v1/sources/{name}/posts")}  # one post or a list, like /v1/posts


def _model(path: str) -> type[BaseModel]:
    module, _, name = path.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)  # type: ignore[no-any-return]


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def enrich(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_ref = _add_schema(schemas, Error)
    for (method, path), target in REQUEST_BODIES.items():
        op = spec["paths"].get(path, {}).get(method)
        if op is None or "requestBody" in op:
            continue
        ref = _add_schema(schemas, _model(target))
        schema = (
            {"anyOf": [ref, {"type": "array", "items": ref}]}
            if (method, path) in LISTS_ALLOWED
            else ref
        )
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            codes = set(EXTRA.get((method, path), ()))
            if path.startswith("/v1/"):
                codes |= {"401", "403"}
            if "{" in path:
                codes.add("404")
            if "requestBody" in op:
                codes |= {"413", "422"}
            if "422" in op["responses"]:
                codes.add("422")
            for code in sorted(codes):
                op["responses"][code] = {
                    "description": WHY[code],
                    "content": {"application/json": {"schema": error_ref}},
                }
    # FastAPI's own 422 schemas are not what redalert answers with: drop them if unused.
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and name not in str(spec["paths"]):
            del schemas[name]
    return spec


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = enrich(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(router)


def document() -> dict[str, Any]:
    """The OpenAPI document of an app built with the default settings (what docs/ keeps)."""
    from services.ingest.app import create_app  # the app installs this module: import late
    from shared.settings import Settings

    spec = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    schemas = spec.get("components", {}).get("schemas", {})
    spec["components"]["schemas"] = dict(sorted(schemas.items()))  # stable diffs
    return spec


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


router = APIRouter(tags=["health"])


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi() -> dict[str, Any]:
    """The streams' contract (AsyncAPI 3.0), generated from the models."""
    return asyncapi_document()


if __name__ == "__main__":
    sys.stdout.write(render())
