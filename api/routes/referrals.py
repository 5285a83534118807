"""Referral routes: VIST intake, a referral's state (every read in the access log), and the referrals list."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from datetime import datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Response

from api import models as bodies
from api.deps import (
    Channel,
    REFERRAL,
    REFERRAL_LISTERS,
    Authenticated,
    Cursor,
    Limit,
    Services,
    Svc,
    allowed,
    decode_cursor,
    own_identity,
    page,
)
from api.errors import ERRORS, ApiError, aware_moment, invalid
from auth.tokens import Caller
from starter.referrals import REFERENCE
from workflows.authority import ADDRESS_ENQUIRERS, PARTNER_REFERRERS, SUBMITTERS
from workflows.facts import visible_to
from workflows.models import (
    REFERRING_AGENCIES,
    Agency,
    PartnerReferral,
    ReferralForm,
    ReferralState,
    RiskGrade,
    Role,
    Stage,
    StartReferral,
    VistSubmission,
    future_time_in,
    match_key,
)

log = structlog.get_logger("api")

router = APIRouter(responses=ERRORS, tags=["referrals"])
# A form opening a referral: 201 a new one, 200 the same form again.
INTAKE = {
    "status_code": 201,
    "response_model": bodies.Intake,
    "responses": {200: {"model": bodies.Intake, "description": "this form was already submitted: the same referral"}},
}


@router.post("/referrals", summary="Submit a VIST", **INTAKE)
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
    return await open_referral(submission, caller, svc, response, "vist_received")


@router.post("/partner-referrals", summary="Refer a child as a partner agency (health, education, children's social care)",
             **INTAKE)
async def submit_partner_referral(
    referral: PartnerReferral,
    response: Response,
    caller: Annotated[Caller, Depends(allowed(PARTNER_REFERRERS, "refer a child as a partner agency"))],
    svc: Svc,
) -> bodies.Intake:
    """A partner agency's referral (a CSE screening tool, a safeguarding concern), opening at screening: no VIST review.

    201, 200 and 409 as for a VIST. The form's `referrer_id` and `referring_agency` must be the caller's own, as
    their token says (422 otherwise); a partner of an agency that does not refer is refused (403).
    """
    if caller.actor.agency not in REFERRING_AGENCIES:
        allowed_agencies = ", ".join(sorted(a.value for a in REFERRING_AGENCIES))
        raise ApiError(403, f"actor.agency: {caller.actor.agency.value} staff may not refer a child "
                            f"(allowed: {allowed_agencies})", "actor.agency")
    own_identity(("body", "referrer_id"), referral.referrer_id, caller)
    if referral.referring_agency is not caller.actor.agency:
        raise invalid(("body", "referring_agency"), "must be the caller's own agency: who refers comes from the credentials")
    return await open_referral(referral, caller, svc, response, "partner_referral_received")


async def open_referral(form: ReferralForm, caller: Caller, svc: Services, response: Response, event: str) -> bodies.Intake:
    """Start the form's referral (once per form) under the caller's token; its stage, risk and deadline."""
    # The workflow has no validator before its start: times the wall clock refutes are refused here.
    received_at = await svc.clock()
    problem = future_time_in(form, received_at)
    if problem is not None:
        field, why = problem.split(": ", 1)
        raise invalid(("body", *field.split(".")), why)
    # The form's receipt starts its SLA clock: the API's own clock, signed with the start by its client.
    intake = await REFERRAL.client(svc).submit(
        StartReferral(submission=form, submitted_by=caller.actor, sla_policy=svc.sla_policy, received_at=received_at),
        svc.settings.task_queue,
    )
    if not intake.created:
        response.status_code = 200
    log.info(event, reference=intake.reference, created=intake.created)
    return bodies.Intake(
        reference=intake.reference, stage=intake.stage, risk=intake.risk, deadline=intake.deadline,
        created=intake.created,
    )


@router.get("/referrals/{reference}", response_model=ReferralState, tags=["referrals"], summary="A referral's state")
async def show_referral(reference: str, caller: Authenticated, channel: Channel, svc: Svc) -> ReferralState:
    """Stage, risk, deadlines, escalations, agreed actions and the history of decisions, from the workflow.

    Every read is written to the access log, with who read it and through which client.
    """
    state = await REFERRAL.client(svc).state(reference)
    if caller.actor.role is Role.PARTNER:
        state = partner_view(state, caller.actor.agency)
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
    history = [entry for entry in state.history if visible_to(Role.PARTNER, entry.kind)]
    return state.model_copy(update={"actions": own, "escalations": [], "history": history, "screening_view": None})


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
    updated_since = aware_moment(("query", "updated_since"), updated_since)
    rows = await svc.read_model.referrals(
        now=await svc.clock(),
        limit=limit + 1,
        after=decode_cursor(cursor, REFERENCE),
        stage=stage.value if stage else None,
        risk=risk.value if risk else None,
        overdue=overdue,
        updated_since=updated_since,
    )
    items, next_cursor = page(rows, limit, "updated_at", "reference")
    return bodies.ReferralPage(items=[bodies.ReferralSummary(**dict(r)) for r in items], next_cursor=next_cursor)


@router.post(
    "/address-warnings",
    response_model=bodies.AddressWarning,
    summary="Whether an address an officer is attending has children at risk",
)
async def address_warning(
    enquiry: bodies.AddressEnquiry,
    caller: Annotated[Caller, Depends(allowed(ADDRESS_ENQUIRERS, "ask about an address"))],
    channel: Channel,
    svc: Svc,
) -> bodies.AddressWarning:
    """Counts only (open referrals, children on plans, children missing): no reference, name or record. Every
    enquiry is in the access log, by who, when and whether a warning was given; never the address."""
    row = await svc.read_model.address_warning(match_key(enquiry.address))
    warning = bodies.AddressWarning(children_at_risk=any(row.values()), **dict(row))
    await svc.access_log.record(
        caller.actor, channel, "address_warning", detail={"children_at_risk": warning.children_at_risk}
    )
    return warning
