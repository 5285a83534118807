"""The forms that open a case: an officer's VIST, a partner agency's referral, and a child reported missing, each
checked as the API checks it.

A form carries its own ID (the VIST's form ID, the missing report's ID), made when the page was drawn: sent twice, it
finds the case it opened rather than opening a second. Who reports (and a partner's agency) is the signed-in caller,
never a field of the form.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from auth.tokens import Caller
from dashboard.board import PREFIX, Board, Dashboard, PostedForm, SignedIn, local, log, words
from dashboard.forms import Submitted, nested
from starter.decisions import field_errors, named_field
from starter.missing import MissingEpisodes
from starter.workflow_client import NoSuchWorkflow, WorkflowRefusal
from workflows.authority import MISSING_REPORTERS, PARTNER_REFERRERS, SUBMITTERS
from workflows.missing_models import MissingReport, StartMissingEpisode, not_in_future
from workflows.models import (
    REFERRING_AGENCIES,
    Agency,
    Model,
    PartnerReferral,
    ReferralForm,
    Role,
    StartReferral,
    VistSubmission,
    future_time_in,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# Rows the VIST form offers: a VIST with more children or adults goes through the API.
CHILD_ROWS, ADULT_ROWS = 3, 2


@dataclass(frozen=True)
class IntakeForm:
    """A form that opens a case: its path, model and page, who uses it, and how what it holds starts the case."""

    path: str
    model: type[Model]
    roles: frozenset[Role]
    template: str
    id_field: str  # the form's own ID: the same form, the same case
    # The fields the credentials fill, never the form.
    completed: Callable[[dict[str, Any], Caller], dict[str, Any]]
    # "field: reason" for a time the clock refutes: the workflow has no validator before its start.
    refuted: Callable[[Any, datetime], str | None]
    # Start the case (or find the one this form opened); where the page saying so is.
    start: Callable[[Dashboard, Any, Caller], Awaitable[str]]
    # Where the case opened stands now, in words, and its own page.
    opened: Callable[[Dashboard, str], Awaitable[tuple[str, str]]]
    heading: str
    again: str
    # The agencies whose staff use it, beside their roles: none, any agency.
    agencies: frozenset[Agency] | None = None

    def allows(self, caller: Caller) -> bool:
        return caller.actor.role in self.roles and (self.agencies is None or caller.actor.agency in self.agencies)


def children_keyed(form: dict[str, Any]) -> dict[str, Any]:
    # Children are keyed C1, C2... in the order the form lists them; decisions name them by it, never by name.
    for number, child in enumerate(form.get("children", []), start=1):
        if isinstance(child, dict):
            child["child_id"] = f"C{number}"
    return form


def officers_vist(form: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return children_keyed(form) | {"officer_id": caller.actor.id}


def partners_referral(form: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return children_keyed(form) | {"referrer_id": caller.actor.id, "referring_agency": caller.actor.agency.value}


def opening_referral(path: str, event: str) -> Callable[[Dashboard, ReferralForm, Caller], Awaitable[str]]:
    """How a form opening a referral (a VIST, a partner's referral) starts it, logs `event`, and where its page is."""

    async def start(board: Dashboard, form: ReferralForm, caller: Caller) -> str:
        intake = await board.referrals.submit(
            StartReferral(submission=form, submitted_by=caller.actor, sla_policy=board.sla_policy), board.task_queue)
        log.info(event, reference=intake.reference, created=intake.created, channel="dashboard")
        return f"{PREFIX}/{path}/{intake.reference}"

    return start


async def report_missing(board: Dashboard, report: MissingReport, caller: Caller) -> str:
    start = StartMissingEpisode(report=report, reported_by=caller.actor, sla_policy=board.sla_policy)
    intake = await MissingEpisodes(board.client, board.decision_timeout).report(start, board.task_queue)
    log.info("missing_reported", episode_id=intake.state.episode_id, created=intake.created, channel="dashboard")
    return f"{PREFIX}/report-missing/{intake.state.episode_id}"


async def referral_opened(board: Dashboard, reference: str) -> tuple[str, str]:
    state = await board.referrals.state(reference)
    due = f", due by {local(state.deadline)}" if state.deadline else ""
    return f"is at {words(state.stage.value)}{due}", f"{PREFIX}/referrals/{reference}"


async def episode_opened(board: Dashboard, episode_id: str) -> tuple[str, str]:
    state = await MissingEpisodes(board.client).state(episode_id)
    review = f", its first review due by {local(state.review_due)}" if state.review_due else ""
    return f"is open at {state.grade.value} risk{review}", f"{PREFIX}/missing/{episode_id}"


VIST = IntakeForm("vist", VistSubmission, SUBMITTERS, "vist.html", "form_id", officers_vist, future_time_in,
                  opening_referral("vist", "vist_received"), referral_opened, "VIST submitted", "Submit another VIST")
PARTNER_REFERRAL = IntakeForm("partner-referral", PartnerReferral, PARTNER_REFERRERS, "partner_referral.html", "form_id",
                              partners_referral, future_time_in,
                              opening_referral("partner-referral", "partner_referral_received"), referral_opened,
                              "Referral received", "Refer another child", agencies=REFERRING_AGENCIES)
MISSING_REPORT = IntakeForm("report-missing", MissingReport, MISSING_REPORTERS, "missing_report.html", "report_id",
                            lambda form, caller: form,
                            lambda report, now: not_in_future(report.missing_since, now, "missing_since"),
                            report_missing, episode_opened, "Reported missing", "Report another missing child")


async def intake_page(request: Request, board: Board, caller: Caller, intake: IntakeForm, status: int = 200,
                      **context: Any) -> Response:
    if not intake.allows(caller):
        return board.forbidden(request, caller, "this form")
    return board.page(request, intake.template, caller, status=status, child_rows=CHILD_ROWS, adult_rows=ADULT_ROWS,
                      form_id=context.pop("form_id", None) or uuid.uuid4(), **context)


async def take_in(request: Request, board: Board, caller: Caller, fields: dict[str, str], intake: IntakeForm) -> Response:
    """Open the form's case, or find the one it already opened; what is refused comes back beside its field."""
    if not intake.allows(caller):
        return board.forbidden(request, caller, "this form")

    async def again(status: int, errors: list[dict[str, Any]]) -> Response:
        return await intake_page(request, board, caller, intake, status=status, form_id=fields.get(intake.id_field),
                                 submitted=Submitted.refused(intake.path, fields, errors))

    try:
        case = intake.model.model_validate(intake.completed(nested(fields), caller))
    except ValidationError as error:
        return await again(422, field_errors(error.errors()))
    problem = intake.refuted(case, await board.clock())
    if problem is not None:
        loc, why = named_field(problem)
        return await again(422, [{"loc": loc, "msg": why}])
    try:
        page = await intake.start(board, case, caller)
    except WorkflowRefusal as conflict:  # the form's ID already opened a case with other content
        loc, why = named_field(conflict.reason)
        return await again(409, [{"loc": loc, "msg": why}])
    return RedirectResponse(page, status_code=303)


@router.get("/vist", response_class=HTMLResponse)
async def vist_form(request: Request, board: Board, caller: SignedIn) -> Response:
    return await intake_page(request, board, caller, VIST)


@router.post("/vist")
async def vist_sent(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    return await take_in(request, board, caller, fields, VIST)


@router.get("/partner-referral", response_class=HTMLResponse)
async def partner_referral_form(request: Request, board: Board, caller: SignedIn) -> Response:
    return await intake_page(request, board, caller, PARTNER_REFERRAL)


@router.post("/partner-referral")
async def partner_referral_sent(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    return await take_in(request, board, caller, fields, PARTNER_REFERRAL)


@router.get("/report-missing", response_class=HTMLResponse)
async def missing_form(request: Request, board: Board, caller: SignedIn) -> Response:
    return await intake_page(request, board, caller, MISSING_REPORT)


@router.post("/report-missing")
async def missing_sent(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
    return await take_in(request, board, caller, fields, MISSING_REPORT)


async def opened_page(request: Request, board: Board, caller: Caller, intake: IntakeForm, case_id: str) -> Response:
    """The case a form opened, as its workflow holds it now: its ID, where it stands, and where its page is."""
    try:
        shown = await intake.opened(board, case_id) if intake.allows(caller) else None
    except NoSuchWorkflow:
        shown = None
    if shown is None:
        return board.page(request, "case_opened.html", caller, status=404, case_id=None, intake=intake.path)
    where, case_page = shown
    return board.page(request, "case_opened.html", caller, intake=intake.path, heading=intake.heading, case_id=case_id,
                      where=where, case_page=case_page, again=intake.again)


@router.get("/vist/{case_id}", response_class=HTMLResponse)
async def vist_opened(request: Request, board: Board, case_id: str, caller: SignedIn) -> Response:
    return await opened_page(request, board, caller, VIST, case_id)


@router.get("/report-missing/{case_id}", response_class=HTMLResponse)
async def missing_opened(request: Request, board: Board, case_id: str, caller: SignedIn) -> Response:
    return await opened_page(request, board, caller, MISSING_REPORT, case_id)


@router.get("/partner-referral/{case_id}", response_class=HTMLResponse)
async def partner_referral_opened(request: Request, board: Board, case_id: str, caller: SignedIn) -> Response:
    return await opened_page(request, board, caller, PARTNER_REFERRAL, case_id)
