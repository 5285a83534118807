"""The escalations page: open escalations for the caller's team or agency, acknowledged by form or by an alert's signed link."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from activities.alerts import describe_duration, what_is_late
from auth.tokens import Caller
from dashboard.board import (
    ESCALATION_READERS,
    PREFIX,
    Board,
    PostedForm,
    SignedIn,
    case_page,
    decision_key,
    local,
)
from readmodel.oversight import Audience
from starter.acknowledgement import ESCALATION_ID, AcknowledgementRefused
from workflows.authority import ACKNOWLEDGERS
from workflows.models import Escalation, Rank, Role

router = APIRouter(prefix=PREFIX, include_in_schema=False)


async def escalations_page(request: Request, board: Board, caller: Caller, status: int = 200, **context: Any) -> Response:
    if caller.actor.role not in ESCALATION_READERS:
        return board.forbidden(request, caller, "escalations")
    mine = caller.actor.role is Role.SUPERVISOR
    audience = Audience(team=caller.team, agency=caller.actor.agency.value) if mine else None
    now = await board.clock()
    rows = await board.oversight.open_escalations(audience)
    return board.page(
        request,
        "escalations.html",
        caller,
        status=status,
        mine=mine,
        acknowledgers=caller.actor.role in ACKNOWLEDGERS,
        escalations=[
            escalation_view(row, now, board.acknowledgements.may_acknowledge(caller.actor, row)) for row in rows
        ],
        now=local(now),
        **context,
    )


@router.get("/escalations", response_class=HTMLResponse)
async def escalations(request: Request, board: Board, caller: SignedIn, acknowledged: str | None = None) -> Response:
    done = acknowledged if acknowledged and ESCALATION_ID.fullmatch(acknowledged) else None
    return await escalations_page(request, board, caller, acknowledged=done)


@router.post("/escalations/{escalation_id}/acknowledge")
async def acknowledge(request: Request, board: Board, escalation_id: str, caller: SignedIn, fields: PostedForm) -> Response:
    key = decision_key(fields.get("idempotency_key"))
    refused = await board.acknowledge(caller, escalation_id, key)
    if refused is not None:
        status, problem = refused
        # The same form again carries the same key, so a retry learns the first attempt's outcome.
        return await escalations_page(request, board, caller, status=status, problem=problem, retry={escalation_id: key})
    return RedirectResponse(f"{PREFIX}/escalations?acknowledged={quote(escalation_id)}", status_code=303)


@router.get("/escalations/{escalation_id}/acknowledge", response_class=HTMLResponse)
async def acknowledge_link(
    request: Request, board: Board, escalation_id: str, caller: SignedIn, expires: int = 0, sig: str = ""
) -> Response:
    """The signed link of an alert email: after sign-in, one click acknowledges (a link alone changes nothing)."""
    valid = ESCALATION_ID.fullmatch(escalation_id) is not None and board.links.verify(
        escalation_id, expires, sig, datetime.now(timezone.utc)
    )
    if not valid:
        return board.page(request, "acknowledge.html", caller, status=404, escalation=None)
    try:
        await board.acknowledgements.prepare(caller.actor, escalation_id)
        refusal = None
    except AcknowledgementRefused as refused:
        refusal = refused.message
    return board.page(
        request,
        "acknowledge.html",
        caller,
        escalation_id=escalation_id,
        case=case_page(escalation_id),
        may_acknowledge=refusal is None,
        refusal=refusal,
    )


def escalation_view(row: asyncpg.Record, now: datetime, may_acknowledge: bool) -> dict[str, Any]:
    escalation = Escalation.model_validate(
        {k: row[k] for k in ("escalation_id", "reference", "subject", "rung", "rank", "addressed_to", "due_at",
                             "raised_at", "reason")}
    )
    return {
        "id": escalation.escalation_id,
        "reference": escalation.reference,
        "page": (case_page(escalation.reference) or ("", ""))[1],
        "what": what_is_late(escalation),
        "rung": escalation.rung_number,
        "rank": escalation.rank.value,
        "addressed_to": row["addressee"] or escalation.addressed_to,
        "raised": local(escalation.raised_at),
        "age": describe_duration(max(now - escalation.raised_at, timedelta(0))),
        "late": describe_duration(max(now - escalation.due_at, timedelta(0))),
        "serious": escalation.rank is not Rank.SERGEANT or escalation.reason == "inquorate",
        "may_acknowledge": may_acknowledge,
    }
