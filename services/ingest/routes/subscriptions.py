"""/v1/subscriptions: who hears about what. URLs and secrets are masked in every answer.

Subscriptions from the subscriptions file (`origin: file`) are changed by editing the file and
applying it (`redalert subscriptions apply FILE`, or a restart), not one by one: the API answers
409 to PUT, PATCH and DELETE on them.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ingest.audit import note
from services.ingest.context import Context, check_targets, context_of, ctx, within_cap
from services.ingest.contracts import SubscriptionTest, SubscriptionView, SubscriptionWithCircuits
from services.notify.circuit import CircuitStore
from services.notify.render import render_test
from services.notify.send import Sender
from shared import auth
from shared.models import Subscription
from shared.subscriptions import (
    SubscriptionSpec,
    file_subscriptions,
    keep_masked_secrets,
    public,
)

router = APIRouter(tags=["subscriptions"])


class Applied(BaseModel):
    """The names of the subscriptions an apply created, updated and removed."""

    created: list[str]
    updated: list[str]
    removed: list[str]


class ApplyBody(BaseModel):
    """`redalert subscriptions apply FILE`: the file's subscriptions, to match exactly."""

    model_config = ConfigDict(extra="forbid")
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list, max_length=10_000)


def sender(request: Request) -> Sender:
    """One Sender per app, for test messages and replays."""
    if getattr(request.app.state, "sender", None) is None:
        request.app.state.sender = Sender(context_of(request).settings)
    return request.app.state.sender


async def _existing(c: Context, sub_id: str, *, writing: bool = False) -> Subscription:
    sub = await c.subscriptions.get(sub_id)
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {sub_id!r}")
    if writing and sub.origin == "file":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"subscription {sub.name!r} comes from the subscriptions file: change the file and "
            "apply it (`redalert subscriptions apply FILE`)",
        )
    return sub


# What GET shows besides the fields: a PUT or PATCH may send them back; they are not changed.
_READ_ONLY = ("id", "origin", "created_at", "updated_at", "circuits", "last_error")


def _writable(sub_id: str, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("id", sub_id) != sub_id:
        raise RequestValidationError(
            [{"loc": ("body", "id"), "msg": "does not match the URL", "type": "value_error"}]
        )
    return {k: v for k, v in body.items() if k not in _READ_ONLY}


def _validated(data: dict[str, Any]) -> SubscriptionSpec:
    """A PUT/PATCH body, once merged, fails like any body: 422 naming the field."""
    try:
        return SubscriptionSpec.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors()]
        ) from None


@router.post(
    "/v1/subscriptions",
    status_code=201,
    dependencies=[Depends(auth.admin)],
    response_model=SubscriptionView,
)
async def create_subscription(
    spec: SubscriptionSpec, request: Request, c: Context = Depends(ctx)
) -> dict[str, Any]:
    cap = c.settings.max_subscriptions
    await within_cap(c, c.keys.subscriptions, cap, "subscriptions", "REDALERT_MAX_SUBSCRIPTIONS")
    await check_targets(c.settings, _targets(spec))
    sub = spec.to_subscription(origin="api")
    await _put_unique(c, sub)
    note(request, target=sub.id, changes=public(sub))
    return public(sub)


async def _put_unique(c: Context, sub: Subscription) -> None:
    clash = await c.subscriptions.put_unique(sub)
    if clash is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"name: a subscription named {clash.name!r} exists (id {clash.id}); "
            "choose another name, or change that one",
        )


@router.get(
    "/v1/subscriptions",
    dependencies=[Depends(auth.viewer)],
    response_model=list[SubscriptionView],
)
async def list_subscriptions(c: Context = Depends(ctx)) -> list[dict[str, Any]]:
    return [public(s) for s in await c.subscriptions.all()]


@router.get(
    "/v1/subscriptions/{sub_id}",
    dependencies=[Depends(auth.viewer)],
    response_model=SubscriptionWithCircuits,
)
async def get_subscription(sub_id: str, c: Context = Depends(ctx)) -> dict[str, Any]:
    """The subscription, with the circuit breaker state of each of its URLs and its last own
    failure (`last_error`: a template that failed, settings notify could not use), if any."""
    sub = await _existing(c, sub_id)
    n_targets = 1 if sub.webhook is not None else len(sub.urls)
    circuits = await CircuitStore(c.redis, c.keys).of(sub.id, n_targets)
    now = datetime.now(UTC)
    by_index = {circuit.index: circuit for circuit in circuits}
    shown = public(sub)
    targets = [shown["webhook"]["url"]] if sub.webhook is not None else shown["urls"]
    shown["circuits"] = [
        by_index[i].public(now)
        if i in by_index
        else {"index": i, "url": url, "state": "closed", "failures": 0}
        for i, url in enumerate(targets)
    ]
    last = await c.subscriptions.last_error(sub.id)
    shown["last_error"] = last.model_dump(mode="json") if last else None
    return shown


