"""The dashboard's shared parts: the board every page draws on, the signed-in caller, templates and formatting."""

# No `from __future__ import annotations`: FastAPI reads the `SignedIn` and `Board` dependencies
# from the evaluated annotations.

import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from temporalio.client import Client

from activities.alerts import AlertLinks, describe_duration
from activities.directory import SupervisionDirectory
from activities.policy import build_sla_policy
from auth.sessions import COOKIE, COOKIE_PATH, Session, Sessions
from auth.tokens import Authenticator, Caller, InvalidCredentials
from readmodel.access_log import AccessLog
from readmodel.oversight import OversightReadModel
from readmodel.panels import PanelReadModel
from readmodel.queries import ReferralReadModel
from runtime.settings import Settings
from starter.acknowledgement import AcknowledgementRefused, Acknowledgements
from starter.missing import MissingEpisodes
from starter.panels import PanelSittings
from starter.plans import TriggerPlans
from starter.referrals import Referrals
from starter.workflow_client import DecisionRejected, DecisionUnconfirmed, NoSuchWorkflow, WorkflowClosed
from workflows.authority import (
    ACKNOWLEDGERS,
    CASE_READERS,
    MISSING_REPORTERS,
    OVERRIDE_DECIDERS,
    PARTNER_REFERRERS,
    PLAN_WRITERS,
    SUBMITTERS,
    agency_refusal,
)
from dashboard.forms import field_id, field_label
from layout import TEMPLATES
from workflows.missing_models import FoundHow, FoundWhere, InterviewOutcome, RiskIndicator, SafeAndWell, TracingActivity
from workflows.panel_models import PanelGrade
from workflows.triage_models import TriageOutcome
from workflows.models import (
    CASE_PATTERN,
    REFERRING_AGENCIES,
    Actor,
    AdultRole,
    Agency,
    ChildDecision,
    CloseReason,
    CseIndicator,
    IncidentType,
    MissingGrade,
    NamedRole,
    PartnerTool,
    PoliceAttendance,
    RiskGrade,
    Role,
    ScreeningOutcome,
    SlaPolicy,
    Stage,
)

log = structlog.get_logger("dashboard")

Clock = Callable[[], Awaitable[datetime]]

PREFIX = "/dashboard"
LONDON = ZoneInfo("Europe/London")
DECISION_KEY = re.compile(r"^[0-9a-f]{32}$")
DUE_SOON = timedelta(hours=48)

ESCALATION_READERS = frozenset({Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN})
# Every open stage, in the order a referral goes through them: a new Stage shows on every page by itself.
STAGE_ORDER = [s for s in Stage if s is not Stage.CLOSED]
# Shorter names where a chart's axis needs them; any other stage reads as its own words.
STAGE_ABBREVIATIONS = {Stage.SUPERVISOR_REVIEW: "review", Stage.RETURNED_TO_OFFICER: "returned",
                       Stage.STRATEGY_DISCUSSION: "strategy", Stage.CONFERENCE: "ICPC"}


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


def stage_short(stage: Stage) -> str:
    """A stage's name on a chart's axis."""
    return STAGE_ABBREVIATIONS.get(stage) or words(stage.value)


def time_left(deadline: datetime | None, now: datetime) -> dict[str, Any]:
    """Time to a deadline, or how far past it: the text and whether it is late."""
    if deadline is None:
        return {"text": "no deadline", "late": False, "soon": False}
    left = deadline - now
    if left < timedelta(0):
        return {"text": f"late by {describe_duration(-left)}", "late": True, "soon": False}
    return {"text": f"{describe_duration(left)} left", "late": False, "soon": left < DUE_SOON}


_LEADING_CASE = re.compile(CASE_PATTERN)


