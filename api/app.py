"""The HTTP API's app: VIST intake, every decision as a workflow update, and lists from the read model.

Served by `python -m api` (api/__main__.py). `create_app(client, pool, settings)` builds the app around a Temporal client and an asyncpg
pool, so tests hand it the time-skipping server's client and the test database. The actor
of every decision comes from the bearer token (auth/tokens.py). A decision is one
workflow update: the workflow's validator accepts it whole or rejects it before anything is
written, so the API never half-applies one. Error bodies and access logs never carry a
submitted value: they may be personal data.
"""

# No `from __future__ import annotations`: the decision routes' body types are set per route
# at definition time, and FastAPI reads them from the evaluated annotations.

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import asyncpg
import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from readmodel.access_log import AccessLog
from api.routes.records import records_router
from api.routes.audit import audit_router
from activities.policy import build_sla_policy
from readmodel.queries import PageStart, ReferralReadModel
from runtime.settings import Settings
from activities.directory import SupervisionDirectory
from readmodel.oversight import OversightReadModel
from api import models as bodies
from starter.acknowledgement import AcknowledgementRefused, Acknowledgements
from auth.tokens import Authenticator, Caller, InvalidCredentials
from api.errors import (
    DATABASE_DOWN,
    IDEMPOTENCY_HEADER,
    RETRY_AFTER_SECONDS,
    ApiError,
    api_error,
    aware_moment,
    field_errors,
    invalid,
    rejected,
    unavailable,
    undecided,
    validation_failed,
)
from dashboard.routes import PREFIX as DASHBOARD_PREFIX
from dashboard.routes import dashboard_router, unavailable_page
from workflows.action import AgreedActionWorkflow
from workflows.authority import (
    CASE_DECIDERS,
    COMPLETERS_OF_OWN_AGENCY,
    OFFICERS,
    OVERRIDE_DECIDERS,
    OVERRIDE_REQUESTERS,
    REASSIGNERS,
    REJECTION_TYPE,
    REVIEWERS,
    SCREENERS,
    SUBMITTERS,
)
from workflows.models import (
    ESCALATION_ID,
    REFERENCE_PATTERN,
    ActionCompletion,
    ActionReassignment,
    ActionState,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    Decision,
    OverrideDecision,
    OverrideRequest,
    ReferralState,
    Resubmission,
    RiskGrade,
    RiskRegrade,
    Agency,
    Role,
    Screening,
    SlaPolicy,
    Stage,
    StartReferral,
    StrategyDiscussion,
    SupervisorReview,
    VistSubmission,
    future_time_in,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

log = structlog.get_logger("api")

Clock = Callable[[], Awaitable[datetime]]

REFERENCE = REFERENCE_PATTERN
ACTION_ID = rf"{REFERENCE}\.A[1-9][0-9]*"
MAX_PAGE = 200
# The `referrals` CLI names itself, so the access log can tell its reads from other clients'.
CLIENT_HEADER = "X-Referrals-Client"


async def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def own_identity(loc: tuple[str | int, ...], named: str, caller: Caller) -> None:
    """A body may name its maker only as the token does: who decides comes from the credentials alone."""
    if named != caller.actor.id:
        raise invalid(loc, "must be the caller's own staff ID: who submits comes from the credentials")


# --- the app's parts -----------------------------------------------------------------------


@dataclass
class Services:
    client: Client
    read_model: ReferralReadModel
    access_log: AccessLog
    pool: asyncpg.Pool
    settings: Settings
    authenticator: Authenticator
    sla_policy: SlaPolicy
    clock: Clock
    acknowledgements: Acknowledgements


def services(request: Request) -> Services:
    return request.app.state.services


bearer = HTTPBearer(auto_error=False, description="a signed JWT, or a static token of the embedded stack")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    svc: Annotated[Services, Depends(services)],
) -> Caller:
    try:
        caller = await svc.authenticator.authenticate(credentials.credentials if credentials else None)
    except InvalidCredentials as error:
        log.info("credentials_rejected", reason=str(error))
        raise ApiError(401, "valid bearer credentials are required", headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.actor_id = caller.actor.id
    return caller


def allowed(roles: frozenset[Role], action: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers whose role may `action`; checked again by the workflow."""

    async def check(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        if caller.actor.role not in roles:
            names = ", ".join(sorted(r.value for r in roles))
            reason = f"actor.role: a {caller.actor.role.value} may not {action} (allowed: {names})"
            raise ApiError(403, reason, "actor.role")
        return caller

    return check


Authenticated = Annotated[Caller, Depends(authenticated)]
# Everyone but a partner agency's staff, who see only the referrals their actions belong to.
REFERRAL_LISTERS = frozenset(Role) - {Role.PARTNER, Role.SYSTEM}
Svc = Annotated[Services, Depends(services)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": bodies.Problem, "description": "no valid bearer credentials"},
    403: {"model": bodies.Problem, "description": "the caller's role or agency may not do this"},
    404: {"model": bodies.Problem, "description": "no such referral, action or escalation"},
    409: {"model": bodies.Problem, "description": "the workflow refused the decision (stage, already decided, a rule)"},
    422: {"model": bodies.ValidationProblem, "description": "each bad field and why"},
    503: {"model": bodies.Problem, "description": "PostgreSQL or Temporal is down: retry after `Retry-After` seconds"},
}
# A decision's further answer: not confirmed in time, retry with the same key.
DECISION_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    504: {"model": bodies.Undecided, "description": "not confirmed in time: retry with the same Idempotency-Key"},
}


# --- decisions: one table, one handler ---------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a decision route changes: a referral or one of its agreed actions."""

    param: str
    noun: str
    pattern: re.Pattern[str]
    closed: str  # the 409 reason when the workflow has finished
    state: type


REFERRAL = Target(
    "reference", "referral", re.compile(rf"^{REFERENCE}$"), "stage: the referral is closed", ReferralState
)
ACTION = Target(
    "action_id", "agreed action", re.compile(rf"^{ACTION_ID}$"), "action_id: the action is already complete",
    ActionState,
)


def not_found(target: Target) -> ApiError:
    return ApiError(404, f"{target.param}: no such {target.noun}", target.param)


@dataclass(frozen=True)
class DecisionRoute:
    target: Target
    path: str
    update: Callable[..., Any]
    decision: type[Decision]
    roles: frozenset[Role]
    action: str

    @property
    def request(self) -> type:
        return bodies.request_model(self.decision)


# Each decision route: what it changes, its path, the workflow update, the decision, who may make it.
DECISION_ROUTES = (
    DecisionRoute(REFERRAL, "supervisor-review", ReferralWorkflow.review, SupervisorReview, REVIEWERS,
                  "review a VIST"),
    DecisionRoute(REFERRAL, "resubmission", ReferralWorkflow.resubmit, Resubmission, OFFICERS, "resubmit a VIST"),
    DecisionRoute(REFERRAL, "screening", ReferralWorkflow.screen, Screening, SCREENERS, "screen a referral"),
    DecisionRoute(REFERRAL, "override-request", ReferralWorkflow.request_override, OverrideRequest,
                  OVERRIDE_REQUESTERS, "ask for a repeat-referral override"),
    DecisionRoute(REFERRAL, "override", ReferralWorkflow.decide_override, OverrideDecision, OVERRIDE_DECIDERS,
                  "grant or refuse a repeat-referral override"),
    DecisionRoute(REFERRAL, "strategy-discussion", ReferralWorkflow.record_strategy_discussion, StrategyDiscussion,
                  CASE_DECIDERS, "record a strategy discussion"),
    DecisionRoute(REFERRAL, "conference", ReferralWorkflow.book_conference, ConferenceBooking, CASE_DECIDERS,
                  "book a conference"),
    DecisionRoute(REFERRAL, "conference-outcome", ReferralWorkflow.record_conference_outcome, ConferenceOutcome,
                  CASE_DECIDERS, "record a conference outcome"),
    DecisionRoute(REFERRAL, "risk", ReferralWorkflow.regrade_risk, RiskRegrade, CASE_DECIDERS, "regrade risk"),
    DecisionRoute(REFERRAL, "close", ReferralWorkflow.close, Closure, CASE_DECIDERS, "close a referral"),
    DecisionRoute(ACTION, "completion", AgreedActionWorkflow.complete, ActionCompletion, COMPLETERS_OF_OWN_AGENCY,
                  "complete an agreed action"),
    DecisionRoute(ACTION, "reassignment", AgreedActionWorkflow.reassign, ActionReassignment, REASSIGNERS,
                  "reassign an agreed action"),
)


def build_decision(decision: type[Decision], body: Any, caller: Caller) -> Decision:
    """The decision from the request and the token's actor; its cross-field rules run here (422)."""
    try:
        made = decision.model_validate(dict(body) | {"actor": caller.actor})
    except ValidationError as error:
        raise RequestValidationError(field_errors(error.errors(), ("body",))) from None
    if isinstance(made, Resubmission):
        own_identity(("body", "submission", "officer_id"), made.submission.officer_id, caller)
    return made


# A client's key for one decision: the Temporal update ID, so a retry is the same update.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="names this decision: a retry with the same key returns the first outcome and applies "
        "nothing twice (8-128 letters, digits, '.', '_', ':', '-'); without one the API makes one",
    ),
]
# Temporal's answers that leave a decision's fate unknown: it may still be applied, once.
OUTCOME_UNKNOWN = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}