@router.put(
    "/v1/subscriptions/{sub_id}",
    dependencies=[Depends(auth.admin)],
    response_model=SubscriptionView,
)
async def replace_subscription(
    sub_id: str, request: Request, body: dict[str, Any] = Body(...), c: Context = Depends(ctx)
) -> dict[str, Any]:
    """Replace every field. Masked URLs and a `****` secret, as GET shows them, are kept."""
    old = await _existing(c, sub_id, writing=True)
    spec = _validated(keep_masked_secrets(_writable(sub_id, body), old))
    return await _save(c, old, spec, request)


@router.patch(
    "/v1/subscriptions/{sub_id}",
    dependencies=[Depends(auth.admin)],
    response_model=SubscriptionView,
)
async def update_subscription(
    sub_id: str, request: Request, body: dict[str, Any] = Body(...), c: Context = Depends(ctx)
) -> dict[str, Any]:
    """Change the fields given; the others stay as they are."""
    old = await _existing(c, sub_id, writing=True)
    body = _writable(sub_id, body)
    fields = set(SubscriptionSpec.model_fields)
    current = old.model_dump(mode="json", include=fields, exclude_defaults=True)
    if "urls" in body and "webhook" not in body:
        current.pop("webhook", None)  # switching to apprise URLs drops the webhook…
    if "webhook" in body and "urls" not in body:
        current.pop("urls", None)  # …and the other way round
    spec = _validated(keep_masked_secrets({**current, **body}, old))
    return await _save(c, old, spec, request)


def _targets(spec: SubscriptionSpec) -> dict[tuple[str | int, ...], str]:
    if spec.webhook is not None:
        return {("webhook", "url"): spec.webhook.url}
    return {("urls", i): url for i, url in enumerate(spec.urls)}


async def _save(
    c: Context, old: Subscription, spec: SubscriptionSpec, request: Request
) -> dict[str, Any]:
    await check_targets(c.settings, _targets(spec))
    sub = spec.to_subscription(
        id=old.id, origin=old.origin, created_at=old.created_at, updated_at=datetime.now(UTC)
    )
    await _put_unique(c, sub)
    if sub.urls != old.urls or sub.webhook != old.webhook:
        await CircuitStore(c.redis, c.keys).forget(sub.id)  # new targets start closed
    before, after = public(old), public(sub)
    changed = {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}
    changed.pop("updated_at", None)
    note(request, changes=changed)
    return after


@router.delete("/v1/subscriptions/{sub_id}", status_code=204, dependencies=[Depends(auth.admin)])
async def delete_subscription(sub_id: str, c: Context = Depends(ctx)) -> None:
    await _existing(c, sub_id, writing=True)
    await c.subscriptions.delete(sub_id)
    await CircuitStore(c.redis, c.keys).forget(sub_id)


@router.post(
    "/v1/subscriptions/{sub_id}/test",
    dependencies=[Depends(auth.admin)],
    response_model=SubscriptionTest,
)
async def send_test_message(
    sub_id: str, c: Context = Depends(ctx), send: Sender = Depends(sender)
) -> dict[str, Any]:
    """Send a test message to every URL now (one attempt each) and say how each went."""
    sub = await _existing(c, sub_id)
    results = await send.deliver(sub, render_test(sub), attempts=1)
    return {
        "subscription": sub.id,
        "ok": all(r.ok for r in results),
        "results": [
            {
                "index": r.index,
                "url": r.url,
                "ok": r.ok,
                "latency_ms": r.attempts[-1].latency_ms if r.attempts else 0,
                "error": r.error,
            }
            for r in results
        ],
    }


@router.post("/v1/subscriptions/apply", dependencies=[Depends(auth.admin)], response_model=Applied)
async def apply_subscriptions(
    body: ApplyBody, request: Request, c: Context = Depends(ctx)
) -> dict[str, list[str]]:
    """Make the file-managed subscriptions exactly these: create, update, remove to match."""
    try:
        declared = file_subscriptions(body.subscriptions)
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"subscriptions: {e}") from None
    outcome = await c.subscriptions.apply(declared)
    note(request, changes=outcome)
    return outcome
