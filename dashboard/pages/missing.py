"""The missing-children page: every open episode, still missing or awaiting its return-home interview, nearest deadline
first, and the children most often missing in the repeat-missing window."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from dashboard.board import CASE_READERS, PREFIX, Board, SignedIn, local, time_left
from readmodel.queries import repeat_missing_since
from workflows.authority import FREQUENCY_READERS

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/missing", response_class=HTMLResponse)
async def missing_children(request: Request, board: Board, caller: SignedIn) -> Response:
    if caller.actor.role not in CASE_READERS:
        return board.forbidden(request, caller, "missing children")
    now = await board.clock()
    rows = [
        dict(row)
        | {"review": time_left(row["review_due"], now), "tracing": time_left(row["tracing_due"], now),
           "interview": time_left(row["interview_due"], now)}
        for row in await board.oversight.open_missing_episodes()
    ]
    policy = board.sla_policy.missing
    frequent = (
        await board.read_model.most_frequently_missing(now=now, policy=policy, limit=20)
        if caller.actor.role in FREQUENCY_READERS
        else None
    )
    return board.page(
        request,
        "missing.html",
        caller,
        missing=[r for r in rows if r["phase"] == "missing"],
        returned=[r for r in rows if r["phase"] == "returned"],
        frequent=frequent,
        frequent_since=local(repeat_missing_since(now, policy)),
        now=local(now),
    )
