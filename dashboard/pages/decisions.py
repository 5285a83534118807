"""Decisions in the browser: a form per decision on a referral or an agreed action, built and sent as the API's are.

Each form's fields are the decision's request model (starter/decisions.py, the API's too), its actor the signed-in
caller; the decision goes as one workflow update under the form's idempotency key through the board's Temporal
client, which signs it (runtime/proofs.py) as it signs the API's. A refused field comes back beside its field, a
workflow's refusal above the form; a form sent twice is applied once. A referral's forms are on its page
(pages/referrals.py); an agreed action has its own page, here, where its owner's agency completes it and a screener
or supervisor reassigns it.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auth.tokens import Caller
from dashboard.board import PREFIX, Board, Dashboard, PostedForm, SignedIn, decision_key, log, refusal, writes_plans
from dashboard.forms import Submitted, nested
from dashboard.pages.intake import officers_vist
from starter.actions import AgreedActions
from starter.decisions import DecisionInvalid, build_decision, named_field
from starter.workflow_client import NoSuchWorkflow, WorkflowClient
from workflows.authority import (
    ADDENDUM_WRITERS,
    CASE_DECIDERS,
    COMPLETERS_OF_OWN_AGENCY,
    CSC_NOT_INFORMED_DECIDERS,
    EPISODE_REVIEWERS,
    FINDERS,
    INTERVIEW_RECORDERS,
    OFFICERS,
    OVERRIDE_DECIDERS,
    OVERRIDE_REQUESTERS,
    PANEL_CHAIRS,
    PANEL_COORDINATORS,
    PLAN_WRITERS,
    REASSIGNERS,
    REVIEWERS,
    SCREENERS,
    TRACERS,
    TRIAGE_DECIDERS,
)
from workflows.missing_models import (
    EpisodePhase,
    EpisodeRegrade,
    EpisodeReview,
    EpisodeState,
    Found,
    LowGradeDecision,
    ReturnHomeInterview,
    TracingRecord,
)
from workflows.panel_models import (
    AgendaEdit,
    AttendanceRecord,
    MeetingStart,
    PanelCaseOutcome,
    SittingClosure,
    SittingPhase,
    SittingState,
)
from workflows.plan_models import PlanEnding, PlanRevision, PoliceAddendum, TriggerPlanState
from workflows.triage_models import TriageDecision
from workflows.models import (
    ActionCompletion,
    ActionReassignment,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    CscNotInformed,
    Decision,
    OverrideDecision,
    OverrideRequest,
    ReferralState,
    Resubmission,
    RiskRegrade,
    Role,
    Screening,
    Stage,
    StrategyDiscussion,
    SupervisorReview,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@dataclass(frozen=True)
class DecisionForm:
    """One decision's form: its name (and path), the decision it makes, who is offered it, and what it did; the
    fields the credentials fill (`filled`), never the form; and what the read model refutes before it is sent
    (`refuted`: each refusal's loc and msg), as the API's route checks it."""

    name: str
    decision: type[Decision]
    roles: frozenset[Role]
    done: str
    filled: Callable[[dict[str, Any], Caller], dict[str, Any]] | None = None
    refuted: Callable[[Dashboard, Any], Awaitable[list[dict[str, Any]]]] | None = None


def officers_resubmission(form: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """The returned VIST, corrected, as the officer's own: its children keyed as a first submission keys them."""
    return form | {"submission": officers_vist(form.get("submission", {}), caller)}


# The forms of a referral, each offered while the referral is at one of `REFERRAL_STAGES[name]`.
REFERRAL_FORMS = {form.name: form for form in (
    DecisionForm("review", SupervisorReview, REVIEWERS, "Review recorded"),
    DecisionForm("resubmission", Resubmission, OFFICERS, "VIST resubmitted", officers_resubmission),
    DecisionForm("screening", Screening, SCREENERS, "Screening recorded"),
    DecisionForm("override-request", OverrideRequest, OVERRIDE_REQUESTERS, "Override asked for"),
    DecisionForm("override", OverrideDecision, OVERRIDE_DECIDERS, "Override decided"),
    DecisionForm("csc-not-informed", CscNotInformed, CSC_NOT_INFORMED_DECIDERS,
                 "Decided: children's social care need not be informed"),
    DecisionForm("strategy-discussion", StrategyDiscussion, CASE_DECIDERS, "Strategy discussion recorded"),
    DecisionForm("conference", ConferenceBooking, CASE_DECIDERS, "Conference booked"),
    DecisionForm("conference-outcome", ConferenceOutcome, CASE_DECIDERS, "Conference outcome recorded"),
    DecisionForm("risk", RiskRegrade, CASE_DECIDERS, "Risk regraded"),
    DecisionForm("close", Closure, CASE_DECIDERS, "Referral closed"),
)}
OPEN = frozenset(Stage) - {Stage.CLOSED}
REFERRAL_STAGES = {
    "review": {Stage.SUPERVISOR_REVIEW},
    "resubmission": {Stage.RETURNED_TO_OFFICER},
    "screening": {Stage.SCREENING},
    "override-request": {Stage.SCREENING},
    "override": {Stage.SCREENING},
    "csc-not-informed": {Stage.SCREENING},
    "strategy-discussion": {Stage.STRATEGY_DISCUSSION},
    "conference": {Stage.CONFERENCE},
    "conference-outcome": {Stage.CONFERENCE},
    "risk": OPEN,
    "close": OPEN,
}
# The daily triage's decision on a listed referral, taken on the referral's page.
TRIAGE_FORMS = {"triage": DecisionForm("triage", TriageDecision, TRIAGE_DECIDERS, "Triage decision recorded")}
# A missing episode's forms: while the child is missing, then the return-home interview once found.
EPISODE_FORMS = {form.name: form for form in (
    DecisionForm("low-grade", LowGradeDecision, EPISODE_REVIEWERS, "Low grade decided"),
    DecisionForm("tracing", TracingRecord, TRACERS, "Tracing recorded"),
    DecisionForm("review", EpisodeReview, EPISODE_REVIEWERS, "Review recorded"),
    DecisionForm("grade", EpisodeRegrade, EPISODE_REVIEWERS, "Grade changed"),
    DecisionForm("found", Found, FINDERS, "Found recorded"),
    DecisionForm("return-home-interview", ReturnHomeInterview, INTERVIEW_RECORDERS, "Return-home interview recorded"),
)}
EPISODE_PHASES = {
    EpisodePhase.MISSING: {"tracing", "review", "grade", "found"},
    EpisodePhase.RETURNED: {"return-home-interview"},
}
# A panel sitting's forms: its chair opens the meeting, the register is kept, each case decided, the minutes made.
SITTING_FORMS = {form.name: form for form in (
    DecisionForm("agenda", AgendaEdit, PANEL_COORDINATORS, "Agenda changed",
                 refuted=lambda board, edit: board.panels.unknown_additions([a.case_id for a in edit.add])),
    DecisionForm("meeting", MeetingStart, PANEL_CHAIRS, "Meeting opened"),
    DecisionForm("attendance", AttendanceRecord, PANEL_COORDINATORS, "Attendance recorded"),
    DecisionForm("outcomes", PanelCaseOutcome, PANEL_CHAIRS, "Case decided"),
    DecisionForm("minutes", SittingClosure, PANEL_CHAIRS, "Meeting closed: the minutes are made"),
)}
# A trigger plan's forms: a new version and the plan ended by children's social care, an addendum by police.
PLAN_FORMS = {form.name: form for form in (
    DecisionForm("revision", PlanRevision, PLAN_WRITERS, "New version written"),
    DecisionForm("police-addendum", PoliceAddendum, ADDENDUM_WRITERS, "Police addendum added"),
    DecisionForm("end", PlanEnding, PLAN_WRITERS, "Plan ended"),
)}
ACTION_FORMS = {form.name: form for form in (
    DecisionForm("completion", ActionCompletion, COMPLETERS_OF_OWN_AGENCY, "Action completed"),
    DecisionForm("reassignment", ActionReassignment, REASSIGNERS, "Action reassigned"),
)}


def offered(forms: dict[str, DecisionForm], caller: Caller, names: set[str] | None = None) -> list[str]:
    """The forms the caller's role is offered (of `names`, when given); the workflow still decides."""
    return [name for name, form in forms.items() if caller.actor.role in form.roles and (names is None or name in names)]


def referral_forms(caller: Caller, state: ReferralState) -> list[str]:
    """The referral's forms for its stage: a conference is booked first, then its outcome recorded; a supervisor's
    override is asked for only where screening found it needed and none is granted or waiting, and decided only
    while it waits; that children's social care need not be informed is decided once."""
    names = {name for name, stages in REFERRAL_STAGES.items() if state.stage in stages}
    names.discard("conference" if state.conference_at is not None else "conference-outcome")
    asked = state.repeat_referral_override
    if state.screening_view is None or state.screening_view.override_needed is None or (
            asked is not None and asked.granted is not False):
        names.discard("override-request")
    if not override_waiting(state):
        names.discard("override")
    if state.csc_not_informed is not None:
        names.discard("csc-not-informed")
    return offered(REFERRAL_FORMS, caller, names)


def override_waiting(state: ReferralState) -> bool:
    """A screener asked for a repeat-referral override and no supervisor has decided it yet."""
    asked = state.repeat_referral_override
    return asked is not None and asked.decided_at is None


def episode_forms(caller: Caller, state: EpisodeState) -> list[str]:
    """The episode's forms for its phase; a low grade waiting on a supervisor's decision first."""
    names = set(EPISODE_PHASES.get(state.phase, set()))
    if state.low_grade_pending:
        names.add("low-grade")
    return offered(EPISODE_FORMS, caller, names)


def sitting_forms(caller: Caller, state: SittingState) -> list[str]:
    """The sitting's forms for its phase: the agenda changed and the meeting opened once the agenda is built; then the
    register, the next case not yet decided, and the minutes."""
    if state.phase is SittingPhase.AGENDA:
        names = {"agenda", "meeting"} if state.agenda_built else set()
    elif state.phase is SittingPhase.IN_SESSION:
        names = {"attendance", "minutes"} | ({"outcomes"} if next_case(state) else set())
    else:
        names = set()
    return offered(SITTING_FORMS, caller, names)


def plan_forms(caller: Caller, state: TriggerPlanState) -> list[str]:
    """The plan's forms: while it is in use, a new version, an addendum and its ending; once ended, a new version
    alone brings it back. A new version and the ending are children's social care's own."""
    names = {"revision"} | ({"police-addendum", "end"} if state.ended_at is None else set())
    if not writes_plans(caller.actor):
        names -= {"revision", "end"}
    return offered(PLAN_FORMS, caller, names)


def next_case(state: SittingState) -> str | None:
    """The first case on the agenda not yet decided: the meeting takes them in order, one form at a time."""
    return next((item.case_id for item in state.agenda if item.decided_at is None and not item.not_reached), None)


Page = Callable[..., Awaitable[Response]]
# A case's page drawn again with a refusal: (request, board, workflow ID, caller, status=..., **context).
PageOf = Callable[..., Awaitable[Response]]


async def decide(
    board: Dashboard, caller: Caller, fields: dict[str, str], forms: dict[str, DecisionForm], name: str,
    workflows: WorkflowClient[Any], workflow_id: str, page: Page, done: str,
) -> Response:
    """Build form `name`'s decision as the API builds a body's, send it under the form's key, and show the outcome:
    back to `done` once recorded, or `page` again with what was refused beside its field."""
    form = forms.get(name)
    if form is None or not workflows.matches(workflow_id):
        return await page(status=404, problem="no such form here")
    key = decision_key(fields.get("idempotency_key"))
    if caller.actor.role not in form.roles:
        names = ", ".join(sorted(role.value for role in form.roles))
        return await page(status=403, problem=f"actor.role: a {caller.actor.role.value} may not do this (allowed: {names})")
    written = nested(fields)
    try:
        decision = build_decision(form.decision, form.filled(written, caller) if form.filled else written, caller.actor)
        problems = await form.refuted(board, decision) if form.refuted else []
    except DecisionInvalid as invalid:
        problems = invalid.errors
    if problems:
        # Nothing was sent: the same key stays with the corrected form.
        return await page(status=422, submitted=Submitted.refused(form.name, fields, problems, key))
    refused = await refusal(workflows.decide(workflow_id, decision, key))
    if refused is not None:
        status, problem = refused
        loc, why = named_field(problem)
        # Unconfirmed (504): the same key learns the first attempt's fate; a refused decision was applied to nothing,
        # so the form, corrected, goes again as a new decision.
        again = Submitted.refused(form.name, fields, [{"loc": loc, "msg": why}], key if status == 504 else None)
        return await page(status=status, submitted=again)
    log.info("dashboard_decision", decision=form.decision.__name__, workflow_id=workflow_id, actor=caller.actor.id)
    return RedirectResponse(f"{done}?done={form.name}", status_code=303)


def add_decision_forms(
    router: APIRouter, collection: str, forms: dict[str, DecisionForm],
    workflows: Callable[[Board], WorkflowClient[Any]], page_of: PageOf,
) -> None:
    """`POST /dashboard/{collection}/{workflow_id}/decisions/{name}`: each of `forms`, sent by `decide`, its refusals
    shown on the case's page as `page_of` draws it."""

    async def decide_by_form(request: Request, board: Board, workflow_id: str, name: str, caller: SignedIn,
                             fields: PostedForm) -> Response:
        async def page(status: int, **context: Any) -> Response:
            return await page_of(request, board, workflow_id, caller, status=status, **context)

        return await decide(board, caller, fields, forms, name, workflows(board), workflow_id, page,
                            f"{PREFIX}/{collection}/{workflow_id}")

    router.add_api_route(f"/{collection}/{{workflow_id}}/decisions/{{name}}", decide_by_form, methods=["POST"],
                         name=f"decide_on_{collection}")


@router.get("/actions/{action_id}", response_class=HTMLResponse)
async def action(request: Request, board: Board, action_id: str, caller: SignedIn) -> Response:
    return await action_page(request, board, action_id, caller)


async def action_page(request: Request, board: Board, action_id: str, caller: Caller, status: int = 200,
                      **context: Any) -> Response:
    """One agreed action: what, whose, by when, and the forms its viewer may use. A partner sees their agency's only."""
    try:
        state = await AgreedActions(board.client, board.decision_timeout).state(action_id)
    except NoSuchWorkflow:
        state = None
    partner_elsewhere = state is not None and caller.actor.role is Role.PARTNER and state.owner.agency != caller.actor.agency
    if state is None or partner_elsewhere:
        return board.page(request, "action.html", caller, status=404, action=None)
    await board.access_log.record(caller.actor, "dashboard", "read_action", reference=state.reference)
    return board.page(
        request, "action.html", caller, status=status, action=state,
        forms=offered(ACTION_FORMS, caller) if state.completed_at is None else [],
        done=ACTION_FORMS[request.query_params["done"]].done if request.query_params.get("done") in ACTION_FORMS else None,
        **context,
    )


add_decision_forms(router, "actions", ACTION_FORMS, lambda board: AgreedActions(board.client, board.decision_timeout),
                   action_page)
