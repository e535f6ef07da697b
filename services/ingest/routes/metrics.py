"""GET /metrics: this replica's metrics and the deployment's state, in the Prometheus format."""

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services import metrics
from services.ingest.context import Context, ctx
from shared import auth

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(auth.metrics_access)],
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text"}},
)
async def get_metrics(c: Context = Depends(ctx)) -> Response:
    body = await metrics.exposition(c.redis, c.settings.namespace)
    return Response(body, media_type=metrics.CONTENT_TYPE)
