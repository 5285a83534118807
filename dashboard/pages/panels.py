"""The panels pages: upcoming sittings, required attendees absent, the actions panels set, and a sitting's agenda and
minutes, with the forms its meeting is run by."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from auth.tokens import Caller
from dashboard.board import CASE_READERS, PREFIX, Board, SignedIn, case_page, local, time_left
from dashboard.pages.decisions import SITTING_FORMS, add_decision_forms, next_case, sitting_forms
from starter.panels import PanelSittings
from starter.workflow_client import NoSuchWorkflow
from workflows.panel import minutes_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/panels", response_class=HTMLResponse)
async def panels(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "panels")
    now = await board.clock()
    sittings = await board.panels.sittings(since=now.replace(hour=0, minute=0, second=0, microsecond=0))
    absences = await board.panels.absences()
    actions = [dict(row) | {"left": time_left(row["deadline"], now)} for row in await board.panels.actions()]
    return board.page(request, "panels.html", caller, sittings=sittings, absences=absences, actions=actions,
                      late=sum(1 for a in actions if a["left"]["late"]), now=local(now))


@router.get("/panels/{sitting_id}", response_class=HTMLResponse)
async def sitting(request: Request, sitting_id: str, board: Board, caller: SignedIn) -> Response:
    return await sitting_page(request, board, sitting_id, caller)


async def sitting_page(request: Request, board: Board, sitting_id: str, caller: Caller, status: int = 200,
                       **context: Any) -> Response:
    """A sitting's agenda, attendance and outcomes, and the forms of its phase."""
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "a panel's sitting")
    try:
        state = await PanelSittings(board.client).state(sitting_id)
    except NoSuchWorkflow:
        return board.page(request, "panel_sitting.html", caller, status=404, sitting=None)
    minutes = minutes_of(state)
    links = {case.case_id: (case_page(case.case_id) or (case.case_id, ""))[1] for case in minutes.cases}
    done = request.query_params.get("done")
    return board.page(request, "panel_sitting.html", caller, status=status, sitting=state, minutes=minutes,
                      links=links, now=local(await board.clock()), forms=sitting_forms(caller, state),
                      next_case=next_case(state), done=SITTING_FORMS[done].done if done in SITTING_FORMS else None,
                      **context)


add_decision_forms(router, "panels", SITTING_FORMS,
                   lambda board: PanelSittings(board.client, board.decision_timeout), sitting_page)
