"""The agreed actions page: late and soon-due actions by agency and owner."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from activities.alerts import describe_duration
from dashboard.board import (
    DUE_SOON,
    PREFIX,
    Board,
    SignedIn,
    local,
    time_left,
)
from workflows.models import Role

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/actions", response_class=HTMLResponse)
async def actions(request: Request, board: Board, caller: SignedIn) -> Response:
    now = await board.clock()
    # Partners see their own agency's actions only.
    agency = caller.actor.agency.value if caller.actor.role is Role.PARTNER else None
    rows = await board.oversight.late_actions(now, DUE_SOON, agency)
    by_agency: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_agency[row["agency"]][row["owner"]].append(dict(row) | {"left": time_left(row["deadline"], now)})
    overdue = sum(1 for row in rows if row["deadline"] < now)
    return board.page(
        request,
        "actions.html",
        caller,
        by_agency={agency: dict(owners) for agency, owners in by_agency.items()},
        overdue=overdue,
        due_soon=len(rows) - overdue,
        window=describe_duration(DUE_SOON),
        only_agency=agency,
        now=local(now),
    )
