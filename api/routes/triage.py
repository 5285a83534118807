"""Triage routes: a day's domestic-abuse triage (its list, each referral's history and decision), opening it, and deciding on a listed referral."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from api import models as bodies
from api.deps import REFERRAL_LISTERS, IdempotencyKey, Svc, allowed, decision_key
from api.errors import DECISION_ERRORS, ERRORS, invalid
from api.routes.decisions import build_decision
from auth.tokens import Caller
from starter.triage import Triages, opening_problem
from workflows.authority import TRIAGE_DECIDERS, TRIAGE_OPENERS
from workflows.calendar import local_date
from workflows.models import EARLIEST, LATEST
from workflows.triage_models import TriageDecision, TriageState

router = APIRouter(responses=ERRORS, tags=["triage"])

def triage_day(day: Annotated[date, Path(description="the triage day, a London date (YYYY-MM-DD)")]) -> date:
    if not EARLIEST.date() <= day < LATEST.date():
        raise invalid(("path", "day"), "must lie between 1900 and 2200")
    return day


Day = Annotated[date, Depends(triage_day)]


def triages(svc: Svc) -> Triages:
    return Triages(svc.client, svc.settings.decision_timeout_seconds)


@router.get("/triage/{day}", response_model=TriageState, summary="A day's triage")
async def show_triage(
    day: Day,
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "read a triage"))],
    svc: Svc,
) -> Any:
    """The day's list: each referral's grade, children present, prior referrals, due time and decision; its escalations."""
    return await triages(svc).state(Triages.workflow_id(day))


@router.post(
    "/triage/{day}",
    status_code=201,
    response_model=TriageState,
    summary="Open a day's triage",
    responses={200: {"model": TriageState, "description": "the day's triage was already open: the same triage"}},
)
async def open_triage(
    day: Day,
    response: Response,
    caller: Annotated[Caller, Depends(allowed(TRIAGE_OPENERS, "open a triage"))],
    svc: Svc,
) -> Any:
    """Open the day's triage now (201), as the daily schedule does at 07:00; a day already open is returned (200).

    The day must be a working day, and today or earlier.
    """
    policy = svc.sla_policy
    problem = opening_problem(day, local_date(await svc.clock(), policy.timezone), policy)
    if problem is not None:
        raise invalid(("path", "day"), problem.split(": ", 1)[1])
    opened = await triages(svc).open(day, policy, svc.settings.task_queue)
    if not opened.created:
        response.status_code = 200
    return opened.state


@router.post(
    "/triage/{day}/decisions",
    response_model=TriageState,
    responses=DECISION_ERRORS,
    summary="Record a triage decision",
    description=f"{TriageDecision.__doc__}\n\nAllowed roles: " + ", ".join(sorted(r.value for r in TRIAGE_DECIDERS)),
)
async def decide_triage(
    day: Day,
    body: bodies.request_model(TriageDecision),  # type: ignore[valid-type]
    caller: Annotated[Caller, Depends(allowed(TRIAGE_DECIDERS, "record a triage decision"))],
    svc: Svc,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    decision = build_decision(TriageDecision, body, caller)
    return await triages(svc).decide(Triages.workflow_id(day), decision, decision_key(idempotency_key, response))