async def decide(
    svc: Services,
    target: Target,
    workflow_id: str,
    update: Callable[..., Any],
    decision: Decision,
    key: str | None,
    response: Response,
) -> Any:
    """Run one decision as one update named by its idempotency key, mapping the workflow's answer to the HTTP one.

    A decision not confirmed within `decision_timeout_seconds` answers 504 with its key
    rather than hanging: the update may still complete, and the same key returns its outcome.
    """
    if not target.pattern.match(workflow_id):
        raise not_found(target)
    key = key or uuid.uuid4().hex
    response.headers[IDEMPOTENCY_HEADER] = key
    handle = svc.client.get_workflow_handle(workflow_id)
    try:
        return await asyncio.wait_for(
            handle.execute_update(update, decision, id=key), svc.settings.decision_timeout_seconds
        )
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        log.warning("decision_unconfirmed", workflow_id=workflow_id, update=update.__name__)
        raise undecided(key) from None
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE:
            raise rejected(cause.message) from None
        raise
    except RPCError as error:
        if error.status in OUTCOME_UNKNOWN:
            raise undecided(key) from None
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # Not found: either no such workflow (404), or it has finished and takes no more updates (409).
        try:
            await handle.describe()
        except RPCError as missing:
            if missing.status == RPCStatusCode.NOT_FOUND:
                raise not_found(target) from None
            raise
        raise ApiError(409, target.closed, target.closed.split(":", 1)[0]) from None


