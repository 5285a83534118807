"""API routes over the records themselves: the access log for auditors, retention and quarantined facts for administrators."""

# No postponed annotations: FastAPI reads these routes' dependencies from the live objects.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from activities.records import QuarantinedFact, Reapplication, ReferralRecords
from api.deps import Channel, Svc, allowed
from api.errors import aware_moment
from auth.tokens import Caller
from readmodel.access_log import AccessRecord
from readmodel.retention import Retention, RetentionReport
from starter.referrals import REFERENCE
from workflows.models import Role

READERS_OF_THE_ACCESS_LOG = frozenset({Role.AUDITOR, Role.ADMIN})
RECORDS_ADMINISTRATORS = frozenset({Role.ADMIN})
# The access log's ids are PostgreSQL bigints.
MAX_ID = 2**63 - 1


router = APIRouter(tags=["records"])


@router.get("/access-log", response_model=list[AccessRecord], summary="Who read which referral, and when")
async def access_log(
    caller: Annotated[Caller, Depends(allowed(READERS_OF_THE_ACCESS_LOG, "read the access log"))],
    channel: Channel,
    svc: Svc,
    reference: Annotated[str | None, Query(pattern=REFERENCE.pattern)] = None,
    actor_id: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="the next page: entries older than this id "
                                        "(the last id of the page read)")] = None,
) -> list[AccessRecord]:
    """Newest first; page on with `before`, which reads recorded meanwhile neither repeat nor hide."""
    entries = await svc.access_log.query(
        reference=reference, actor_id=actor_id, since=aware_moment(("query", "since"), since), limit=limit,
        before=before,
    )
    # Reading the access log is itself an access worth recording.
    await svc.access_log.record(caller.actor, channel, "read_access_log", reference, {"entries": len(entries)})
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


@router.get("/quarantine", response_model=list[QuarantinedFact], summary="Facts that could not be recorded")
async def quarantine(
    _: Annotated[Caller, Depends(allowed(RECORDS_ADMINISTRATORS, "review quarantined facts"))],
    svc: Svc,
    reference: Annotated[str | None, Query(pattern=REFERENCE.pattern)] = None,
    resolved: Annotated[bool, Query(description="include facts already re-applied")] = False,
) -> list[QuarantinedFact]:
    return await ReferralRecords(svc.pool).quarantined(reference, include_resolved=resolved)


@router.post(
    "/quarantine/reapply", response_model=list[Reapplication], summary="Re-apply quarantined facts once the cause is fixed"
)
async def quarantine_reapply(
    caller: Annotated[Caller, Depends(allowed(RECORDS_ADMINISTRATORS, "re-apply quarantined facts"))],
    channel: Channel,
    svc: Svc,
    reference: Annotated[str | None, Query(pattern=REFERENCE.pattern)] = None,
) -> list[Reapplication]:
    outcomes = await ReferralRecords(svc.pool).reapply_quarantined(caller.actor, reference)
    # Each re-application is in the quarantine row; who ran it is in the access log too.
    for reference_touched in sorted({o.reference for o in outcomes}):
        mine = [o for o in outcomes if o.reference == reference_touched]
        await svc.access_log.record(caller.actor, channel, "reapply_quarantined", reference_touched,
                                    {"facts": len(mine), "resolved": sum(o.resolved for o in mine)})
    return outcomes