def case_page(workflow_id: str) -> tuple[str, str] | None:
    """The case a workflow ID belongs to (its own, an action's, an escalation's) and where the dashboard shows it:
    a referral's, a missing episode's, a trigger plan's or a panel sitting's own page."""
    match = _LEADING_CASE.match(workflow_id)
    if match is None:
        return None
    case = match.group()
    if MissingEpisodes.matches(case):
        return case, f"{PREFIX}/missing/{case}"
    if TriggerPlans.matches(case):
        return case, f"{PREFIX}/plans/{case}"
    if PanelSittings.matches(case):
        return case, f"{PREFIX}/panels/{case}"
    return case, f"{PREFIX}/referrals/{case}"


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
    read_model: ReferralReadModel
    panels: PanelReadModel
    sla_policy: SlaPolicy
    access_log: AccessLog
    authenticator: Authenticator
    sessions: Sessions
    acknowledgements: Acknowledgements
    links: AlertLinks
    clock: Clock
    templates: Jinja2Templates
    decision_timeout: float
    task_queue: str  # where a case opened by a form runs
    plan_id_secret: bytes  # keys a trigger plan's ID, as the API's

    async def session(self, request: Request) -> Session | None:
        """The live session the request's cookie names, kept on the request for its forms; None when there is none."""
        cookie = request.cookies.get(COOKIE)
        try:
            request.state.session = await self.sessions.session(cookie)
        except InvalidCredentials as error:
            if cookie:
                log.info("dashboard_session_rejected", reason=str(error))
            return None
        return request.state.session

    def page(self, request: Request, template: str, caller: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
        return rendered(self.templates, request, template, caller, status, context)

    def forbidden(self, request: Request, caller: Caller, what: str) -> HTMLResponse:
        return self.page(request, "forbidden.html", caller, status=403, what=what)

    @property
    def referrals(self) -> Referrals:
        return Referrals(self.client, self.decision_timeout)

    async def acknowledge(self, caller: Caller, escalation_id: str, key: str) -> tuple[int, str] | None:
        """Acknowledge through the owning workflow, the form's key naming the update; the refusal, or None when done."""
        try:
            ack = await self.acknowledgements.prepare(caller.actor, escalation_id)
        except AcknowledgementRefused as refused:
            return (409 if refused.missing else 403), refused.message
        refused = await refusal(ack.send(key))
        if refused is None:
            log.info("escalation_acknowledged", escalation_id=escalation_id, actor=caller.actor.id, channel="dashboard")
        return refused


async def refusal(decision: Awaitable[Any]) -> tuple[int, str] | None:
    """Await one decision sent under the form's key; the refusal the page shows (status, reason), or None when done."""
    try:
        await decision
    except DecisionUnconfirmed:
        return 504, "not confirmed yet: send the same form again to learn whether it was recorded (it counts once)"
    except DecisionRejected as rejection:
        return (403 if rejection.about_who_decides else 409), rejection.reason
    except (NoSuchWorkflow, WorkflowClosed):
        return 409, "stage: the referral or action has finished; nothing is left to decide"
    return None


def decision_key(submitted: str | None) -> str:
    """The form's idempotency key when it is one we could have made, else a new one."""
    return submitted if submitted and DECISION_KEY.fullmatch(submitted) else uuid.uuid4().hex


def content_security_policy(nonce: str) -> str:
    """What a page may load: its own style block (by nonce) and its own site's images and stylesheets; no script;
    forms post back to this site only; no other site may frame it."""
    return (f"default-src 'none'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


def rendered(templates: Jinja2Templates, request: Request, template: str, caller: Caller | None, status: int,
             context: dict[str, Any], headers: dict[str, str] | None = None) -> HTMLResponse:
    """A page, with the session's CSRF token for its forms, a fresh nonce for its style block, and its policy."""
    session: Session | None = getattr(request.state, "session", None)
    nonce = secrets.token_urlsafe(16)
    base = {"caller": caller, "prefix": PREFIX, "roles": nav_roles(caller), "csp_nonce": nonce,
            "csrf_token": session.csrf_token if session and caller else ""}
    return templates.TemplateResponse(
        request,
        template,
        base | context,
        status_code=status,
        # Pages show children's data: never kept by a browser or a proxy.
        headers={"Content-Security-Policy": content_security_policy(nonce), "Cache-Control": "no-store"}
        | (headers or {}),
    )


def page_templates() -> Jinja2Templates:
    # The dashboard's own templates, then the layout every page shares (layout/templates: page.html, style.css).
    templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", TEMPLATES])
    # `pair`: a value offered as its own words, for choices that are IDs.
    templates.env.filters.update(local=local, words=words, pair=lambda value: (value, value))
    # Each decision form carries its own key: submitting it twice applies it once.
    templates.env.globals.update(decision_key=lambda: uuid.uuid4().hex, field_id=field_id, field_label=field_label,
                                 options=options, **{choice.__name__: choice for choice in CHOICES})
    return templates


# The vocabularies a form offers as its choices, each by its class name in the templates.
CHOICES = (Agency, RiskGrade, ScreeningOutcome, ChildDecision, NamedRole, CloseReason, PoliceAttendance, IncidentType,
           AdultRole, MissingGrade, TracingActivity, FoundWhere, FoundHow, SafeAndWell, InterviewOutcome, TriageOutcome,
           PartnerTool, CseIndicator, PanelGrade, RiskIndicator)


def options(vocabulary: type[StrEnum]) -> list[tuple[str, str]]:
    """A vocabulary's codes and their words, as a form's choices."""
    return [(member.value, words(member.value)) for member in vocabulary]


def unavailable_page(request: Request, retry_after: int) -> HTMLResponse:
    """What every page shows while PostgreSQL or Temporal is down: a plain 503, nothing half-shown."""
    return rendered(page_templates(), request, "unavailable.html", None, 503, {},
                    headers={"Retry-After": str(retry_after)})


def writes_plans(actor: Actor) -> bool:
    """Children's social care's own plan writers write and revise trigger plans (the workflow checks again)."""
    return actor.role in PLAN_WRITERS and agency_refusal(actor, Agency.CHILDRENS_SOCIAL_CARE, "write a plan") is None


def nav_roles(caller: Caller | None) -> dict[str, bool]:
    role = caller.actor.role if caller else None
    return {
        "escalations": role in ESCALATION_READERS,
        "cases": role in CASE_READERS,
        "acknowledge": role in ACKNOWLEDGERS,
        "override": role in OVERRIDE_DECIDERS,
        "vist": role in SUBMITTERS,
        "refer": role in PARTNER_REFERRERS and caller is not None and caller.actor.agency in REFERRING_AGENCIES,
        "report_missing": role in MISSING_REPORTERS,
        "trigger_plan": caller is not None and writes_plans(caller.actor),
    }


def create_board(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    acknowledgements: Acknowledgements | None = None,
    sla_policy: SlaPolicy | None = None,
    clock: Clock = wall_clock,
) -> Dashboard:
    """What the pages draw on, around the caller's Temporal client and PostgreSQL pool."""
    oversight = OversightReadModel(pool)
    return Dashboard(
        client=client,
        oversight=oversight,
        read_model=ReferralReadModel(pool),
        panels=PanelReadModel(pool),
        sla_policy=sla_policy or build_sla_policy(settings.sla_policy_file),
        access_log=AccessLog(pool),
        authenticator=authenticator or Authenticator.from_settings(settings),
        sessions=Sessions(pool),
        acknowledgements=acknowledgements
        or Acknowledgements(
            client, oversight, SupervisionDirectory.load(settings.alert_directory_file), settings.decision_timeout_seconds
        ),
        links=AlertLinks.from_settings(settings),
        clock=clock,
        templates=page_templates(),
        decision_timeout=settings.decision_timeout_seconds,
        task_queue=settings.task_queue,
        plan_id_secret=settings.secret(settings.plan_id_secret, "plan-id-secret"),
    )


def the_board(request: Request) -> Dashboard:
    """The board the app that mounts the pages made (`mount`)."""
    return request.app.state.dashboard


Board = Annotated[Dashboard, Depends(the_board)]


async def signed_in(request: Request, board: Board) -> Caller:
    session = await board.session(request)
    if session is None:
        # Back to the page after signing in; a form's post has no page of its own, so its sender starts at home.
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        else:
            target = f"{PREFIX}/"
        raise HTTPException(303, "sign in first", headers={"Location": f"{PREFIX}/login?next={quote(target)}"})
    return session.caller


SignedIn = Annotated[Caller, Depends(signed_in)]


class FormRefused(Exception):
    """A form post the dashboard will not act on: from another site, or without its session's CSRF token."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


async def posted_form(request: Request, caller: SignedIn) -> dict[str, str]:
    """A signed-in browser's form, checked before anything is done with it: posted from this site, and carrying
    the CSRF token of the session it was posted under (every page's forms hold it as `csrf_token`).

    Refused (FormRefused, shown as a 403 page) otherwise; a form whose session has ended is sent to sign in.
    """
    if not same_origin(request):
        raise FormRefused("a form from another site")
    fields = await form_fields(request)
    if request.state.session.forged(fields.pop("csrf_token", None)):
        log.info("dashboard_csrf_refused", actor=caller.actor.id, route=request.url.path)
        raise FormRefused("a form this session did not make: open the page again and send it from there")
    return fields


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


async def form_refused(request: Request, refused: FormRefused) -> HTMLResponse:
    """The 403 page for a refused form post (registered by `mount`)."""
    return the_board(request).page(request, "forbidden.html", request.state.session.caller, status=403,
                                   refused=refused.why)