def decision_endpoint(route: DecisionRoute) -> Callable[..., Awaitable[Any]]:
    async def endpoint(
        workflow_id: Annotated[str, Path(alias=route.target.param)],
        body: route.request,  # type: ignore[valid-type]
        caller: Annotated[Caller, Depends(allowed(route.roles, route.action))],
        svc: Svc,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> Any:
        decision = build_decision(route.decision, body, caller)
        return await decide(svc, route.target, workflow_id, route.update, decision, idempotency_key, response)

    endpoint.__name__ = route.update.__name__
    return endpoint


def decision_router() -> APIRouter:
    router = APIRouter(responses=DECISION_ERRORS)
    for route in DECISION_ROUTES:
        collection = "referrals" if route.target is REFERRAL else "actions"
        router.add_api_route(
            f"/{collection}/{{{route.target.param}}}/{route.path}",
            decision_endpoint(route),
            methods=["POST"],
            response_model=route.target.state,
            summary=route.action.capitalize(),
            description=f"{route.decision.__doc__ or ''}\n\nAllowed roles: "
            + ", ".join(sorted(r.value for r in route.roles)),
            tags=["decisions"],
        )
    return router


# --- intake, reads, escalations -----------------------------------------------------------------

router = APIRouter(responses=ERRORS)


@router.post(
    "/referrals",
    status_code=201,
    response_model=bodies.Intake,
    tags=["referrals"],
    summary="Submit a VIST",
    responses={200: {"model": bodies.Intake, "description": "this form was already submitted: the same referral"}},
)
async def submit_vist(
    submission: VistSubmission,
    response: Response,
    caller: Annotated[Caller, Depends(allowed(SUBMITTERS, "submit a VIST"))],
    svc: Svc,
) -> bodies.Intake:
    """A new referral (201); the same form again returns its referral (200); the form's ID with other content is 409.

    The form's `officer_id` must be the caller's own staff ID (422 otherwise).
    """
    own_identity(("body", "officer_id"), submission.officer_id, caller)
    # The workflow has no validator before its start: times the wall clock refutes are refused here.
    problem = future_time_in(submission, await svc.clock())
    if problem is not None:
        field, why = problem.split(": ", 1)
        raise invalid(("body", *field.split(".")), why)
    reference = referral_reference(submission.form_id)
    try:
        handle = await svc.client.start_workflow(
            ReferralWorkflow.run,
            StartReferral(submission=submission, submitted_by=caller.actor, sla_policy=svc.sla_policy),
            id=reference,
            task_queue=svc.settings.task_queue,
            # A closed referral's form cannot open a new one.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        created = True
    except WorkflowAlreadyStartedError:
        handle = svc.client.get_workflow_handle(reference)
        created = False
    state = await handle.query(ReferralWorkflow.state)
    if not created:
        if state.form_id != submission.form_id or state.form_digest != submission.content_digest():
            raise ApiError(409, "form_id: this form was already submitted with other content", "form_id")
        response.status_code = 200
    log.info("vist_received", reference=reference, created=created)
    return bodies.Intake(
        reference=reference, stage=state.stage, risk=state.risk, deadline=state.deadline, created=created
    )


@router.get("/referrals/{reference}", response_model=ReferralState, tags=["referrals"], summary="A referral's state")
async def show_referral(reference: str, caller: Authenticated, request: Request, svc: Svc) -> ReferralState:
    """Stage, risk, deadlines, escalations, agreed actions and the history of decisions, from the workflow.

    Every read is written to the access log, with who read it and through which client.
    """
    if not REFERRAL.pattern.match(reference):
        raise not_found(REFERRAL)
    try:
        state = await svc.client.get_workflow_handle(reference).query(ReferralWorkflow.state)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise not_found(REFERRAL) from None
        raise
    if caller.actor.role is Role.PARTNER:
        state = partner_view(state, caller.actor.agency)
    channel = "cli" if request.headers.get(CLIENT_HEADER) == "cli" else "api"
    await svc.access_log.record(caller.actor, channel, "show_referral", reference)
    return state


def partner_view(state: ReferralState, agency: Agency) -> ReferralState:
    """What a partner agency may see of a referral: its own agreed actions and their escalations.

    The screening view (other referrals about the family), the decision history and the
    other agencies' actions are not theirs to see.
    """
    own = [action for action in state.actions if action.owner.agency is agency]
    if not own:
        raise ApiError(403, f"actor.agency: {agency.value} owns no agreed action on this referral", "actor.agency")
    return state.model_copy(update={"actions": own, "escalations": [], "history": [], "screening_view": None})


def encode_cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), key]).encode()).decode()


