"""The missing-children page: every open episode, still missing or awaiting its return-home interview, nearest deadline
first, with the child's trigger plan as the report found it; the trigger plans due for review; the children most
often missing in the repeat-missing window; and each episode's own page, with the forms for its phase."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from auth.tokens import Caller
from dashboard.board import CASE_READERS, PREFIX, Board, SignedIn, local, time_left
from dashboard.pages.decisions import EPISODE_FORMS, add_decision_forms, episode_forms
from starter.missing import MissingEpisodes
from starter.workflow_client import NoSuchWorkflow
from readmodel.queries import repeat_missing_since
from workflows.authority import FREQUENCY_READERS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PLANS_DUE_WITHIN = timedelta(days=14)


def plan_shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """The child's trigger plan as the report found it: its ID and version, or that the child must have one and had none."""
    if row["trigger_plan_id"] is None:
        return {"text": "none: required" if row["trigger_plan_required"] else "none", "late": bool(row["trigger_plan_required"])}
    return {"text": f"{row['trigger_plan_id']} v{row['trigger_plan_version']}", "late": False}


@router.get("/missing", response_class=HTMLResponse)
async def missing_children(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "missing children")
    now = await board.clock()
    rows = [
        dict(row)
        | {"review": time_left(row["review_due"], now), "tracing": time_left(row["tracing_due"], now),
           "interview": time_left(row["interview_due"], now), "plan": plan_shown(row)}
        for row in await board.oversight.open_missing_episodes()
    ]
    policy = board.sla_policy.missing
    frequent = (
        await board.read_model.most_frequently_missing(now=now, policy=policy, limit=20)
        if caller.actor.role in FREQUENCY_READERS
        else None
    )
    # Plans due within a fortnight: IDs, owners and dates only (a plan's text is read through the API, access-logged).
    plans_due = await board.read_model.plans_due(now=now, until=now + PLANS_DUE_WITHIN, limit=50)
    return board.page(
        request,
        "missing.html",
        caller,
        plans_due=[dict(p) | {"review": time_left(p["review_by"], now)} for p in plans_due],
        missing=[r for r in rows if r["phase"] == "missing"],
        returned=[r for r in rows if r["phase"] == "returned"],
        frequent=frequent,
        frequent_since=local(repeat_missing_since(now, policy)),
        now=local(now),
    )


@router.get("/missing/{episode_id}", response_class=HTMLResponse)
async def episode(request: Request, board: Board, episode_id: str, caller: SignedIn) -> Response:
    return await episode_page(request, board, episode_id, caller)


async def episode_page(request: Request, board: Board, episode_id: str, caller: Caller, status: int = 200,
                       **context: Any) -> Response:
    """One missing episode as its workflow holds it: phase, grade, what is due, and the forms for its phase."""
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "missing children")
    try:
        state = await MissingEpisodes(board.client, board.decision_timeout).state(episode_id)
    except NoSuchWorkflow:
        return board.page(request, "missing_episode.html", caller, status=404, episode=None)
    await board.access_log.record(caller.actor, "dashboard", "read_episode", reference=episode_id)
    now = await board.clock()
    done = request.query_params.get("done")
    return board.page(
        request, "missing_episode.html", caller, status=status, episode=state,
        due={name: time_left(getattr(state, f"{name}_due"), now) for name in ("review", "tracing", "interview")},
        forms=episode_forms(caller, state),
        done=EPISODE_FORMS[done].done if done in EPISODE_FORMS else None,
        **context,
    )


add_decision_forms(router, "missing", EPISODE_FORMS,
                   lambda board: MissingEpisodes(board.client, board.decision_timeout), episode_page)
