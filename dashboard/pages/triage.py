"""The triage page: referrals waiting for a decision at the daily domestic-abuse triage, how long each has waited, and
a day's triage opened by hand."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from activities.alerts import describe_duration
from auth.tokens import Caller
from dashboard.board import CASE_READERS, PREFIX, Board, PostedForm, SignedIn, local, log, time_left
from dashboard.forms import Submitted, written_date
from starter.triage import Triages, opening_problem
from workflows.authority import TRIAGE_OPENERS
from workflows.calendar import local_date

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/triage", response_class=HTMLResponse)
async def triage(request: Request, board: Board, caller: SignedIn) -> Response:
    opened = request.query_params.get("opened")
    return await triage_page(request, board, caller, opened=opened if opened and Triages.matches(opened) else None)


async def triage_page(request: Request, board: Board, caller: Caller, status: int = 200, **context: Any) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "the triage queue")
    now = await board.clock()
    waiting = [
        dict(row) | {"waited": describe_duration(now - row["submitted_at"]), "left": time_left(row["due_at"], now)}
        for row in await board.oversight.triage_queue()
    ]
    late = sum(1 for item in waiting if item["left"]["late"])
    return board.page(request, "triage.html", caller, status=status, waiting=waiting, late=late, now=local(now),
                      may_open=caller.actor.role in TRIAGE_OPENERS,
                      today=local_date(now, board.sla_policy.timezone).strftime("%d/%m/%Y"), **context)


@router.post("/triage/open")
async def open_triage(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    """Open a day's triage now, as its schedule does at 07:00 (and as the API's `POST /triage/{day}`); a day already
    open is found."""
    if caller.actor.role not in TRIAGE_OPENERS:
        return board.forbidden(request, caller, "opening a triage")
    day = written_date(fields.get("day", ""))
    today = local_date(await board.clock(), board.sla_policy.timezone)
    problem = "day: a date, written day/month/year" if day is None else opening_problem(day, today, board.sla_policy)
    if problem is not None:
        why = problem.split(": ", 1)[1]
        return await triage_page(request, board, caller, status=422,
                                 submitted=Submitted.refused("open-triage", fields, [{"loc": ["day"], "msg": why}]))
    opened = await Triages(board.client, board.decision_timeout).open(day, board.sla_policy, board.task_queue)
    log.info("triage_opened", triage_id=opened.state.triage_id, created=opened.created, actor=caller.actor.id,
             channel="dashboard")
    return RedirectResponse(f"{PREFIX}/triage?opened={opened.state.triage_id}", status_code=303)
