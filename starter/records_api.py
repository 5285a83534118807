"""API routes over the records themselves: the access log for auditors, retention for administrators."""

# No postponed annotations: FastAPI reads these routes' dependencies from the live objects.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activities.access_log import AccessRecord
from activities.retention import Retention, RetentionReport
from starter.auth import Caller
from starter.errors import aware_moment
from workflows.models import Role

READERS_OF_THE_ACCESS_LOG = frozenset({Role.AUDITOR, Role.ADMIN})
RECORDS_ADMINISTRATORS = frozenset({Role.ADMIN})
# Deeper than this, narrow the query with `since` or `actor_id` (and PostgreSQL's OFFSET is a bigint).
MAX_OFFSET = 1_000_000


def records_router(allowed, services, reference_pattern: str) -> APIRouter:
    """Built by the API with its own authentication dependencies, so the rules stay in one place."""
    router = APIRouter(tags=["records"])
    Svc = Annotated[object, Depends(services)]

    @router.get("/access-log", response_model=list[AccessRecord], summary="Who read which referral, and when")
    async def access_log(
        caller: Annotated[Caller, Depends(allowed(READERS_OF_THE_ACCESS_LOG, "read the access log"))],
        svc: Svc,
        reference: Annotated[str | None, Query(pattern=rf"^{reference_pattern}$")] = None,
        actor_id: Annotated[str | None, Query(max_length=40)] = None,
        since: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[AccessRecord]:
        entries = await svc.access_log.query(
            reference=reference, actor_id=actor_id, since=aware_moment(("query", "since"), since), limit=limit,
            offset=offset,
        )
        # Reading the access log is itself an access worth recording.
        await svc.access_log.record(caller.actor, "api", "read_access_log", reference, {"entries": len(entries)})
        return entries

    @router.get("/retention", response_model=RetentionReport, summary="Dry run: closed referrals due for removal")
    async def retention_due(
        _: Annotated[Caller, Depends(allowed(RECORDS_ADMINISTRATORS, "review retention"))], svc: Svc
    ) -> RetentionReport:
        return await Retention(svc.pool, svc.settings.retention_days).due(await svc.clock())

    @router.post("/retention/purge", response_model=RetentionReport, summary="Remove closed referrals' records")
    async def retention_purge(
        caller: Annotated[Caller, Depends(allowed(RECORDS_ADMINISTRATORS, "purge records"))], svc: Svc
    ) -> RetentionReport:
        return await Retention(svc.pool, svc.settings.retention_days).purge(caller.actor, await svc.clock())

    return router
