"""Decision routes: one table of every decision on a referral or an agreed action, each one workflow update."""

# No `from __future__ import annotations`: the routes' body types are set per route at definition
# time, and FastAPI reads them from the evaluated annotations.

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from fastapi.exceptions import RequestValidationError

from api import models as bodies
from api.deps import ACTION, REFERRAL, IdempotencyKey, Svc, Target, allowed, decision_key
from api.errors import DECISION_ERRORS
from auth.tokens import Caller
from starter import decisions
from workflows.authority import (
    CASE_DECIDERS,
    COMPLETERS_OF_OWN_AGENCY,
    CSC_NOT_INFORMED_DECIDERS,
    OFFICERS,
    OVERRIDE_DECIDERS,
    OVERRIDE_REQUESTERS,
    REASSIGNERS,
    REVIEWERS,
    SCREENERS,
)
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
    Resubmission,
    RiskRegrade,
    Role,
    Screening,
    StrategyDiscussion,
    SupervisorReview,
)


@dataclass(frozen=True)
class DecisionRoute:
    target: Target
    path: str
    decision: type[Decision]
    roles: frozenset[Role]
    action: str

    @property
    def request(self) -> type:
        return bodies.request_model(self.decision)

    @property
    def update(self) -> Callable[..., Any]:
        """The workflow update that takes this decision, as the target's workflow client names it."""
        return self.target.workflows.update_for(self.decision)


# Each decision route: what it changes, its path, the decision, who may make it.
DECISION_ROUTES = (
    DecisionRoute(REFERRAL, "supervisor-review", SupervisorReview, REVIEWERS, "review a VIST"),
    DecisionRoute(REFERRAL, "resubmission", Resubmission, OFFICERS, "resubmit a VIST"),
    DecisionRoute(REFERRAL, "screening", Screening, SCREENERS, "screen a referral"),
    DecisionRoute(REFERRAL, "override-request", OverrideRequest, OVERRIDE_REQUESTERS,
                  "ask for a repeat-referral override"),
    DecisionRoute(REFERRAL, "override", OverrideDecision, OVERRIDE_DECIDERS,
                  "grant or refuse a repeat-referral override"),
    DecisionRoute(REFERRAL, "csc-not-informed", CscNotInformed, CSC_NOT_INFORMED_DECIDERS,
                  "decide that children's social care need not be informed"),
    DecisionRoute(REFERRAL, "strategy-discussion", StrategyDiscussion, CASE_DECIDERS, "record a strategy discussion"),
    DecisionRoute(REFERRAL, "conference", ConferenceBooking, CASE_DECIDERS, "book a conference"),
    DecisionRoute(REFERRAL, "conference-outcome", ConferenceOutcome, CASE_DECIDERS, "record a conference outcome"),
    DecisionRoute(REFERRAL, "risk", RiskRegrade, CASE_DECIDERS, "regrade risk"),
    DecisionRoute(REFERRAL, "close", Closure, CASE_DECIDERS, "close a referral"),
    DecisionRoute(ACTION, "completion", ActionCompletion, COMPLETERS_OF_OWN_AGENCY, "complete an agreed action"),
    DecisionRoute(ACTION, "reassignment", ActionReassignment, REASSIGNERS, "reassign an agreed action"),
)


def build_decision(decision: type[Decision], body: Any, caller: Caller) -> Decision:
    """The decision from the request and the token's actor, as the dashboard's forms build theirs; its cross-field
    rules run here (422)."""
    try:
        return decisions.build_decision(decision, dict(body), caller.actor)
    except decisions.DecisionInvalid as invalid:
        raise RequestValidationError([error | {"loc": ["body", *error["loc"]]} for error in invalid.errors]) from None


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
        return await route.target.client(svc).decide(workflow_id, decision, decision_key(idempotency_key, response))

    endpoint.__name__ = route.update.__name__
    return endpoint


def add_decision_routes(router: APIRouter, routes: tuple[DecisionRoute, ...], tag: str) -> None:
    """Each decision as `POST /{collection}/{id}/{path}`, one workflow update under the caller's token."""
    for route in routes:
        router.add_api_route(
            f"/{route.target.collection}/{{{route.target.param}}}/{route.path}",
            decision_endpoint(route),
            methods=["POST"],
            response_model=route.target.workflows.state_type,
            responses=DECISION_ERRORS,
            summary=route.action.capitalize(),
            description=f"{route.decision.__doc__ or ''}\n\nAllowed roles: "
            + ", ".join(sorted(r.value for r in route.roles)),
            tags=[tag],
        )


router = APIRouter(responses=DECISION_ERRORS)
add_decision_routes(router, DECISION_ROUTES, "decisions")
