"""Trigger-plan routes: a child's first plan starts its workflow, its state (every read in the access log), the plans due for review, and each decision on a plan."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query

from api import models as bodies
from api.deps import PLAN, Channel, Svc, allowed
from api.errors import ERRORS, ApiError, invalid, rejected
from api.routes.decisions import DecisionRoute, add_decision_routes
from auth.tokens import Caller
from starter.plans import PlanExists
from workflows.authority import ADDENDUM_WRITERS, PLAN_READERS, PLAN_WRITERS, agency_refusal
from workflows.models import Agency, Role
from workflows.plan_models import (
    PlanEnding,
    PlanRevision,
    PoliceAddendum,
    StartTriggerPlan,
    TriggerPlanRequest,
    TriggerPlanState,
    review_date_problem,
)

log = structlog.get_logger("api")

router = APIRouter(responses=ERRORS, tags=["trigger plans"])


def plan_id_secret(svc: Svc) -> bytes:
    return svc.settings.secret(svc.settings.plan_id_secret, "plan-id-secret")


def readable_by(caller: Caller) -> None:
    """A partner reads trigger plans only as children's social care, who own them."""
    if caller.actor.role is Role.PARTNER:
        of_the_agency(caller, "read trigger plans")


def of_the_agency(caller: Caller, action: str) -> None:
    """Refused (403) unless the caller is children's social care's, whose plans these are (the workflow checks again)."""
    refusal = agency_refusal(caller.actor, Agency.CHILDRENS_SOCIAL_CARE, action)
    if refusal is not None:
        raise rejected(refusal)


@router.post("/trigger-plans", status_code=201, response_model=TriggerPlanState, summary="Write a child's trigger plan")
async def write_plan(
    body: TriggerPlanRequest,
    caller: Annotated[Caller, Depends(allowed(PLAN_WRITERS, "write a trigger plan"))],
    svc: Svc,
) -> TriggerPlanState:
    """The child's plan, its first version (201). A child has one plan: a second is 409 naming it (revise it).

    The plan's ID is a keyed digest of the child's name and date of birth, never either.
    """
    # The workflow refuses these too, but only once started: they are refused here, before anything starts.
    of_the_agency(caller, "write a trigger plan")
    problem = review_date_problem(body.plan, await svc.clock(), svc.sla_policy)
    if problem is not None:
        raise invalid(("body", "plan", "review_by"), problem.split(": ", 1)[1])
    start = StartTriggerPlan(child=body.child, plan=body.plan, written_by=caller.actor, sla_policy=svc.sla_policy)
    try:
        state = await PLAN.client(svc).write(start, svc.settings.task_queue, plan_id_secret(svc))
    except PlanExists as exists:
        raise ApiError(409, exists.reason, exists.field, extra={"plan_id": exists.plan_id}) from None
    log.info("trigger_plan_written", plan_id=state.plan_id)
    return state


@router.get("/trigger-plans/due", response_model=bodies.PlansDue, summary="Trigger plans due for review")
async def plans_due(
    caller: Annotated[Caller, Depends(allowed(PLAN_READERS, "list trigger plans"))],
    svc: Svc,
    within_days: Annotated[int, Query(ge=0, le=366, description="due within this many days (0: overdue only)")] = 14,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> bodies.PlansDue:
    """Plans in use whose review date falls within the days asked, most overdue first, from the read model."""
    readable_by(caller)
    now = await svc.clock()
    until = now + timedelta(days=within_days)
    rows = await svc.read_model.plans_due(now=now, until=until, limit=limit)
    return bodies.PlansDue(until=until, items=[bodies.PlanDue(**dict(r)) for r in rows])


@router.get("/trigger-plans/{plan_id}", response_model=TriggerPlanState, summary="A trigger plan, every version")
async def show_plan(
    plan_id: str,
    caller: Annotated[Caller, Depends(allowed(PLAN_READERS, "read a trigger plan"))],
    channel: Channel,
    svc: Svc,
) -> TriggerPlanState:
    readable_by(caller)
    state = await PLAN.client(svc).state(plan_id)
    await svc.access_log.record(caller.actor, channel, "show_trigger_plan", plan_id)
    return state


# Each decision on a plan: its path, the decision, who may make it (the workflow checks the agency too).
PLAN_DECISIONS = (
    DecisionRoute(PLAN, "revision", PlanRevision, PLAN_WRITERS, "revise a trigger plan"),
    DecisionRoute(PLAN, "police-addendum", PoliceAddendum, ADDENDUM_WRITERS, "add a police addendum to a trigger plan"),
    DecisionRoute(PLAN, "end", PlanEnding, PLAN_WRITERS, "end a trigger plan"),
)
add_decision_routes(router, PLAN_DECISIONS, "trigger plans")
