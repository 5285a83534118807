"""The supervisors' dashboard: server-rendered pages of open alerts, late actions, stages and timeliness.

`dashboard_router(client, pool, settings)` gives the pages under /dashboard, for the API app
(or any FastAPI app) to include. Sign-in takes the same bearer token as the API and keeps it
in an HttpOnly, SameSite=Strict cookie; roles are the API's: supervisors see the escalations
addressed to their team or agency and acknowledge those of their rank or below (or addressed
to them by name), administrators read and acknowledge everything, auditors read everything,
partners see their own agency's agreed actions only. A supervisor grants or refuses a
repeat-referral override the screener asked for on the referral's page. A page showing a
referral's details writes an access-log entry. No page holds a child's name, date of birth
or address, nor a decision's free text.
"""

# No `from __future__ import annotations`: the routes' `SignedIn` dependency is made inside
# `dashboard_router`, and FastAPI reads it from the evaluated annotations.

import asyncio
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from readmodel.access_log import AccessLog
from activities.directory import SupervisionDirectory
from activities.alerts import AlertLinks, describe_duration, what_is_late
from readmodel.oversight import Audience, OversightReadModel
from runtime.settings import Settings
from starter.acknowledgement import AcknowledgementRefused, Acknowledgements
from auth.tokens import Authenticator, Caller, InvalidCredentials
from dashboard.charts import Band, Mark, Series, bar_chart, line_chart, timeline
from workflows.action import AgreedActionWorkflow
from workflows.authority import ACKNOWLEDGERS, OVERRIDE_DECIDERS, REJECTION_TYPE
from workflows.models import ESCALATION_ID, REFERENCE_PATTERN, Escalation, OverrideDecision, Rank, Role, Stage
from workflows.referral import ReferralWorkflow

log = structlog.get_logger("dashboard")

Clock = Callable[[], Awaitable[datetime]]

PREFIX = "/dashboard"
COOKIE = "referrals_session"
SIGNED_IN_FOR = timedelta(hours=8)
LONDON = ZoneInfo("Europe/London")
REFERENCE = re.compile(rf"^{REFERENCE_PATTERN}$")
DECISION_KEY = re.compile(r"^[0-9a-f]{32}$")
# An escalation's ID names the workflow that raised it: a referral, or one of its agreed actions.
DUE_SOON = timedelta(hours=48)
# A chart's time unit: the largest in which its longest value is at least one.
HOUR_UNITS = (("h", 1.0), ("min", 60.0), ("s", 3600.0))
WEEKS_SHOWN = 12

ESCALATION_READERS = frozenset({Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN})
CASE_READERS = frozenset(Role) - {Role.PARTNER, Role.SYSTEM}
STAGE_ORDER = [s for s in Stage if s is not Stage.CLOSED]
TIMED_STAGES = [Stage.SUPERVISOR_REVIEW, Stage.RETURNED_TO_OFFICER, Stage.SCREENING, Stage.STRATEGY_DISCUSSION,
                Stage.CONFERENCE, Stage.ACTIONS]
STAGE_SHORT = {Stage.SUPERVISOR_REVIEW: "review", Stage.RETURNED_TO_OFFICER: "returned", Stage.SCREENING: "screening",
               Stage.STRATEGY_DISCUSSION: "strategy", Stage.CONFERENCE: "ICPC", Stage.ACTIONS: "actions"}

# What a timeline shows of each fact: its kind and these fields, never free text.
TIMELINE_FIELDS: dict[str, tuple[str, ...]] = {
    "vist_submitted": ("version",),
    "vist_resubmitted": ("version",),
    "supervisor_reviewed": ("approved",),
    "stage_changed": ("from_stage", "to_stage"),
    "screened": ("outcome", "risk"),
    "risk_regraded": ("from_risk", "to_risk"),
    "strategy_discussion_held": ("section_47", "quorate"),
    "conference_booked": ("police_attendance",),
    "conference_held": ("police_attended", "child_protection_plan"),
    "closed": ("reason",),
    "escalation_acknowledged": ("escalation_id", "rank", "as_named_addressee"),
    "repeat_override_requested": (),
    "repeat_override_decided": ("granted", "requested_by"),
    "action_agreed": (),
    "action_reminded": (),
    "action_reassigned": (),
    "action_completed": (),
}
DECISIONS = {"supervisor_reviewed", "screened", "repeat_override_requested", "repeat_override_decided", "risk_regraded", "strategy_discussion_held", "conference_booked",
             "conference_held", "closed", "vist_resubmitted", "action_completed", "action_reassigned"}


