"""GET /metrics: this replica's metrics and the deployment's state, in the Prometheus format."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services import metrics
from services.ingest.context import Context, ctx
from shared import auth

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(auth.metrics_access)],
    responses={
        200: {
            "content": {metrics.CONTENT_TYPE: {}, metrics.OPENMETRICS_TYPE: {}},
            "description": "Prometheus text, or OpenMetrics (with exemplars) when asked for",
        }
    },
)
async def get_metrics(request: Request, c: Context = Depends(ctx)) -> Response:
    content_type = metrics.format_for(request.headers.get("accept"))
    body = await metrics.exposition(c.redis, c.settings.namespace, content_type)
    return Response(body, media_type=content_type)
