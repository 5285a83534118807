"""API routes for auditors: a referral's timeline, its state at a moment and its replay, reconciliation and the monthly sample."""

# No postponed annotations: FastAPI reads these routes' dependencies from the live objects.

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from api.deps import Services, Svc, allowed
from api.errors import ERRORS, ApiError, aware_moment, invalid
from audit.cases import MalformedReference, NotRead, UnknownCase, case_type, fetch_case, in_the_future, view_of
from audit.history import DecodedCase, ReferralHistories, decode_case
from audit.reconcile import ReconcileReport, reconcile
from audit.replay import ReplayReport, build_replayer, replay_in_process
from audit.report import render_timeline_html
from audit.sample import monthly_sample
from audit.timeline import EpisodeTimeline, ReferralTimeline, SittingTimeline, TriageTimeline
from auth.tokens import Caller
from readmodel.access_log import record_reads
from workflows.audit_models import AuditWorklist, Month
from workflows.missing_models import EpisodeState
from workflows.models import ReferralState, Role
from workflows.panel_models import SittingState
from workflows.triage_models import TriageState

AUDITORS = frozenset({Role.AUDITOR, Role.ADMIN})
# The worklist table's seed is a PostgreSQL integer.
MAX_SEED = 2**31 - 1
CASE = "a referral (REF-...), a missing episode (MIS-...) or a day's triage (TRIAGE-YYYY-MM-DD)"


router = APIRouter(prefix="/audit", tags=["audit"], responses=ERRORS)
Auditor = Annotated[Caller, Depends(allowed(AUDITORS, "audit referrals"))]


def no_such_case(reference: str) -> ApiError:
    try:
        return ApiError(404, f"reference: no such {case_type(reference).noun}", "reference")
    except MalformedReference:
        return ApiError(404, f"reference: not {CASE}", "reference")


async def histories(svc: Services, reference: str) -> ReferralHistories:
    """The case's history and its agreed actions' from the server; 404 if there is no such case."""
    try:
        return await fetch_case(svc.client, reference)
    except (MalformedReference, UnknownCase):
        raise no_such_case(reference) from None


async def decoded(svc: Services, reference: str) -> DecodedCase:
    return await decode_case(await histories(svc, reference), svc.client.data_converter)


def view_of_case(case: DecodedCase, view: str) -> Any:
    """The case's kind's timeline or state; 404 for a kind the audit does not read that way."""
    try:
        return view_of(case, view)
    except NotRead as error:
        raise ApiError(404, f"reference: {error}", "reference") from None


def aware(name: str, moment: datetime | None) -> datetime | None:
    return aware_moment(("query", name), moment)


def looking_back(case: DecodedCase, name: str, moment: datetime | None) -> datetime | None:
    """A moment to look back at: one in the future is refused, saying so."""
    moment = aware(name, moment)
    if in_the_future(case, moment):
        raise invalid(("query", name), "in the future: nothing is recorded after now (the current state is "
                                       "GET /referrals/{reference})")
    return moment


async def recorded(svc: Services, caller: Caller, action: str, references: list[str], **detail: Any) -> None:
    await record_reads(svc.access_log, caller.actor, action, references, {"client": "api"} | detail)


@router.get(
    "/referrals/{reference}/timeline",
    response_model=ReferralTimeline | EpisodeTimeline | TriageTimeline | SittingTimeline,
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or with ?format=html the HTML report"}},
    summary="A case's decision timeline",
)
async def timeline(
    reference: str,
    caller: Auditor,
    svc: Svc,
    format: Annotated[Literal["json", "html"], Query(description="html: the self-contained report")] = "json",
    at: Annotated[datetime | None, Query(description="as it stood then (ISO 8601; London time without an offset)")] = None,
) -> Any:
    """Steps against their deadlines (open ones measured to now, or to `at`), decisions, meetings, actions,
    escalations of a referral, a missing episode, a day's triage or a panel's sitting; no free text, no names."""
    case = await decoded(svc, reference)
    moment = looking_back(case, "at", at)
    try:
        result = view_of_case(case, "timeline")(case, moment, await svc.clock())
    except ValueError:
        raise invalid(("query", "at"), "before the case began: no facts were recorded by then") from None
    await recorded(svc, caller, "audit_timeline", [reference], format=format)
    return HTMLResponse(render_timeline_html(result)) if format == "html" else result


@router.get(
    "/referrals/{reference}/as-of",
    response_model=ReferralState | EpisodeState | TriageState | SittingState,
    summary="A case's state at a moment",
)
async def as_of(
    reference: str,
    caller: Auditor,
    svc: Svc,
    at: Annotated[datetime, Query(description="ISO 8601, London time without an offset, not in the future")],
) -> Any:
    """What the deciders could see at `at`, folded from the facts recorded by then."""
    aware("at", at)
    case = await decoded(svc, reference)
    moment = looking_back(case, "at", at)
    try:
        state = view_of_case(case, "state_at")(case, moment)
    except ValueError:
        raise invalid(("query", "at"), "before the case began: no facts were recorded by then") from None
    await recorded(svc, caller, "audit_as_of", [reference], at=moment.isoformat())
    return state


@router.get("/referrals/{reference}/replay", response_model=ReplayReport, summary="Replay a case's histories")
async def replay(reference: str, caller: Auditor, svc: Svc) -> ReplayReport:
    """Its history and its actions' against the current code: ok, non-deterministic or failed, each."""
    case = await histories(svc, reference)
    started = time.perf_counter()
    # In this process with the worker's sandboxed replayer: a case has only a few histories.
    outcomes = await replay_in_process(build_replayer(svc.settings), case.all())
    report = ReplayReport(histories=outcomes, seconds=time.perf_counter() - started, workers=1)
    await recorded(svc, caller, "audit_replay", [reference], histories=len(outcomes))
    return report


@router.get("/reconcile", response_model=ReconcileReport, summary="Histories against the PostgreSQL records")
async def reconcile_records(
    caller: Auditor,
    svc: Svc,
    reference: Annotated[str | None, Query(description=f"only this case: {CASE}")] = None,
    since: Annotated[datetime | None, Query(description="referrals submitted at or after")] = None,
    until: Annotated[datetime | None, Query(description="referrals submitted before")] = None,
) -> ReconcileReport:
    """Every fact must have its rows and every row its fact; mismatches name tables, keys and fields, never values."""
    if reference is not None:
        try:
            case_type(reference)
        except MalformedReference:
            raise no_such_case(reference) from None
    report = await reconcile(
        svc.client, svc.pool, since=aware("since", since), until=aware("until", until),
        references=[reference] if reference else None,
    )
    # Neither a history nor a row nor a purge nor an import: the reference names nothing.
    if reference is not None and not (report.facts or report.rows or report.purged or report.imported):
        raise no_such_case(reference)
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
