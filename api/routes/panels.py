"""Panel routes: panels and their cadence, sittings (opened by hand or by the schedule), the agenda, attendance, each case's outcome, the minutes, absent required attendees and the actions panels set."""

# No `from __future__ import annotations`: FastAPI reads these routes' parameters from the evaluated annotations.

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.exceptions import RequestValidationError

from api import models as bodies
from api.deps import REFERRAL_LISTERS, IdempotencyKey, Svc, Target, allowed, decision_key
from api.errors import DECISION_ERRORS, ERRORS, ApiError, invalid
from api.routes.decisions import DecisionRoute, add_decision_routes, build_decision
from auth.tokens import Caller
from readmodel.panels import PanelReadModel
from starter.panels import PanelSittings, ensure_panel_schedule, panel_of, panels
from workflows.authority import PANEL_CHAIRS, PANEL_COORDINATORS
from workflows.calendar import local_date
from workflows.models import EARLIEST, LATEST, LIVE_CASE_PATTERN, PANEL_ID_PATTERN, Role
from workflows.panel_models import (
    AgendaEdit,
    AttendanceRecord,
    MeetingStart,
    Minutes,
    Panel,
    PanelCaseOutcome,
    SittingClosure,
    SittingState,
)

router = APIRouter(responses=ERRORS, tags=["panels"])

SITTING = Target("panel-sittings", PanelSittings)
# Who sets a panel up and changes its cadence: supervisors and administrators.
PANEL_ADMINS = frozenset({Role.SUPERVISOR, Role.ADMIN})
# Who opens a sitting by hand (its schedule opens it `agenda_days_before` ahead).
SITTING_OPENERS = PANEL_COORDINATORS | {Role.ADMIN}
PanelId = Annotated[str, Path(pattern=rf"^{PANEL_ID_PATTERN}$", description="the panel's code, e.g. CSENORTH")]


def sittings(svc: Svc) -> PanelSittings:
    return SITTING.client(svc)  # type: ignore[return-value]


def sitting_day(day: Annotated[date, Path(description="the sitting's date, a London date (YYYY-MM-DD)")]) -> date:
    if not EARLIEST.date() <= day < LATEST.date():
        raise invalid(("path", "day"), "must lie between 1900 and 2200")
    return day


@router.get("/panels", response_model=list[bodies.PanelListing], summary="Panels and their cadence")
async def list_panels(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list panels"))], svc: Svc
) -> list[bodies.PanelListing]:
    return [bodies.PanelListing(panel=panel, next_agendas=times) for panel, times in await panels(svc.client)]


@router.put("/panels/{panel_id}", response_model=bodies.PanelListing, summary="Set up a panel or change its cadence")
async def put_panel(
    panel_id: PanelId,
    panel: Annotated[Panel, Body()],
    caller: Annotated[Caller, Depends(allowed(PANEL_ADMINS, "set up a panel"))],
    svc: Svc,
) -> bodies.PanelListing:
    """The panel's schedule is created, or brought up to date: monthly on a day of the month, or fortnightly,
    building each sitting's agenda `agenda_days_before` ahead at 07:00 London."""
    if panel.panel_id != panel_id:
        raise invalid(("body", "panel_id"), "must be the panel named in the path")
    try:
        await ensure_panel_schedule(svc.client, panel, svc.sla_policy, svc.settings.task_queue)
    except ValueError as error:
        field, _, reason = str(error).partition(": ")
        raise invalid(("body", field), reason) from None
    listed = await panel_of(svc.client, panel_id)
    assert listed is not None
    return bodies.PanelListing(panel=listed[0], next_agendas=listed[1])


@router.post(
    "/panels/{panel_id}/sittings/{day}",
    status_code=201,
    response_model=SittingState,
    summary="Open a panel's sitting",
    responses={200: {"model": SittingState, "description": "the sitting was already open: the same sitting"}},
)
async def open_sitting(
    panel_id: PanelId,
    day: Annotated[date, Depends(sitting_day)],
    response: Response,
    caller: Annotated[Caller, Depends(allowed(SITTING_OPENERS, "open a panel's sitting"))],
    svc: Svc,
) -> Any:
    """Open the panel's sitting on `day` now (201), its agenda built from its criteria, as its schedule does; a
    sitting already open is returned (200). The day must be today or later."""
    listed = await panel_of(svc.client, panel_id)
    if listed is None:
        raise ApiError(404, "panel_id: no such panel", "panel_id")
    if day < local_date(await svc.clock(), svc.sla_policy.timezone):
        raise invalid(("path", "day"), "a sitting cannot be opened for a day gone by")
    state, created = await sittings(svc).open(listed[0], day, svc.sla_policy, svc.settings.task_queue)
    if not created:
        response.status_code = 200
    return state