def decode_cursor(cursor: str | None, key_pattern: re.Pattern[str]) -> PageStart | None:
    if cursor is None:
        return None
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        start = PageStart(datetime.fromisoformat(at), key)
    except (ValueError, TypeError, UnicodeError):
        raise invalid(("query", "cursor"), "not a cursor this API returned") from None
    if not isinstance(key, str) or not key_pattern.match(key):
        raise invalid(("query", "cursor"), "not a cursor this API returned")
    aware_moment(("query", "cursor"), start.at)
    return start


def page(rows: list[Any], limit: int, time_column: str, key_column: str) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last[time_column], last[key_column])


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


@router.get("/referrals", response_model=bodies.ReferralPage, tags=["referrals"], summary="Referrals, newest first")
async def list_referrals(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list referrals"))],
    svc: Svc,
    stage: Stage | None = None,
    risk: RiskGrade | None = None,
    overdue: Annotated[bool | None, Query(description="open and past the current stage's deadline")] = None,
    updated_since: datetime | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> bodies.ReferralPage:
    aware_moment(("query", "updated_since"), updated_since)
    rows = await svc.read_model.referrals(
        now=await svc.clock(),
        limit=limit + 1,
        after=decode_cursor(cursor, REFERRAL.pattern),
        stage=stage.value if stage else None,
        risk=risk.value if risk else None,
        overdue=overdue,
        updated_since=updated_since,
    )
    items, next_cursor = page(rows, limit, "updated_at", "reference")
    return bodies.ReferralPage(items=[bodies.ReferralSummary(**dict(r)) for r in items], next_cursor=next_cursor)


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
    reference: Annotated[str | None, Query(pattern=rf"^{REFERENCE}$", description="only this referral's")] = None,
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
    response_model=ReferralState | ActionState,
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
    """The escalation's owner is the referral (`REF-...E3`) or the agreed action (`REF-...A1.E2`) that raised it.

    A rung is acknowledged by a supervisor of its rank or above (the token's `rank`), by the
    addressee the supervision directory names for it (`staff_id`), or by an administrator.
    """
    try:
        ack = await svc.acknowledgements.prepare(caller.actor, escalation_id)
    except AcknowledgementRefused as refused:
        if refused.missing:
            raise ApiError(404, refused.message, "escalation_id") from None
        raise rejected(refused.message) from None
    target = ACTION if ".A" in ack.owner else REFERRAL
    try:
        return await decide(svc, target, ack.owner, ack.update, ack.decision, idempotency_key, response)
    except ApiError as error:
        if error.status == 409 and error.field == "escalation_id" and "no such" in error.detail:
            raise ApiError(404, error.detail, error.field) from None
        raise


@router.get("/health", tags=["operations"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], summary="Readiness: Temporal and PostgreSQL answer")
async def ready(svc: Svc, response: Response) -> dict[str, Any]:
    async def probe(check: Callable[[], Awaitable[Any]]) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), 5))
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False

    temporal, database = await asyncio.gather(
        probe(svc.client.service_client.check_health), probe(lambda: svc.pool.fetchval("SELECT 1"))
    )
    if not (temporal and database):
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return {"status": "ready" if temporal and database else "unavailable", "temporal": temporal, "database": database}


