"""Escalation routes: the escalations list and acknowledging a rung, as a decision on the workflow that raised it."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api import models as bodies
from api.deps import Authenticated, Cursor, IdempotencyKey, Limit, Svc, decision_key, decode_cursor, page
from api.errors import DECISION_ERRORS, ERRORS, ApiError, rejected
from starter.acknowledgement import ESCALATION_ID, AcknowledgementRefused
from starter.workflow_client import DecisionRejected
from workflows.missing_models import EpisodeState
from workflows.models import CASE_PATTERN, ActionState, ReferralState, Role
from workflows.panel_models import SittingState
from workflows.triage_models import TriageState

router = APIRouter(responses=ERRORS, tags=["escalations"])


@router.get(
    "/escalations", response_model=bodies.EscalationPage, tags=["escalations"], summary="Escalations, newest first"
)
async def list_escalations(
    caller: Authenticated,
    svc: Svc,
    state: Annotated[
        Literal["open", "acknowledged", "resolved", "all"],
        Query(description="open: awaiting acknowledgement; resolved: its referral closed first"),
    ] = "open",
    mine: Annotated[
        bool,
        Query(description="only those addressed to the caller's team, or about actions of the caller's agency"),
    ] = False,
    reference: Annotated[
        str | None, Query(pattern=rf"^{CASE_PATTERN}$", description="only this case's: a referral or a missing episode")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> bodies.EscalationPage:
    rows = await svc.read_model.escalations(
        limit=limit + 1,
        after=decode_cursor(cursor, ESCALATION_ID),
        state=state,
        reference=reference,
        # A partner agency sees only escalations about its own agreed actions.
        team=(caller.team or "") if mine and caller.actor.role is not Role.PARTNER else None,
        agency=caller.actor.agency.value if mine or caller.actor.role is Role.PARTNER else None,
    )
    items, next_cursor = page(rows, limit, "raised_at", "escalation_id")
    return bodies.EscalationPage(items=[dict(r) for r in items], next_cursor=next_cursor)


@router.post(
    "/escalations/{escalation_id}/acknowledgement",
    response_model=ReferralState | ActionState | TriageState | EpisodeState | SittingState,
    responses=DECISION_ERRORS,
    tags=["escalations"],
    summary="Acknowledge an escalation",
)
async def acknowledge_escalation(
    escalation_id: str,
    caller: Authenticated,
    svc: Svc,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """The escalation's owner is the referral (`...E3`), the agreed action (`...A1.E2`) or the day's triage
    (`TRIAGE-2026-11-24.E1`) that raised it.

    A rung is acknowledged by a supervisor of its rank or above (the token's `rank`), by the
    addressee the supervision directory names for it (`staff_id`), or by an administrator.
    """
    try:
        ack = await svc.acknowledgements.prepare(caller.actor, escalation_id)
    except AcknowledgementRefused as refusal:
        if refusal.missing:
            raise ApiError(404, refusal.message, "escalation_id") from None
        raise rejected(refusal.message) from None
    try:
        return await ack.send(decision_key(idempotency_key, response))
    except DecisionRejected as rejection:
        if rejection.field == "escalation_id" and "no such" in rejection.reason:
            raise ApiError(404, rejection.reason, rejection.field) from None
        raise
