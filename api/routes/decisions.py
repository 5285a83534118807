"""Decision routes: one table of every decision on a referral or an agreed action, each one workflow update."""

# No `from __future__ import annotations`: the routes' body types are set per route at definition
# time, and FastAPI reads them from the evaluated annotations.

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import models as bodies
from api.deps import ACTION, REFERRAL, IdempotencyKey, Services, Svc, Target, allowed, not_found, own_identity
from api.errors import DECISION_ERRORS, IDEMPOTENCY_HEADER, ApiError, field_errors, rejected, undecided
from auth.tokens import Caller
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
)
from workflows.models import (
    ActionCompletion,
    ActionReassignment,
    Closure,
    ConferenceBooking,
    ConferenceOutcome,
    Decision,
    OverrideDecision,
    OverrideRequest,
    Resubmission,
    RiskRegrade,
    Role,
    Screening,
    StrategyDiscussion,
    SupervisorReview,
)
from workflows.referral import ReferralWorkflow

log = structlog.get_logger("api")


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


router = APIRouter(responses=DECISION_ERRORS)
for route in DECISION_ROUTES:
    router.add_api_route(
        f"/{'referrals' if route.target is REFERRAL else 'actions'}/{{{route.target.param}}}/{route.path}",
        decision_endpoint(route),
        methods=["POST"],
        response_model=route.target.state,
        summary=route.action.capitalize(),
        description=f"{route.decision.__doc__ or ''}\n\nAllowed roles: " + ", ".join(sorted(r.value for r in route.roles)),
        tags=["decisions"],
    )
