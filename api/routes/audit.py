"""API routes for auditors: a referral's timeline, its state at a moment and its replay, reconciliation and the monthly sample."""

# No postponed annotations: FastAPI reads these routes' dependencies from the live objects.

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from api.deps import Services, Svc, allowed
from api.errors import ERRORS, aware_moment, invalid
from audit.as_of import state_from_facts
from audit.history import DecodedReferral, ReferralHistories, decode_referral, fetch_referral
from audit.reconcile import ReconcileReport, reconcile
from audit.replay import ReplayReport, build_replayer, replay_in_process
from audit.report import render_timeline_html
from audit.sample import monthly_sample
from audit.timeline import ReferralTimeline, build_timeline
from auth.tokens import Caller
from readmodel.access_log import record_reads
from starter.referrals import Referrals
from workflows.audit_models import AuditWorklist, Month
from workflows.models import ReferralState, Role

AUDITORS = frozenset({Role.AUDITOR, Role.ADMIN})
# The worklist table's seed is a PostgreSQL integer.
MAX_SEED = 2**31 - 1


router = APIRouter(prefix="/audit", tags=["audit"], responses=ERRORS)
Auditor = Annotated[Caller, Depends(allowed(AUDITORS, "audit referrals"))]


async def histories(svc: Services, reference: str) -> ReferralHistories:
    """The referral's history and its agreed actions' from the server; 404 if there is no such referral."""
    with Referrals.reaching(reference):
        return await fetch_referral(svc.client, reference)


async def decoded(svc: Services, reference: str) -> DecodedReferral:
    return await decode_referral(await histories(svc, reference), svc.client.data_converter)


def aware(name: str, moment: datetime | None) -> datetime | None:
    return aware_moment(("query", name), moment)


async def recorded(svc: Services, caller: Caller, action: str, references: list[str], **detail: Any) -> None:
    await record_reads(svc.access_log, caller.actor, action, references, {"client": "api"} | detail)


@router.get(
    "/referrals/{reference}/timeline",
    response_model=ReferralTimeline,
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or with ?format=html the HTML report"}},
    summary="A referral's decision timeline",
)
async def timeline(
    reference: str,
    caller: Auditor,
    svc: Svc,
    format: Annotated[Literal["json", "html"], Query(description="html: the self-contained report")] = "json",
) -> Any:
    """Stages against their deadlines, decisions, meetings, actions, escalations; no free text, no names."""
    result = build_timeline(await decoded(svc, reference))
    await recorded(svc, caller, "audit_timeline", [reference], format=format)
    return HTMLResponse(render_timeline_html(result)) if format == "html" else result


@router.get("/referrals/{reference}/as-of", response_model=ReferralState, summary="A referral's state at a moment")
async def as_of(
    reference: str,
    caller: Auditor,
    svc: Svc,
    at: Annotated[datetime, Query(description="ISO 8601 with a timezone offset")],
) -> ReferralState:
    """What the deciders could see at `at`, folded from the facts recorded by then."""
    moment = aware("at", at)
    try:
        state = state_from_facts(await decoded(svc, reference), moment)
    except ValueError:
        raise invalid(("query", "at"), "before the referral was submitted: no facts were recorded by then") from None
    await recorded(svc, caller, "audit_as_of", [reference], at=moment.isoformat())
    return state


@router.get("/referrals/{reference}/replay", response_model=ReplayReport, summary="Replay a referral's histories")
async def replay(reference: str, caller: Auditor, svc: Svc) -> ReplayReport:
    """Its history and its actions' against the current code: ok, non-deterministic or failed, each."""
    referral = await histories(svc, reference)
    started = time.perf_counter()
    # In this process with the worker's sandboxed replayer: a referral has only a few histories.
    outcomes = await replay_in_process(build_replayer(svc.settings), referral.all())
    report = ReplayReport(histories=outcomes, seconds=time.perf_counter() - started, workers=1)
    await recorded(svc, caller, "audit_replay", [reference], histories=len(outcomes))
    return report


@router.get("/reconcile", response_model=ReconcileReport, summary="Histories against the PostgreSQL records")
async def reconcile_records(
    caller: Auditor,
    svc: Svc,
    reference: Annotated[str | None, Query(description="only this referral")] = None,
    since: Annotated[datetime | None, Query(description="referrals submitted at or after")] = None,
    until: Annotated[datetime | None, Query(description="referrals submitted before")] = None,
) -> ReconcileReport:
    """Every fact must have its rows and every row its fact; mismatches name tables, keys and fields, never values."""
    if reference is not None and not Referrals.matches(reference):
        raise Referrals.missing()
    report = await reconcile(
        svc.client, svc.pool, since=aware("since", since), until=aware("until", until),
        references=[reference] if reference else None,
    )
    # Neither a history nor a row nor a purge: the reference names nothing.
    if reference is not None and not (report.facts or report.rows or report.purged):
        raise Referrals.missing()
    await recorded(svc, caller, "audit_reconcile", [reference] if reference else [], referrals=report.referrals)
    return report


@router.post("/samples", response_model=AuditWorklist, summary="Draw the month's quality-assurance sample")
async def sample(
    caller: Auditor,
    svc: Svc,
    month: Annotated[Month, Query(description="YYYY-MM")],
    seed: Annotated[int, Query(ge=0, le=MAX_SEED, description="the same month and seed give the same cases")] = 0,
) -> AuditWorklist:
    """Drawn and recorded as a worklist under the caller, or the one already recorded for this month and seed."""
    worklist = await monthly_sample(svc.pool, month, seed, drawn_by=caller.actor.id)
    await recorded(svc, caller, "audit_sample", [], month=month, seed=seed, items=len(worklist.items))
    return worklist
