"""The VIST form: an officer (or a supervisor) submits a referral in the browser, checked as the API checks one.

The form carries its own form ID, made when the page was drawn: sent twice, it finds the referral it opened rather
than opening a second. The officer is the signed-in caller, never a field of the form.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from auth.tokens import Caller
from dashboard.board import PREFIX, Board, PostedForm, SignedIn, log
from dashboard.forms import Submitted, nested
from starter.decisions import field_errors, named_field
from starter.referrals import SubmissionConflict
from starter.workflow_client import NoSuchWorkflow
from workflows.authority import SUBMITTERS
from workflows.models import StartReferral, VistSubmission, future_time_in

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# Rows the form offers: a VIST with more children or adults goes through the API.
CHILD_ROWS, ADULT_ROWS = 3, 2


async def vist_page(request: Request, board: Board, caller: Caller, status: int = 200, **context: Any) -> Response:
    if caller.actor.role not in SUBMITTERS:
        return board.forbidden(request, caller, "the VIST form")
    return board.page(request, "vist.html", caller, status=status, child_rows=CHILD_ROWS, adult_rows=ADULT_ROWS,
                      form_id=context.pop("form_id", None) or uuid.uuid4(), **context)


@router.get("/vist", response_class=HTMLResponse)
async def vist_form(request: Request, board: Board, caller: SignedIn) -> Response:
    return await vist_page(request, board, caller)


@router.post("/vist")
async def submit_vist(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    """A new referral, or the one this form already opened; what is refused comes back beside its field."""
    if caller.actor.role not in SUBMITTERS:
        return board.forbidden(request, caller, "the VIST form")
    form = nested(fields)
    # Children are keyed C1, C2... in the order the form lists them; decisions name them by it, never by name.
    for number, child in enumerate(form.get("children", []), start=1):
        if isinstance(child, dict):
            child["child_id"] = f"C{number}"
    form_id = fields.get("form_id", "")

    async def again(status: int, errors: list[dict[str, Any]]) -> Response:
        return await vist_page(request, board, caller, status=status, form_id=form_id,
                               submitted=Submitted.refused("vist", fields, errors))

    try:
        submission = VistSubmission.model_validate(form | {"officer_id": caller.actor.id})
    except ValidationError as error:
        return await again(422, field_errors(error.errors()))
    # The workflow has no validator before its start: times the clock refutes are refused here, as the API does.
    problem = future_time_in(submission, await board.clock())
    if problem is not None:
        loc, why = named_field(problem)
        return await again(422, [{"loc": loc, "msg": why}])
    start = StartReferral(submission=submission, submitted_by=caller.actor, sla_policy=board.sla_policy)
    try:
        intake = await board.referrals.submit(start, board.task_queue)
    except SubmissionConflict as conflict:
        loc, why = named_field(conflict.reason)
        return await again(409, [{"loc": loc, "msg": why}])
    reference = intake.reference
    log.info("vist_received", reference=reference, created=intake.created, channel="dashboard")
    return RedirectResponse(f"{PREFIX}/vist/{reference}", status_code=303)


@router.get("/vist/{reference}", response_class=HTMLResponse)
async def vist_submitted(request: Request, board: Board, reference: str, caller: SignedIn) -> Response:
    """The submitted VIST's referral as its workflow holds it: its reference, stage and deadline."""
    if caller.actor.role not in SUBMITTERS:
        return board.forbidden(request, caller, "the VIST form")
    try:
        state = await board.referrals.state(reference)
    except NoSuchWorkflow:
        return board.page(request, "referral.html", caller, status=404, referral=None)
    return board.page(request, "vist_submitted.html", caller, state=state)
