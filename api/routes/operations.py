"""Operations routes: liveness, readiness of Temporal and PostgreSQL, and Prometheus metrics."""

from typing import Any

from fastapi import APIRouter, Response

from api.deps import Svc
from api.errors import ERRORS, RETRY_AFTER_SECONDS
from runtime.metrics import CONTENT_TYPE
from runtime.probes import readiness

router = APIRouter(responses=ERRORS, tags=["operations"])


@router.get("/health", tags=["operations"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], summary="Readiness: Temporal and PostgreSQL answer")
async def ready(svc: Svc, response: Response) -> dict[str, Any]:
    body = await readiness(
        {"temporal": svc.client.service_client.check_health, "database": lambda: svc.pool.fetchval("SELECT 1")}
    )
    if body["status"] != "ready":
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return body


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics: the read model's gauges, the domain's counters and the Temporal SDK's series",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "the Prometheus text format"}},
)
async def metrics(svc: Svc) -> Response:
    return Response(await svc.gauges.scrape(), media_type=CONTENT_TYPE)
