"""A trigger plan's page: its versions, owner, review date, police addenda and actions, and the forms it is kept by.

The plan's own words are child data: the page shows IDs, versions, owners and dates (the text is read through the API,
access-logged), and its forms take a new version, a police addendum or the plan's ending as the API's routes do.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from auth.tokens import Caller
from dashboard.board import PREFIX, Board, SignedIn, local, time_left
from dashboard.pages.decisions import PLAN_FORMS, add_decision_forms, plan_forms
from starter.plans import TriggerPlans
from starter.workflow_client import NoSuchWorkflow
from workflows.authority import PLAN_READERS, agency_refusal
from workflows.models import Agency, Role

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def reads_plans(caller: Caller) -> bool:
    """Those who read cases, and children's social care's partners, whose plans these are (as the API allows)."""
    actor = caller.actor
    return actor.role in PLAN_READERS and (
        actor.role is not Role.PARTNER
        or agency_refusal(actor, Agency.CHILDRENS_SOCIAL_CARE, "read trigger plans") is None)


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
async def plan(request: Request, board: Board, plan_id: str, caller: SignedIn) -> Response:
    return await plan_page(request, board, plan_id, caller)


async def plan_page(request: Request, board: Board, plan_id: str, caller: Caller, status: int = 200,
                    **context: Any) -> Response:
    """One plan as its workflow holds it, and the forms its reader may use."""
    if not reads_plans(caller):
        return board.forbidden(request, caller, "trigger plans")
    try:
        state = await TriggerPlans(board.client, board.decision_timeout).state(plan_id)
    except NoSuchWorkflow:
        return board.page(request, "plan.html", caller, status=404, plan=None)
    await board.access_log.record(caller.actor, "dashboard", "read_trigger_plan", reference=plan_id)
    done = request.query_params.get("done")
    return board.page(
        request, "plan.html", caller, status=status, plan=state,
        review=time_left(state.current.plan.review_by, await board.clock()),
        unfolded=[a.number for a in state.addenda if a.folded_into is None],
        forms=plan_forms(caller, state),
        done=PLAN_FORMS[done].done if done in PLAN_FORMS else None,
        now=local(await board.clock()),
        **context,
    )


add_decision_forms(router, "plans", PLAN_FORMS, lambda board: TriggerPlans(board.client, board.decision_timeout),
                   plan_page)
