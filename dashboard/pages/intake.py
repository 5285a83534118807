"""The forms that open a case: an officer's VIST, a partner agency's referral, a child reported missing, and a
child's trigger plan, each checked as the API checks it.

A form carries its own ID (the VIST's form ID, the missing report's ID), made when the page was drawn: sent twice, it
finds the case it opened rather than opening a second; a trigger plan is the child's one plan, so the same plan sent
twice by its writer finds the plan it wrote. Who reports (and a partner's agency) is the signed-in caller, never a
field of the form.
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
from starter.plans import PlanExists, TriggerPlans
from workflows.authority import CASE_READERS, MISSING_REPORTERS, PARTNER_REFERRERS, PLAN_READERS, PLAN_WRITERS, SUBMITTERS
from workflows.missing_models import MissingReport, StartMissingEpisode, not_in_future
from workflows.models import (
    REFERRING_AGENCIES,
    Agency,
    Model,
    PartnerReferral,
    ReferralForm,
    Role,
    SlaPolicy,
    StartReferral,
    VistSubmission,
    future_time_in,
)
from workflows.plan_models import StartTriggerPlan, TriggerPlanRequest, review_date_problem

router = APIRouter(prefix=PREFIX, include_in_schema=False)

@dataclass(frozen=True)
class IntakeForm:
    """A form that opens a case: its path, model and page, who uses it (of which agencies), who reads the case it
    opens, and how what it holds starts the case."""

    path: str
    model: type[Model]
    roles: frozenset[Role]
    template: str
    id_field: str | None  # the form's own ID, if it has one: the same form, the same case
    # The fields the credentials fill, never the form.
    completed: Callable[[dict[str, Any], Caller], dict[str, Any]]
    # "field: reason" for a time the clock (or the policy) refutes: the workflow has no validator before its start.
    refuted: Callable[[Any, datetime, SlaPolicy], str | None]
    # Start the case (or find the one this form opened); where the page saying so is.
    start: Callable[[Dashboard, Any, Caller], Awaitable[str]]
    # Where the case opened stands now, in words, and its own page.
    opened: Callable[[Dashboard, str], Awaitable[tuple[str, str]]]
    heading: str
    again: str
    # The agencies whose staff use it, beside their roles: none, any agency.
    agencies: frozenset[Agency] | None = None
    # Who reads the case it opens, linked from the page saying it is open.
    readers: frozenset[Role] = CASE_READERS

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


async def write_plan(board: Dashboard, request: TriggerPlanRequest, caller: Caller) -> str:
    start = StartTriggerPlan(child=request.child, plan=request.plan, written_by=caller.actor, sla_policy=board.sla_policy)
    plans = TriggerPlans(board.client, board.decision_timeout)
    try:
        state = await plans.write(start, board.task_queue, board.plan_id_secret)
    except PlanExists as exists:
        state = await plans.state(exists.plan_id)
        first = state.versions[0]
        # The same plan from the same writer, still as written: this form, sent again; anything else is the child's
        # other plan, to be revised.
        if (len(state.versions), first.written_by, first.plan) != (1, caller.actor.id, request.plan):
            raise
    log.info("trigger_plan_written", plan_id=state.plan_id, channel="dashboard")
    return f"{PREFIX}/trigger-plan/{state.plan_id}"


async def referral_opened(board: Dashboard, reference: str) -> tuple[str, str]:
    state = await board.referrals.state(reference)
    due = f", due by {local(state.deadline)}" if state.deadline else ""
    return f"is at {words(state.stage.value)}{due}", f"{PREFIX}/referrals/{reference}"


async def episode_opened(board: Dashboard, episode_id: str) -> tuple[str, str]:
    state = await MissingEpisodes(board.client).state(episode_id)
    review = f", its first review due by {local(state.review_due)}" if state.review_due else ""
    return f"is open at {state.grade.value} risk{review}", f"{PREFIX}/missing/{episode_id}"


async def plan_opened(board: Dashboard, plan_id: str) -> tuple[str, str]:
    state = await TriggerPlans(board.client).state(plan_id)
    return (f"is at version {state.current.version}, due for review by {local(state.current.plan.review_by)}",
            f"{PREFIX}/plans/{plan_id}")


def times_in(form: ReferralForm, now: datetime, policy: SlaPolicy) -> str | None:
    """A referral form's times the clock refutes (no policy rule applies to them)."""
    return future_time_in(form, now)