# --- the app ------------------------------------------------------------------------------


class RequestLog:
    """ASGI middleware: one line per request with the route template, never the raw path or query."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            log.info(
                "http_request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                actor=scope.get("state", {}).get("actor_id"),
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


async def _temporal_unavailable(request: Request, error: RPCError) -> Response:
    log.warning("temporal_error", status=error.status.name)
    return await _unavailable(request, unavailable("the workflow service"))


async def _database_unavailable(request: Request, error: Exception) -> Response:
    log.warning("database_unavailable", error=type(error).__name__)
    return await _unavailable(request, unavailable("the records database"))


async def _unavailable(request: Request, error: ApiError) -> Response:
    """503 with Retry-After: the dashboard's plain page, or the API's problem body."""
    if request.url.path.startswith(DASHBOARD_PREFIX):
        return unavailable_page(request, RETRY_AFTER_SECONDS)
    return await api_error(request, error)


def create_app(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    sla_policy: SlaPolicy | None = None,
    clock: Clock = wall_clock,
) -> FastAPI:
    """The API around one Temporal client and one PostgreSQL pool (both owned by the caller)."""
    app = FastAPI(
        title="Child-protection referrals",
        version="1",
        description="VIST intake, decisions on referrals and agreed actions, escalations. "
        "Every decision is recorded under the actor named by the bearer token.",
    )
    directory = SupervisionDirectory.load(settings.alert_directory_file)
    app.state.services = Services(
        client=client,
        read_model=ReferralReadModel(pool),
        access_log=AccessLog(pool),
        pool=pool,
        settings=settings,
        authenticator=authenticator or Authenticator.from_settings(settings),
        sla_policy=sla_policy or build_sla_policy(settings.sla_policy_file),
        clock=clock,
        acknowledgements=Acknowledgements(client, OversightReadModel(pool), directory),
    )
    app.include_router(router)
    app.include_router(decision_router())
    app.include_router(records_router(allowed, services, REFERENCE))
    app.include_router(audit_router(allowed, services))
    app.include_router(
        dashboard_router(
            client,
            pool,
            settings,
            authenticator=app.state.services.authenticator,
            acknowledgements=app.state.services.acknowledgements,
            clock=clock,
        )
    )
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    for down in DATABASE_DOWN:
        app.add_exception_handler(down, _database_unavailable)
    app.add_middleware(RequestLog)
    return app