@router.get("/panel-sittings", response_model=list[bodies.SittingSummary], summary="Panel sittings, soonest first")
async def list_sittings(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list panel sittings"))],
    svc: Svc,
    upcoming: Annotated[bool, Query(description="only those meeting from today")] = False,
    panel_id: Annotated[str | None, Query(pattern=rf"^{PANEL_ID_PATTERN}$")] = None,
) -> list[bodies.SittingSummary]:
    since = None
    if upcoming:
        since = (await svc.clock()).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = await PanelReadModel(svc.pool).sittings(since=since, panel_id=panel_id)
    return [bodies.SittingSummary(**dict(row)) for row in rows]


@router.get("/panel-sittings/absences", response_model=list[bodies.AbsentAttendee],
            summary="Required attendees absent at panels")
async def list_absences(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list absent attendees"))], svc: Svc
) -> list[bodies.AbsentAttendee]:
    return [bodies.AbsentAttendee(**dict(row)) for row in await PanelReadModel(svc.pool).absences()]


@router.get("/panel-sittings/actions", response_model=list[bodies.PanelAction], summary="Actions set by panels")
async def list_panel_actions(
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "list panels' actions"))],
    svc: Svc,
    open_only: Annotated[bool, Query(alias="open")] = True,
) -> list[bodies.PanelAction]:
    rows = await PanelReadModel(svc.pool).actions(open_only=open_only)
    return [bodies.PanelAction(**dict(row)) for row in rows]


@router.get("/panel-sittings/{sitting_id}", response_model=SittingState, summary="A sitting's state")
async def show_sitting(
    sitting_id: str,
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "read a panel sitting"))],
    svc: Svc,
) -> Any:
    """The agenda (each case's reasons, required roles, outcome), the register, the actions and escalations."""
    return await sittings(svc).state(sitting_id)


@router.get("/panel-sittings/{sitting_id}/minutes", response_model=Minutes, summary="A sitting's minutes")
async def show_minutes(
    sitting_id: str,
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "read a panel's minutes"))],
    svc: Svc,
) -> Any:
    """Produced from the record: the register, each case's grade (and whether the live case took it), who filled
    each required role and who was absent, its actions with owner and deadline, and the cases carried."""
    return await sittings(svc).minutes(sitting_id)


@router.post(
    "/panel-sittings/{sitting_id}/agenda",
    response_model=SittingState,
    responses=DECISION_ERRORS,
    summary="Edit a sitting's agenda",
    description=f"{AgendaEdit.__doc__}\n\nAllowed roles: " + ", ".join(sorted(r.value for r in PANEL_COORDINATORS)),
)
async def edit_agenda(
    sitting_id: str,
    body: bodies.request_model(AgendaEdit),  # type: ignore[valid-type]
    caller: Annotated[Caller, Depends(allowed(PANEL_COORDINATORS, "edit a panel's agenda"))],
    svc: Svc,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    edit = build_decision(AgendaEdit, body, caller)
    assert isinstance(edit, AgendaEdit)
    unknown = await PanelReadModel(svc.pool).unknown_additions([a.case_id for a in edit.add])
    if unknown:
        raise RequestValidationError([error | {"loc": ["body", *error["loc"]]} for error in unknown])
    return await sittings(svc).decide(sitting_id, edit, decision_key(idempotency_key, response))


@router.get("/referrals/{reference}/meetings", response_model=bodies.CaseMeetings, summary="A referral's triages and panels")
@router.get("/missing-episodes/{reference}/meetings", response_model=bodies.CaseMeetings,
            summary="A missing episode's panels")
async def case_meetings(
    reference: Annotated[str, Path(pattern=rf"^{LIVE_CASE_PATTERN}$", description="a referral or a missing episode")],
    caller: Annotated[Caller, Depends(allowed(REFERRAL_LISTERS, "read a case's meetings"))],
    svc: Svc,
) -> bodies.CaseMeetings:
    """Each day's triage that listed the case with its decision, and each panel sitting that had it on its agenda with
    what it decided (the grade and whether the live case took it, the actions, the roles absent), newest first."""
    panels_read = PanelReadModel(svc.pool)
    return bodies.CaseMeetings(
        triage=[bodies.TriageListing(**dict(r)) for r in await panels_read.triage_decisions(reference)],
        panels=[bodies.PanelListingOfCase(**dict(r)) for r in await panels_read.sittings_of_case(reference)],
    )


# Each decision at the meeting: its path, the decision, who may make it (the workflow checks again).
SITTING_DECISIONS = (
    DecisionRoute(SITTING, "meeting", MeetingStart, PANEL_CHAIRS, "open a panel's meeting"),
    DecisionRoute(SITTING, "attendance", AttendanceRecord, PANEL_COORDINATORS, "record a panel's attendance"),
    DecisionRoute(SITTING, "outcomes", PanelCaseOutcome, PANEL_CHAIRS, "decide a case at a panel"),
    DecisionRoute(SITTING, "minutes", SittingClosure, PANEL_CHAIRS, "close a panel's meeting"),
)
add_decision_routes(router, SITTING_DECISIONS, "panels")
