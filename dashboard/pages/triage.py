"""The triage page: referrals waiting for a decision at the daily domestic-abuse triage, and how long each has waited."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from activities.alerts import describe_duration
from dashboard.board import CASE_READERS, PREFIX, Board, SignedIn, local, time_left

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/triage", response_class=HTMLResponse)
async def triage(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "the triage queue")
    now = await board.clock()
    waiting = [
        dict(row) | {"waited": describe_duration(now - row["submitted_at"]), "left": time_left(row["due_at"], now)}
        for row in await board.oversight.triage_queue()
    ]
    late = sum(1 for item in waiting if item["left"]["late"])
    return board.page(request, "triage.html", caller, waiting=waiting, late=late, now=local(now))