VIST = IntakeForm("vist", VistSubmission, SUBMITTERS, "vist.html", "form_id", officers_vist, times_in,
                  opening_referral("vist", "vist_received"), referral_opened, "VIST submitted", "Submit another VIST")
PARTNER_REFERRAL = IntakeForm("partner-referral", PartnerReferral, PARTNER_REFERRERS, "partner_referral.html", "form_id",
                              partners_referral, times_in,
                              opening_referral("partner-referral", "partner_referral_received"), referral_opened,
                              "Referral received", "Refer another child", agencies=REFERRING_AGENCIES)
MISSING_REPORT = IntakeForm("report-missing", MissingReport, MISSING_REPORTERS, "missing_report.html", "report_id",
                            lambda form, caller: form,
                            lambda report, now, policy: not_in_future(report.missing_since, now, "missing_since"),
                            report_missing, episode_opened, "Reported missing", "Report another missing child")
TRIGGER_PLAN = IntakeForm("trigger-plan", TriggerPlanRequest, PLAN_WRITERS, "trigger_plan.html", None,
                          lambda form, caller: form,
                          lambda request, now, policy: review_date_problem(request.plan, now, policy),
                          write_plan, plan_opened, "Trigger plan written", "Write another child's trigger plan",
                          agencies=frozenset({Agency.CHILDRENS_SOCIAL_CARE}), readers=PLAN_READERS)


async def intake_page(request: Request, board: Board, caller: Caller, intake: IntakeForm, status: int = 200,
                      **context: Any) -> Response:
    if not intake.allows(caller):
        return board.forbidden(request, caller, "this form")
    return board.page(request, intake.template, caller, status=status,
                      form_id=context.pop("form_id", None) or uuid.uuid4(), **context)


async def take_in(request: Request, board: Board, caller: Caller, fields: dict[str, str], intake: IntakeForm) -> Response:
    """Open the form's case, or find the one it already opened; what is refused comes back beside its field."""
    if not intake.allows(caller):
        return board.forbidden(request, caller, "this form")

    async def again(status: int, errors: list[dict[str, Any]]) -> Response:
        form_id = fields.get(intake.id_field) if intake.id_field else None
        return await intake_page(request, board, caller, intake, status=status, form_id=form_id,
                                 submitted=Submitted.refused(intake.path, fields, errors))

    try:
        case = intake.model.model_validate(intake.completed(nested(fields), caller))
    except ValidationError as error:
        return await again(422, field_errors(error.errors()))
    problem = intake.refuted(case, await board.clock(), board.sla_policy)
    if problem is not None:
        loc, why = named_field(problem)
        return await again(422, [{"loc": loc, "msg": why}])
    try:
        page = await intake.start(board, case, caller)
    except WorkflowRefusal as conflict:  # the form's ID (the child, for a plan) already opened a case with other content
        loc, why = named_field(conflict.reason)
        return await again(409, [{"loc": loc, "msg": why}])
    return RedirectResponse(page, status_code=303)


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
                      where=where, case_page=case_page if caller.actor.role in intake.readers else None,
                      again=intake.again)


def add_intake_routes(router: APIRouter, intake: IntakeForm) -> None:
    """`GET /dashboard/{path}` draws the form, `POST` opens its case (or finds it), `GET /dashboard/{path}/{case_id}`
    shows the case it opened."""

    async def form(request: Request, board: Board, caller: SignedIn) -> Response:
        return await intake_page(request, board, caller, intake)

    async def sent(request: Request, board: Board, caller: SignedIn, fields: PostedForm) -> Response:
        return await take_in(request, board, caller, fields, intake)

    async def opened(request: Request, board: Board, case_id: str, caller: SignedIn) -> Response:
        return await opened_page(request, board, caller, intake, case_id)

    router.add_api_route(f"/{intake.path}", form, methods=["GET"], response_class=HTMLResponse, name=f"{intake.path}-form")
    router.add_api_route(f"/{intake.path}", sent, methods=["POST"], name=f"{intake.path}-sent")
    router.add_api_route(f"/{intake.path}/{{case_id}}", opened, methods=["GET"], response_class=HTMLResponse,
                         name=f"{intake.path}-opened")


for intake_form in (VIST, PARTNER_REFERRAL, MISSING_REPORT, TRIGGER_PLAN):
    add_intake_routes(router, intake_form)
