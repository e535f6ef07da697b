"""/v1/subscriptions: who hears about what. URLs are masked in every answer."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from services.ingest.context import Context, ctx, require_token
from shared.subscriptions import SubscriptionSpec, public

router = APIRouter(tags=["subscriptions"])


@router.post("/v1/subscriptions", status_code=201, dependencies=[Depends(require_token)])
async def create_subscription(spec: SubscriptionSpec, c: Context = Depends(ctx)) -> dict[str, Any]:
    sub = spec.to_subscription(origin="api")
    await c.subscriptions.put(sub)
    return public(sub)


@router.get("/v1/subscriptions")
async def list_subscriptions(c: Context = Depends(ctx)) -> list[dict[str, Any]]:
    return [public(s) for s in await c.subscriptions.all()]


@router.get("/v1/subscriptions/{sub_id}")
async def get_subscription(sub_id: str, c: Context = Depends(ctx)) -> dict[str, Any]:
    sub = await c.subscriptions.get(sub_id)
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {sub_id!r}")
    return public(sub)


@router.delete("/v1/subscriptions/{sub_id}", status_code=204, dependencies=[Depends(require_token)])
async def delete_subscription(sub_id: str, c: Context = Depends(ctx)) -> None:
    if not await c.subscriptions.delete(sub_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscription {sub_id!r}")
