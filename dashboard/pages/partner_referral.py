"""The partner referral page: a partner of health, education or children's social care refers a child to screening."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

import re
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from auth.tokens import Caller
from dashboard.board import LONDON, PREFIX, Board, PostedForm, SignedIn, log
from starter.referrals import SubmissionConflict
from workflows.authority import PARTNER_REFERRERS
from workflows.models import (
    REFERRING_AGENCIES,
    CseIndicator,
    IncidentType,
    PartnerReferral,
    PartnerTool,
    RiskGrade,
    StartReferral,
    future_time_in,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# Each form field and where the partner's form holds it: a refusal naming the form's field is shown beside this one.
FIELDS = {
    "tool": ("tool",),
    "concern": ("incident", "type"),
    "occurred_at": ("incident", "occurred_at"),
    "location": ("incident", "location"),
    "summary": ("incident", "summary"),
    "child_name": ("children", 0, "name"),
    "child_date_of_birth": ("children", 0, "date_of_birth"),
    "child_home_address": ("children", 0, "home_address"),
    "observed": ("children", 0, "observed"),
    "voice_of_the_child": ("children", 0, "voice_of_the_child"),
    "initial_risk": ("initial_risk",),
    "cse_indicators": ("cse_indicators",),
}
# What a refused form is shown again without: no page holds a child's details or free text, so they are typed again.
PERSONAL = frozenset({"location", "summary", "child_name", "child_date_of_birth", "child_home_address", "observed",
                      "voice_of_the_child"})
# A rule about the whole form names its field in its message ("children[0].date_of_birth: is after the incident").
NAMED_FIELD = re.compile(r"^Value error, (?P<field>[A-Za-z_][A-Za-z0-9_.\[\]]*): (?P<why>.+)$", re.DOTALL)


def may_refer(caller: Caller) -> bool:
    return caller.actor.role in PARTNER_REFERRERS and caller.actor.agency in REFERRING_AGENCIES


def the_form(fields: dict[str, str], caller: Caller) -> dict[str, Any]:
    """The partner's form as the API takes it, from the page's fields; the referrer and agency are the token's."""
    occurred = fields.get("occurred_at", "")
    child = {
        "child_id": "C1",
        "name": fields.get("child_name", ""),
        "date_of_birth": fields.get("child_date_of_birth", ""),
        "home_address": fields.get("child_home_address") or None,
        "observed": fields.get("observed", ""),
        "voice_of_the_child": fields.get("voice_of_the_child") or None,
    }
    return {
        "form_id": fields.get("form_id", ""),
        "incident": {"type": fields.get("concern", ""), "occurred_at": london_time(occurred),
                     "location": fields.get("location", ""), "summary": fields.get("summary") or None},
        "children": [child],
        "initial_risk": fields.get("initial_risk", ""),
        "referrer_id": caller.actor.id,
        "referring_agency": caller.actor.agency.value,
        "tool": fields.get("tool", ""),
        "cse_indicators": [i.value for i in CseIndicator if fields.get(f"cse_{i.value}")],
    }


def london_time(text: str) -> str:
    """A time the page's clock field gives (London, no offset) with London's offset; anything else as it came."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return (moment if moment.tzinfo else moment.replace(tzinfo=LONDON)).isoformat()


def problems_by_field(error: ValidationError) -> dict[str, str]:
    """Each refusal beside the page's field it names (the form's reason, never the value)."""
    where = {path: name for name, path in FIELDS.items()}
    problems: dict[str, str] = {}
    for item in error.errors():
        loc, why = tuple(item["loc"]), item["msg"]
        named = NAMED_FIELD.match(why)
        if named:
            loc += tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", named["field"]) if p)
            why = named["why"]
        field = next((where[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in where), "form")
        problems.setdefault(field, why)
    return problems


def render(request: Request, board: Board, caller: Caller, status: int = 200, **context: Any) -> HTMLResponse:
    return board.page(
        request, "partner_referral.html", caller, status=status,
        tools=list(PartnerTool), concerns=list(IncidentType), risks=list(RiskGrade), indicators=list(CseIndicator),
        **({"fields": {}, "problems": {}, "form_id": uuid.uuid4()} | context),
    )


@router.get("/partner-referral", response_class=HTMLResponse)
async def partner_referral_form(request: Request, board: Board, caller: SignedIn) -> Response:
    if not may_refer(caller):
        return board.forbidden(request, caller, "referring a child as a partner agency")
    return render(request, board, caller)


@router.post("/partner-referral", response_class=HTMLResponse)
async def refer(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    """The same rules as `POST /partner-referrals`: the form's refusals beside their fields, the referral opened once."""
    if not may_refer(caller):
        return board.forbidden(request, caller, "referring a child as a partner agency")
    again = {"fields": {k: v for k, v in fields.items() if k not in PERSONAL}, "form_id": fields.get("form_id", "")}
    try:
        referral = PartnerReferral.model_validate(the_form(fields, caller))
    except ValidationError as error:
        return render(request, board, caller, status=422, problems=problems_by_field(error), **again)
    future = future_time_in(referral, await board.clock())
    if future is not None:
        return render(request, board, caller, status=422, problems={"occurred_at": future.split(": ", 1)[1]}, **again)
    try:
        intake = await board.referrals.submit(
            StartReferral(submission=referral, submitted_by=caller.actor, sla_policy=board.sla_policy), board.task_queue)
    except SubmissionConflict:
        return render(request, board, caller, status=409,
                      problems={"form": "this form was already sent with other content: start a new one"}, **again)
    log.info("partner_referral_received", reference=intake.state.reference, created=intake.created, channel="dashboard")
    return render(request, board, caller, status=201 if intake.created else 200, received=intake.state)
