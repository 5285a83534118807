"""The partner referral form: a partner of health, education or children's social care refers a child to screening.

Checked as `POST /partner-referrals` checks one. The form carries its own form ID, made when the page was drawn: sent
twice, it finds the referral it opened rather than opening a second. The referrer and their agency are the signed-in
caller's, never fields of the form.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from auth.tokens import Caller
from dashboard.board import PREFIX, Board, PostedForm, SignedIn, log
from dashboard.forms import Submitted, nested
from dashboard.pages.vist import open_referral
from starter.referrals import Intake
from workflows.authority import PARTNER_REFERRERS
from workflows.models import REFERRING_AGENCIES, PartnerReferral

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def may_refer(caller: Caller) -> bool:
    return caller.actor.role in PARTNER_REFERRERS and caller.actor.agency in REFERRING_AGENCIES


async def referral_page(request: Request, board: Board, caller: Caller, status: int = 200, **context: Any) -> Response:
    if not may_refer(caller):
        return board.forbidden(request, caller, "referring a child as a partner agency")
    return board.page(request, "partner_referral.html", caller, status=status,
                      form_id=context.pop("form_id", None) or uuid.uuid4(), **context)


@router.get("/partner-referral", response_class=HTMLResponse)
async def partner_referral_form(request: Request, board: Board, caller: SignedIn) -> Response:
    return await referral_page(request, board, caller)


@router.post("/partner-referral", response_class=HTMLResponse)
async def refer(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    """A new referral at screening, or the one this form already opened; what is refused comes back beside its field."""
    if not may_refer(caller):
        return board.forbidden(request, caller, "referring a child as a partner agency")
    form = nested(fields)
    # The form holds one child, keyed C1: decisions name them by it, never by name.
    for child in form.get("children", [])[:1]:
        if isinstance(child, dict):
            child["child_id"] = "C1"
    form_id = fields.get("form_id", "")

    async def again(status: int, errors: list[dict[str, Any]]) -> Response:
        return await referral_page(request, board, caller, status=status, form_id=form_id,
                                   submitted=Submitted.refused("refer", fields, errors))

    referrer = {"referrer_id": caller.actor.id, "referring_agency": caller.actor.agency.value}
    intake = await open_referral(board, caller, PartnerReferral, form | referrer, again)
    if not isinstance(intake, Intake):
        return intake
    log.info("partner_referral_received", reference=intake.state.reference, created=intake.created, channel="dashboard")
    return board.page(request, "partner_referral.html", caller, status=201 if intake.created else 200,
                      received=intake.state)
