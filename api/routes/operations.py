"""Operations routes: liveness, and readiness of Temporal and PostgreSQL."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response

from api.deps import Svc
from api.errors import ERRORS, RETRY_AFTER_SECONDS

router = APIRouter(responses=ERRORS, tags=["operations"])


@router.get("/health", tags=["operations"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], summary="Readiness: Temporal and PostgreSQL answer")
async def ready(svc: Svc, response: Response) -> dict[str, Any]:
    async def probe(check: Callable[[], Awaitable[Any]]) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), 5))
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False

    temporal, database = await asyncio.gather(
        probe(svc.client.service_client.check_health), probe(lambda: svc.pool.fetchval("SELECT 1"))
    )
    if not (temporal and database):
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {"status": "ready" if temporal and database else "unavailable", "temporal": temporal, "database": database}