async def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


# --- presentation ---------------------------------------------------------------------------


def local(moment: datetime | None) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %H:%M") if moment else ""


def words(value: object) -> str:
    """A stored code as words: "supervisor_review" is "supervisor review", "childrens_social_care" has its apostrophe."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("childrens_", "children's_").replace("_", " ")


def time_left(deadline: datetime | None, now: datetime) -> dict[str, Any]:
    """Time to a deadline, or how far past it: the text and whether it is late."""
    if deadline is None:
        return {"text": "no deadline", "late": False, "soon": False}
    left = deadline - now
    if left < timedelta(0):
        return {"text": f"late by {describe_duration(-left)}", "late": True, "soon": False}
    return {"text": f"{describe_duration(left)} left", "late": False, "soon": left < DUE_SOON}


def escalation_view(row: asyncpg.Record, now: datetime, may_acknowledge: bool) -> dict[str, Any]:
    escalation = Escalation.model_validate(
        {k: row[k] for k in ("escalation_id", "reference", "subject", "rung", "rank", "addressed_to", "due_at",
                             "raised_at", "reason")}
    )
    return {
        "id": escalation.escalation_id,
        "reference": escalation.reference,
        "what": what_is_late(escalation),
        "rung": escalation.rung + 1,
        "rank": escalation.rank.value,
        "addressed_to": row["addressee"] or escalation.addressed_to,
        "raised": local(escalation.raised_at),
        "age": describe_duration(max(now - escalation.raised_at, timedelta(0))),
        "late": describe_duration(max(now - escalation.due_at, timedelta(0))),
        "serious": escalation.rank is not Rank.SERGEANT or escalation.reason == "inquorate",
        "may_acknowledge": may_acknowledge,
    }


def week_label(week: date) -> str:
    return week.strftime("%d %b")


def weeks_ending(now: datetime) -> list[date]:
    monday = now.astimezone(LONDON).date() - timedelta(days=now.astimezone(LONDON).weekday())
    return [monday - timedelta(weeks=n) for n in reversed(range(WEEKS_SHOWN))]


# --- sign-in and roles ---------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard page of this site only, never elsewhere."""
    if not target:
        return f"{PREFIX}/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/") or "//" in parts.path or "\\" in target:
        return f"{PREFIX}/"
    return target


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), first value of each."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


def same_origin(request: Request) -> bool:
    """A form post from this site: SameSite=Strict already keeps the cookie off cross-site posts; this is a second lock."""
    origin = request.headers.get("origin")
    return origin is None or origin == "null" or urlsplit(origin).netloc == request.url.netloc


@dataclass
class Dashboard:
    client: Client
    oversight: OversightReadModel
    access_log: AccessLog
    authenticator: Authenticator
    acknowledgements: Acknowledgements
    links: AlertLinks
    clock: Clock
    templates: Jinja2Templates
    decision_timeout: float

    async def caller(self, request: Request) -> Caller | None:
        try:
            return await self.authenticator.authenticate(request.cookies.get(COOKIE))
        except InvalidCredentials as error:
            if request.cookies.get(COOKIE):
                log.info("dashboard_credentials_rejected", reason=str(error))
            return None

    def page(self, request: Request, template: str, caller: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request,
            template,
            {"caller": caller, "prefix": PREFIX, "roles": nav_roles(caller)} | context,
            status_code=status,
        )

    def forbidden(self, request: Request, caller: Caller, what: str) -> HTMLResponse:
        return self.page(request, "forbidden.html", caller, status=403, what=what)

    async def acknowledge(self, caller: Caller, escalation_id: str, key: str) -> tuple[int, str] | None:
        """Acknowledge through the owning workflow, the form's key naming the update; the refusal, or None when done."""
        try:
            ack = await self.acknowledgements.prepare(caller.actor, escalation_id)
        except AcknowledgementRefused as refused:
            return (409 if refused.missing else 403), refused.message
        refused = await self.decide(ack.owner, ack.update, ack.decision, key)
        if refused is None:
            log.info("escalation_acknowledged", escalation_id=escalation_id, actor=caller.actor.id, channel="dashboard")
        return refused

    async def decide(self, workflow_id: str, update: Callable[..., Any], decision: Any, key: str) -> tuple[int, str] | None:
        """One decision as one update named by the form's key; the refusal (status, reason), or None when done."""
        try:
            await asyncio.wait_for(
                self.client.get_workflow_handle(workflow_id).execute_update(update, decision, id=key),
                self.decision_timeout,
            )
        except TimeoutError:
            return 504, "not confirmed yet: send the same form again to learn whether it was recorded (it counts once)"
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE:
                return (403 if cause.message.startswith("actor.") else 409), cause.message
            raise
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return 409, "stage: the referral or action has finished; nothing is left to decide"
            raise
        return None


def decision_key(submitted: str | None) -> str:
    """The form's idempotency key when it is one we could have made, else a new one."""
    return submitted if submitted and DECISION_KEY.match(submitted) else uuid.uuid4().hex


def page_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.filters.update(local=local, words=words)
    # Each decision form carries its own key: submitting it twice applies it once.
    templates.env.globals.update(decision_key=lambda: uuid.uuid4().hex)
    return templates


def unavailable_page(request: Request, retry_after: int) -> HTMLResponse:
    """What every page shows while PostgreSQL or Temporal is down: a plain 503, nothing half-shown."""
    return page_templates().TemplateResponse(
        request,
        "unavailable.html",
        {"caller": None, "prefix": PREFIX, "roles": nav_roles(None)},
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )


def nav_roles(caller: Caller | None) -> dict[str, bool]:
    role = caller.actor.role if caller else None
    return {
        "escalations": role in ESCALATION_READERS,
        "cases": role in CASE_READERS,
        "acknowledge": role in ACKNOWLEDGERS,
        "override": role in OVERRIDE_DECIDERS,
    }


def dashboard_router(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    acknowledgements: Acknowledgements | None = None,
    clock: Clock = wall_clock,
) -> APIRouter:
    """The dashboard's pages, around the caller's Temporal client and PostgreSQL pool."""
    oversight = OversightReadModel(pool)
    templates = page_templates()
    board = Dashboard(
        client=client,
        oversight=oversight,
        access_log=AccessLog(pool),
        authenticator=authenticator or Authenticator.from_settings(settings),
        acknowledgements=acknowledgements
        or Acknowledgements(client, oversight, SupervisionDirectory.load(settings.alert_directory_file)),
        links=AlertLinks.from_settings(settings),
        clock=clock,
        templates=templates,
        decision_timeout=settings.decision_timeout_seconds,
    )
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def signed_in(request: Request) -> Caller:
        caller = await board.caller(request)
        if caller is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(303, "sign in first", headers={"Location": f"{PREFIX}/login?next={quote(target)}"})
        return caller

    SignedIn = Annotated[Caller, Depends(signed_in)]

    # --- sign-in ---------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str | None = None) -> Response:
        return board.page(request, "login.html", None, next=safe_next(next))

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = await form_fields(request)
        target = safe_next(fields.get("next"))
        if not same_origin(request):
            return board.page(request, "login.html", None, status=403, next=target, problem="Sign in from this site.")
        token = fields.get("token", "").strip()
        try:
            caller = await board.authenticator.authenticate(token)
        except InvalidCredentials:
            return board.page(request, "login.html", None, status=401, next=target, problem="That token was not accepted.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(SIGNED_IN_FOR.total_seconds()),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        log.info("dashboard_signed_in", actor=caller.actor.id)
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    @router.get("/")
    async def home(caller: SignedIn) -> Response:
        role = caller.actor.role
        target = "escalations" if role in ESCALATION_READERS else "referrals" if role in CASE_READERS else "actions"
        return RedirectResponse(f"{PREFIX}/{target}", status_code=303)

    # --- escalations -------------------------------------------------------------------------

    async def escalations_page(request: Request, caller: Caller, status: int = 200, **context: Any) -> Response:
        if caller.actor.role not in ESCALATION_READERS:
            return board.forbidden(request, caller, "escalations")
        mine = caller.actor.role is Role.SUPERVISOR
        audience = Audience(team=caller.team, agency=caller.actor.agency.value) if mine else None
        now = await board.clock()
        rows = await board.oversight.open_escalations(audience)
        return board.page(
            request,
            "escalations.html",
            caller,
            status=status,
            mine=mine,
            acknowledgers=caller.actor.role in ACKNOWLEDGERS,
            escalations=[
                escalation_view(row, now, board.acknowledgements.may_acknowledge(caller.actor, row)) for row in rows
            ],
            now=local(now),
            **context,
        )

    @router.get("/escalations", response_class=HTMLResponse)
    async def escalations(request: Request, caller: SignedIn, acknowledged: str | None = None) -> Response:
        done = acknowledged if acknowledged and ESCALATION_ID.match(acknowledged) else None
        return await escalations_page(request, caller, acknowledged=done)

    @router.post("/escalations/{escalation_id}/acknowledge")
    async def acknowledge(request: Request, escalation_id: str, caller: SignedIn) -> Response:
        if not same_origin(request):
            return board.forbidden(request, caller, "a form from another site")
        key = decision_key((await form_fields(request)).get("idempotency_key"))
        refused = await board.acknowledge(caller, escalation_id, key)
        if refused is not None:
            status, problem = refused
            # The same form again carries the same key, so a retry learns the first attempt's outcome.
            return await escalations_page(request, caller, status=status, problem=problem, retry={escalation_id: key})
        return RedirectResponse(f"{PREFIX}/escalations?acknowledged={quote(escalation_id)}", status_code=303)

    @router.get("/escalations/{escalation_id}/acknowledge", response_class=HTMLResponse)
    async def acknowledge_link(
        request: Request, escalation_id: str, caller: SignedIn, expires: int = 0, sig: str = ""
    ) -> Response:
        """The signed link of an alert email: after sign-in, one click acknowledges (a link alone changes nothing)."""
        valid = ESCALATION_ID.match(escalation_id) is not None and board.links.verify(
            escalation_id, expires, sig, datetime.now(timezone.utc)
        )
        if not valid:
            return board.page(request, "acknowledge.html", caller, status=404, escalation=None)
        try:
            await board.acknowledgements.prepare(caller.actor, escalation_id)
            refusal = None
        except AcknowledgementRefused as refused:
            refusal = refused.message
        return board.page(
            request,
            "acknowledge.html",
            caller,
            escalation_id=escalation_id,
            reference=escalation_id.split(".", 1)[0],
            may_acknowledge=refusal is None,
            refusal=refusal,
        )

    # --- agreed actions --------------------------------------------------------------------------

    @router.get("/actions", response_class=HTMLResponse)
    async def actions(request: Request, caller: SignedIn) -> Response:
        now = await board.clock()
        # Partners see their own agency's actions only.
        agency = caller.actor.agency.value if caller.actor.role is Role.PARTNER else None
        rows = await board.oversight.late_actions(now, DUE_SOON, agency)
        by_agency: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            by_agency[row["agency"]][row["owner"]].append(dict(row) | {"left": time_left(row["deadline"], now)})
        overdue = sum(1 for row in rows if row["deadline"] < now)
        return board.page(
            request,
            "actions.html",
            caller,
            by_agency={agency: dict(owners) for agency, owners in by_agency.items()},
            overdue=overdue,
            due_soon=len(rows) - overdue,
            window=describe_duration(DUE_SOON),
            only_agency=agency,
            now=local(now),
        )

    # --- referrals ------------------------------------------------------------------------------

    @router.get("/referrals", response_class=HTMLResponse)
    async def referrals(request: Request, caller: SignedIn) -> Response:
        if caller.actor.role not in CASE_READERS:
            return board.forbidden(request, caller, "referrals")
        now = await board.clock()
        rows = await board.oversight.open_referrals_by_stage(now)
        stages: dict[Stage, dict[str, Any]] = {s: {"count": 0, "late": 0, "referrals": []} for s in STAGE_ORDER}
        for row in rows:
            stage = stages[Stage(row["stage"])]
            stage["count"], stage["late"] = row["in_stage"], row["late_in_stage"]
            stage["referrals"].append(dict(row) | {"left": time_left(row["deadline"], now)})
        counts = bar_chart(
            "Open referrals by stage",
            [STAGE_SHORT[s] for s in STAGE_ORDER],
            [Series("late", [stages[s]["late"] for s in STAGE_ORDER], "red"),
             Series("in time", [stages[s]["count"] - stages[s]["late"] for s in STAGE_ORDER], "blue")],
        )
        return board.page(request, "referrals.html", caller, stages=stages, chart=counts, now=local(now))

    @router.get("/referrals/{reference}", response_class=HTMLResponse)
    async def referral(request: Request, reference: str, caller: SignedIn) -> Response:
        return await referral_page(request, reference, caller)

    @router.post("/referrals/{reference}/override")
    async def decide_override(request: Request, reference: str, caller: SignedIn) -> Response:
        """A supervisor grants or refuses the override a screener asked for, under the supervisor's own token."""
        if not same_origin(request):
            return board.forbidden(request, caller, "a form from another site")
        if caller.actor.role not in OVERRIDE_DECIDERS or not REFERENCE.match(reference):
            return board.forbidden(request, caller, "deciding repeat-referral overrides")
        fields = await form_fields(request)
        if fields.get("decision") not in {"grant", "refuse"}:
            return await referral_page(request, reference, caller, status=422, problem="decision: grant or refuse")
        try:
            decision = OverrideDecision(
                actor=caller.actor, granted=fields["decision"] == "grant", rationale=fields.get("rationale", "")
            )
        except ValidationError:
            return await referral_page(request, reference, caller, status=422, problem="rationale: required")
        key = decision_key(fields.get("idempotency_key"))
        refused = await board.decide(reference, ReferralWorkflow.decide_override, decision, key)
        if refused is not None:
            status, problem = refused
            return await referral_page(request, reference, caller, status=status, problem=problem,
                                       override_key=key)
        log.info("override_decided", reference=reference, actor=caller.actor.id, channel="dashboard")
        return RedirectResponse(f"{PREFIX}/referrals/{reference}?override=decided", status_code=303)

    async def referral_page(request: Request, reference: str, caller: Caller, status: int = 200, **context: Any) -> Response:
        if caller.actor.role not in CASE_READERS:
            return board.forbidden(request, caller, "referrals")
        row = await board.oversight.referral(reference) if REFERENCE.match(reference) else None
        if row is None:
            return board.page(request, "referral.html", caller, status=404, referral=None)
        await board.access_log.record(caller.actor, "dashboard", "read_referral", reference=reference)
        now = await board.clock()
        facts, spans, attendees, agreed, raised = (
            await board.oversight.timeline(reference),
            await board.oversight.stage_spans(reference),
            await board.oversight.attendees(reference),
            await board.oversight.actions(reference),
            await board.oversight.escalations(reference),
        )
        return board.page(
            request,
            "referral.html",
            caller,
            status=status,
            override_pending=row["closed_at"] is None and override_pending(facts),
            may_decide_override=caller.actor.role in OVERRIDE_DECIDERS,
            decided=request.query_params.get("override") == "decided",
            referral=dict(row) | {"left": time_left(row["deadline"], now) if row["closed_at"] is None else None},
            chart=referral_timeline(spans, facts, agreed, raised, now),
            facts=[fact_view(fact) for fact in facts],
            attendees=attendees,
            actions=[dict(a) | {"left": time_left(a["deadline"], now) if a["completed_at"] is None else None}
                     for a in agreed],
            escalations=raised,
            **context,
        )

    # --- timeliness ----------------------------------------------------------------------------

    @router.get("/timeliness", response_class=HTMLResponse)
    async def timeliness(request: Request, caller: SignedIn) -> Response:
        if caller.actor.role not in CASE_READERS:
            return board.forbidden(request, caller, "timeliness figures")
        now = await board.clock()
        weeks = weeks_ending(now)
        since = datetime.combine(weeks[0], datetime.min.time(), LONDON)
        charts, met_by_stage = await timeliness_charts(board.oversight, weeks, since, now)
        return board.page(
            request, "timeliness.html", caller, charts=charts, met_by_stage=met_by_stage,
            since=local(since), now=local(now),
        )

    return router


# --- the pages' figures ---------------------------------------------------------------------------


async def timeliness_charts(
    oversight: OversightReadModel, weeks: list[date], since: datetime, now: datetime
) -> tuple[list[Any], list[dict[str, Any]]]:
    labels = [week_label(w) for w in weeks]
    index = {week: n for n, week in enumerate(weeks)}

    def weekly(rows: list[asyncpg.Record], column: str, **match: str) -> list[float | None]:
        values: list[float | None] = [None] * len(weeks)
        for row in rows:
            if row["week"] in index and all(row[k] == v for k, v in match.items()):
                values[index[row["week"]]] = float(row[column])
        return values

    stays = await oversight.time_in_stage(since, now)
    charts = []
    for stage in TIMED_STAGES:
        median = weekly(stays, "median_hours", stage=stage.value)
        p90 = weekly(stays, "p90_hours", stage=stage.value)
        longest = max((v for v in p90 if v is not None), default=None)
        if longest is None:
            continue
        unit, per_hour = next((u, f) for u, f in HOUR_UNITS if longest * f >= 1 or u == "s")
        charts.append(
            line_chart(
                f"Time in {words(stage.value)}, by week entered",
                labels,
                [Series("median", [v * per_hour if v is not None else None for v in median], "blue"),
                 Series("90th percentile", [v * per_hour if v is not None else None for v in p90], "amber")],
                unit=unit,
            )
        )
    if not charts:
        charts.append(line_chart("Time in each stage, by week entered", labels, []))

    judged = await oversight.deadlines_met(since, now, now)
    met_share: list[float | None] = [None] * len(weeks)
    for week, n in index.items():
        rows = [r for r in judged if r["week"] == week]
        total = sum(r["met"] + r["missed"] for r in rows)
        if total:
            met_share[n] = 100 * sum(r["met"] for r in rows) / total
    charts.append(line_chart("Stage deadlines met (%), by week entered", labels, [Series("met", met_share, "green")], "%"))
    met_by_stage = []
    for stage in TIMED_STAGES:
        rows = [r for r in judged if r["stage"] == stage.value]
        met, missed = sum(r["met"] for r in rows), sum(r["missed"] for r in rows)
        if met + missed:
            met_by_stage.append({"stage": words(stage.value), "met": met, "missed": missed,
                                 "share": round(100 * met / (met + missed))})

    conferences = await oversight.conference_attendance(since, now)
    charts.append(
        bar_chart(
            "ICPC: police attendance or report in lieu, by week booked",
            labels,
            [Series("attend", weekly(conferences, "attend"), "blue"),
             Series("report in lieu", weekly(conferences, "report_in_lieu"), "sky")],
        )
    )
    on_time = await oversight.actions_on_time(since, now, now)
    charts.append(
        bar_chart(
            "Agreed actions by week due: on time, late, still overdue",
            labels,
            [Series("on time", weekly(on_time, "on_time"), "green"),
             Series("late", weekly(on_time, "late"), "amber"),
             Series("overdue", weekly(on_time, "overdue"), "red")],
        )
    )
    return charts, met_by_stage


def override_pending(facts: list[asyncpg.Record]) -> bool:
    """A screener asked for a repeat-referral override and no supervisor has decided it yet."""
    kinds = [f["kind"] for f in facts if f["kind"] in {"repeat_override_requested", "repeat_override_decided"}]
    return bool(kinds) and kinds[-1] == "repeat_override_requested"


def fact_view(fact: asyncpg.Record) -> dict[str, Any]:
    payload = fact["payload"] if isinstance(fact["payload"], dict) else json.loads(fact["payload"])
    details = [f"{words(k)}: {words(payload[k])}" for k in TIMELINE_FIELDS.get(fact["kind"], ()) if k in payload]
    if fact["kind"] == "escalation_raised":
        e = payload["escalation"]
        details = [e["escalation_id"], f"rung {e['rung'] + 1}, {e['rank']}", words(e["reason"])]
    return {
        "at": local(fact["at"]),
        "what": words(fact["kind"]),
        "stream": fact["stream"],
        "actor": f"{fact['actor_id']} ({fact['actor_role']}, {words(fact['actor_agency'])})",
        "details": ", ".join(details),
        "decision": fact["kind"] in DECISIONS,
    }


def referral_timeline(
    spans: list[asyncpg.Record],
    facts: list[asyncpg.Record],
    agreed: list[asyncpg.Record],
    raised: list[asyncpg.Record],
    now: datetime,
) -> Any:
    if not spans:
        return ""
    bands = [
        Band(words(s["stage"]), s["entered_at"].astimezone(LONDON), (s["left_at"] or now).astimezone(LONDON),
             s["deadline"].astimezone(LONDON) if s["deadline"] else None)
        for s in spans
        if s["stage"] != Stage.CLOSED.value
    ]
    marks = [Mark(f["at"].astimezone(LONDON), "decision", words(f["kind"])) for f in facts if f["kind"] in DECISIONS]
    marks += [
        Mark(e["raised_at"].astimezone(LONDON), "acknowledged" if e["acknowledged_at"] else "escalation",
             f"{e['escalation_id']}: {e['rank']}{', acknowledged' if e['acknowledged_at'] else ''}")
        for e in raised
    ]
    marks += [Mark(a["deadline"].astimezone(LONDON), "deadline", f"{a['action_id']} due") for a in agreed]
    start = spans[0]["entered_at"].astimezone(LONDON)
    closed = spans[-1]["stage"] == Stage.CLOSED.value
    end = max([spans[-1]["entered_at"] if closed else now] + [m.at for m in marks]).astimezone(LONDON)
    return timeline(bands, marks, start, end + (end - start) * 0.02)
