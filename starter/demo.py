"""The demo `make run` plays against the running stack: twelve weeks of a synthetic archive imported (the weeks before
the stack began, starter/archive.py), then synthetic referrals, one taken through
every stage, one escalating, a missing episode from report to return-home interview, today's
domestic-abuse triage, a CSE/missing panel sitting from agenda to minutes, then every referral the
system knows.

It shows references, stages, risk grades, incident types, agencies and times only: never a
child's name, date of birth, address or any free text, even though the data is synthetic.

    python -m starter.demo      against TEMPORAL_ADDRESS and DATABASE_URL (a stack already running)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.policy import build_sla_policy
from activities.records import ReferralRecords
from runtime.settings import Settings
from readmodel.database import create_pool
from starter.actions import AgreedActions
from starter.archive import WEEKS as ARCHIVE_WEEKS, import_archive
from starter.missing import MissingEpisodes
from starter.panels import PanelSittings, ensure_panel_schedule
from starter.referrals import Referrals
from starter.triage import Triages
from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    CSC_PARTNER,
    HEALTH_PARTNER,
    INSPECTOR,
    OFFICER,
    SCREENER,
    SERGEANT,
    approval,
    found_report,
    screening,
    strategy_discussion,
    synthetic_missing_report,
    synthetic_vist,
)
from workflows.missing_models import (
    EpisodePhase,
    EpisodeReview,
    EpisodeState,
    InterviewOutcome,
    LowGradeDecision,
    ReturnHomeInterview,
    RiskIndicator,
    StartMissingEpisode,
    TracingActivity,
    TracingRecord,
)
from starter.workflow_client import DecisionUnconfirmed, WorkflowRefusal
from workflows.calendar import is_working_day
from workflows.panel_models import (
    AgendaAddition,
    AgendaEdit,
    AttendanceRecord,
    Cadence,
    MeetingStart,
    Panel,
    PanelAttendee,
    PanelCaseOutcome,
    PanelGrade,
    SittingClosure,
    SittingPhase,
    SittingState,
)
from workflows.triage_models import TriageDecision, TriageOutcome
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    Actor,
    Agency,
    AgreedActionSpec,
    ConferenceBooking,
    ConferenceOutcome,
    Decision,
    Duration,
    EscalationAcknowledgement,
    EscalationPolicy,
    IncidentType,
    MissingGrade,
    NamedRole,
    PoliceAttendance,
    Rank,
    ReferralState,
    RiskGrade,
    ScreeningOutcome,
    SlaPolicy,
    Stage,
    StageDeadlines,
    StartReferral,
    VistSubmission,
    triage_id,
)

T = TypeVar("T")

LONDON = ZoneInfo("Europe/London")
STEP_TIMEOUT = 60.0  # one update or query, end to end
CLOSE_TIMEOUT = 30.0  # the referral closing once its agreed actions report completion
ESCALATION_TIMEOUT = 40.0  # the fast-SLA referral raising its second escalation
RECORDED_TIMEOUT = 30.0  # this run's facts reaching PostgreSQL through the outbox

# The three everyday referrals: (incident type, initial risk).
REFERRALS = [
    (IncidentType.DOMESTIC_ABUSE, RiskGrade.HIGH),
    (IncidentType.NEGLECT, RiskGrade.MEDIUM),
    (IncidentType.ONLINE_HARM, RiskGrade.STANDARD),
]
ESCALATING = (IncidentType.MISSING, RiskGrade.HIGH)
# The demo's panel: a monthly CSE/missing MARAC.
DEMO_PANEL = "DEMOMARAC"

# Who completes an agreed action, by the owning agency (staff of that agency may complete it).
COMPLETER_BY_AGENCY: dict[Agency, Actor] = {
    Agency.HEALTH: HEALTH_PARTNER,
    Agency.CHILDRENS_SOCIAL_CARE: CSC_PARTNER,
    Agency.POLICE: OFFICER,
}


class DemoError(Exception):
    """A step of the demo failed; the message names the step and the workflow's reason."""


def same_day_report_policy(policy: SlaPolicy) -> SlaPolicy:
    """A report in lieu due on the ICPC's own day, so the demo can book one a minute ahead and hold it."""
    return policy.model_copy(update={"conference_report_working_days_before": 0})


def fast_sla_policy(policy: SlaPolicy) -> SlaPolicy:
    """Supervisor review due in ~11 s and each further rung ~7 s later: escalation within the demo."""
    due = Duration(hours=0.003)
    return policy.model_copy(
        update={
            "supervisor_review": StageDeadlines(standard=due, medium=due, high=due),
            "escalation": EscalationPolicy(grace=Duration(hours=0.002)),
        }
    )


def when(value: datetime | None) -> str:
    """A time as London sees it (all times shown are Europe/London)."""
    if value is None:
        return "-"
    return value.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S")


def short(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(LONDON).strftime("%d %b %H:%M:%S")


def _reason(error: BaseException) -> str:
    """The workflow's reason for a failure (field and rule, never submitted values)."""
    cause = error.__cause__ or getattr(error, "cause", None)
    message = getattr(cause, "message", None) or str(cause or "") or str(error) or type(error).__name__
    return message


async def step(name: str, action: Awaitable[T], timeout: float = STEP_TIMEOUT) -> T:
    """Await one call to the system, turning a failure into a DemoError naming the step."""
    try:
        return await asyncio.wait_for(action, timeout)
    except (asyncio.TimeoutError, DecisionUnconfirmed) as error:
        raise DemoError(f"{name}: no answer within {timeout:.0f} s (is the worker running?)") from error
    except WorkflowRefusal as refusal:
        raise DemoError(f"{name}: rejected: {refusal.reason}") from refusal
    except WorkflowUpdateFailedError as error:
        raise DemoError(f"{name}: rejected: {_reason(error)}") from error
    except RPCError as error:
        raise DemoError(f"{name}: Temporal refused: {error.message}") from error


async def eventually(
    name: str, probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float, interval: float = 0.5
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await step(name, probe())
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"{name}: not reached within {timeout:.0f} s")
        await asyncio.sleep(interval)


class Steps:
    """One printed line per step: what was done, by whom, and the referral's stage after it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.count = 0
        self._line("#", "step", "by", "stage after", "detail", style="bold")

    def _line(self, number: str, name: str, who: str, stage: str, detail: str, style: str | None = None) -> None:
        self.console.print(
            f"  {number:>2}  {name:<38} {who:<21} {stage:<20} {detail}".rstrip(), style=style, soft_wrap=True
        )

    def add(self, name: str, actor: Actor | None, stage: Stage | str, detail: str = "") -> None:
        self.count += 1
        who = f"{actor.id} ({actor.role.value})" if actor else "(workflow)"
        stage_text = stage.value if isinstance(stage, Stage) else stage
        self._line(str(self.count), name, who, stage_text, detail)


async def start_referral(client: Client, settings: Settings, submission: VistSubmission, policy: SlaPolicy) -> str:
    """Start the submission's referral; its reference."""
    reference = Referrals.workflow_id(submission.form_id)
    start = StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=policy)
    await step(f"start {reference}", Referrals(client).submit(start, settings.task_queue))
    return reference


async def query_state(client: Client, reference: str) -> ReferralState:
    return await step(f"query {reference}", Referrals(client).state(reference))


# --- the parts of the demo ---------------------------------------------------------------


async def submit_referrals(
    client: Client, settings: Settings, console: Console, policy: SlaPolicy, rng: random.Random
) -> list[tuple[VistSubmission, str]]:
    console.rule("Three VIST referrals submitted by an officer")
    started = []
    for incident_type, risk in REFERRALS:
        submission = synthetic_vist(rng=rng, incident_type=incident_type, risk=risk)
        started.append((submission, await start_referral(client, settings, submission, policy)))
    table = Table(show_header=True, header_style="bold")
    table.add_column("reference", no_wrap=True, min_width=15)
    table.add_column("incident type", no_wrap=True)
    table.add_column("risk", no_wrap=True)
    table.add_column("children", justify="right")
    table.add_column("stage", no_wrap=True)
    table.add_column("review due (London)", no_wrap=True)
    for _, reference in started:
        state = await query_state(client, reference)
        table.add_row(
            state.reference,
            state.incident_type.value,
            state.risk.value,
            str(len(state.children)),
            state.stage.value,
            when(state.deadline),
        )
    console.print(table)
    return started


@dataclass
class Walk:
    """One referral taken through its stages: each decision sent by its workflow client and printed as a step."""

    referrals: Referrals
    actions: AgreedActions
    steps: Steps
    reference: str

    async def decide(
        self, name: str, done: str, decision: Decision, detail: Callable[[ReferralState], str] = lambda _: ""
    ) -> ReferralState:
        state = await step(name, self.referrals.decide(self.reference, decision))
        self.steps.add(done, decision.actor, state.stage, detail(state))
        return state

    async def complete_actions(self, state: ReferralState) -> None:
        """Each agreed action completed by someone of its owning agency."""
        for action in state.actions:
            completion = ActionCompletion(
                actor=COMPLETER_BY_AGENCY.get(action.owner.agency, SCREENER), note="Synthetic completion note."
            )
            done = await step(f"complete {action.action_id}", self.actions.decide(action.action_id, completion))
            now_state = await step(f"query {self.reference}", self.referrals.state(self.reference))
            self.steps.add(
                f"{action.action_id.removeprefix(self.reference + '.')} completed ({action.owner.agency.value})",
                completion.actor,
                now_state.stage,
                f"done {short(done.completed_at)}",
            )

    async def closed(self, state: ReferralState) -> ReferralState:
        """The referral once closed: at once, or when its last agreed action reports completion."""
        if state.stage is Stage.CLOSED:
            return state
        state = await eventually(
            f"{self.reference} closing", lambda: self.referrals.state(self.reference),
            lambda s: s.stage is Stage.CLOSED, CLOSE_TIMEOUT,
        )
        self.steps.add("all agreed actions done: closed", None, state.stage)
        return state


def report_in_lieu_booking() -> ConferenceBooking:
    """An ICPC a minute ahead, so its outcome (which cannot precede it) is recorded in the demo."""
    return ConferenceBooking(
        actor=SCREENER,
        conference_at=(datetime.now(timezone.utc) + timedelta(minutes=1)).replace(microsecond=0),
        police_attendance=PoliceAttendance.REPORT_IN_LIEU,
        attendance_rationale="Synthetic rationale: police hold no information beyond the report.",
        report_owner="DC Synthetic",
    )


def plan_made(held_at: datetime) -> ConferenceOutcome:
    return ConferenceOutcome(
        actor=SCREENER,
        held_at=held_at,
        child_protection_plan=True, allocated_social_worker=ALLOCATED_SOCIAL_WORKER,
        police_attended=False,
        rationale="Synthetic conference rationale.",
    )


async def walk_through_every_stage(
    client: Client, console: Console, submission: VistSubmission, reference: str
) -> ReferralState:
    console.rule(f"{reference}: from supervisor review to closure")
    walk = Walk(Referrals(client), AgreedActions(client), Steps(console), reference)
    await walk.decide("supervisor review", "supervisor approves the VIST", approval(), lambda s: f"risk {s.risk.value}")
    await walk.decide(
        "screening", "CRU screens: strategy discussion", screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION),
        lambda s: f"risk {s.risk.value}; {len(s.screening_view.prior_referrals) if s.screening_view else 0} "
        "prior referral(s) in view",
    )
    await walk.decide(
        "strategy discussion", "strategy discussion: section 47",
        strategy_discussion(datetime.now(timezone.utc), section_47=True, actions=2),
        lambda s: f"{len(s.actions)} actions agreed; ICPC due by {short(s.conference_due_by)}",
    )
    booking = report_in_lieu_booking()
    state = await walk.decide(
        "conference booking", "ICPC booked: report in lieu", booking,
        lambda s: f"ICPC on {short(s.conference_at)}; {len(s.actions)} actions",
    )
    await walk.complete_actions(state)
    state = await walk.decide("conference outcome", "ICPC outcome: child protection plan", plan_made(booking.conference_at))
    state = await walk.closed(state)
    console.print(
        f"  {reference} closed: reason {state.close_reason.value if state.close_reason else '-'}, "
        f"{len(state.history)} decisions in its history, "
        f"{sum(1 for a in state.actions if a.completed_at)} of {len(state.actions)} actions complete",
        soft_wrap=True,
    )
    return state


async def walk_missing_episode(
    client: Client, settings: Settings, console: Console, policy: SlaPolicy, rng: random.Random
) -> EpisodeState:
    """A missing child reported at a low grade a supervisor keeps, traced, found, interviewed at home, closed."""
    episodes, actions = MissingEpisodes(client), AgreedActions(client)
    report = synthetic_missing_report(rng=rng, grade=MissingGrade.LOW, indicators=[RiskIndicator.CSE_CONCERN])
    start = StartMissingEpisode(report=report, reported_by=OFFICER, sla_policy=policy)
    intake = await step("missing report", episodes.report(start, settings.task_queue))
    episode = intake.state.episode_id
    console.rule(f"{episode}: a missing child, from report to return-home interview")
    steps = Steps(console)
    steps.add(
        "missing report: low grade, CSE concern", OFFICER, intake.state.phase.value,
        f"treated {intake.state.grade.value} until a supervisor decides",
    )

    async def decide(
        name: str, done: str, decision: Decision, detail: Callable[[EpisodeState], str] = lambda _: ""
    ) -> EpisodeState:
        state = await step(name, episodes.decide(episode, decision))
        steps.add(done, decision.actor, state.phase.value, detail(state))
        return state

    await decide(
        "low grade decision", "supervisor keeps the low grade",
        LowGradeDecision(actor=SERGEANT, keep_low=True, rationale="Synthetic rationale: known to return within hours."),
        lambda s: f"grade {s.grade.value}; review due {short(s.review_due)}",
    )
    await decide(
        "episode review", "supervisor reviews the episode",
        EpisodeReview(actor=SERGEANT, tracing_done="Synthetic: home searched.", next_steps="Synthetic: visit friends."),
        lambda s: f"next review due {short(s.review_due)}",
    )
    await decide(
        "tracing record", "tracing: addresses visited",
        TracingRecord(actor=OFFICER, activity=TracingActivity.ADDRESSES_VISITED),
        lambda s: f"tracing due {short(s.tracing_due)}",
    )
    found_at = datetime.now(timezone.utc).replace(microsecond=0)
    state = await decide(
        "found", "found: safe and well", found_report(found_at),
        lambda s: f"return-home interview {s.interview_action_id} due {short(s.interview_due)}",
    )
    interview = state.interview_action_id
    completion = ActionCompletion(actor=CSC_PARTNER, note="Synthetic: interview held at home.")
    await step(f"complete {interview}", actions.decide(interview, completion))
    state = await step(f"query {episode}", episodes.state(episode))
    steps.add("return-home interview action completed", CSC_PARTNER, state.phase.value)
    state = await decide(
        "interview outcome", "interview outcome: done",
        ReturnHomeInterview(actor=CSC_PARTNER, outcome=InterviewOutcome.DONE, held_at=datetime.now(timezone.utc)),
    )
    if state.phase is not EpisodePhase.CLOSED:
        state = await eventually(
            f"{episode} closing", lambda: episodes.state(episode), lambda s: s.phase is EpisodePhase.CLOSED, CLOSE_TIMEOUT
        )
        steps.add("interview done: closed", None, state.phase.value)
    console.print(f"  {episode} closed: {len(state.history)} decisions in its history, {len(state.reviews)} review(s)")
    return state


async def walk_daily_triage(client: Client, settings: Settings, console: Console, policy: SlaPolicy) -> None:
    """Today's domestic-abuse triage, opened as its 07:00 schedule opens it; each referral it lists decided."""
    today = datetime.now(timezone.utc).astimezone(LONDON).date()
    console.rule(f"{triage_id(today)}: the daily domestic-abuse triage")
    if not is_working_day(today, frozenset(policy.bank_holidays)):
        console.print(f"  {today.isoformat()} is not a working day: no triage is held (the schedule skips it)")
        return
    triages = Triages(client)
    opened = await step("open today's triage", triages.open(today, policy, settings.task_queue))
    state = await eventually("the triage list", lambda: triages.state(opened.state.triage_id), lambda s: s.listed,
                             STEP_TIMEOUT)
    console.print(
        f"  {'opened' if opened.created else 'already open'}: {len(state.items)} referral(s) received from "
        f"{short(state.received_since)} to {short(state.received_until)}; today's referrals join tomorrow's list"
    )
    for item in state.waiting:
        decision = TriageDecision(actor=SCREENER, reference=item.reference, outcome=TriageOutcome.EARLY_HELP,
                                  rationale="Synthetic rationale: no history of concern.")
        await step(f"triage decision on {item.reference}", triages.decide(state.triage_id, decision))
        console.print(f"  {item.reference}: {item.risk.value}, {len(item.history.prior_referrals)} prior referral(s): early help")


async def walk_panel_sitting(
    client: Client, settings: Settings, console: Console, policy: SlaPolicy, referred: str
) -> SittingState:
    """A CSE/missing panel: its cadence scheduled, a sitting's agenda from its criteria and a member agency's referral
    (`referred`), attendance with the CSE team absent, a grade applied at once to the live referral, an action done."""
    panel = Panel(panel_id=DEMO_PANEL, name="CSE and missing MARAC (demo)", area="Testtown",
                  cadence=Cadence.MONTHLY, first_sitting=date(2026, 1, 8))
    await step("panel schedule", ensure_panel_schedule(client, panel, policy, settings.task_queue))
    sittings = PanelSittings(client)
    today = datetime.now(timezone.utc).astimezone(LONDON).date()
    # The next day with no sitting of the demo panel yet: a stack's earlier runs held theirs.
    for ahead in range(60):
        state, created = await step("open a sitting", sittings.open(panel, today + timedelta(days=ahead), policy, settings.task_queue))
        if created:
            break
    sitting = state.sitting_id
    console.rule(f"{sitting}: a CSE/missing panel sitting, from agenda to minutes")
    state = await eventually("the agenda", lambda: sittings.state(sitting), lambda s: s.agenda_built, STEP_TIMEOUT)
    steps = Steps(console)
    steps.add("agenda built by the panel's criteria", None, state.phase.value,
              f"{len(state.agenda)} case(s): " + ", ".join(f"{i.case_id} ({', '.join(r.value for r in i.reasons)})" for i in state.agenda))

    async def decide(name: str, decision: Decision, detail: Callable[[SittingState], str] = lambda _: "") -> SittingState:
        state = await step(name, sittings.decide(sitting, decision))
        steps.add(name, decision.actor, state.phase.value, detail(state))
        return state

    await decide("member agency refers a case", AgendaEdit(
        actor=SCREENER, add=[AgendaAddition(case_id=referred, referred_by=Agency.EDUCATION)], reason="Synthetic: school's concern."),
        lambda s: f"{len(s.agenda)} case(s)")
    await decide("chair opens the meeting", MeetingStart(actor=INSPECTOR))
    await decide("attendance recorded", AttendanceRecord(actor=SCREENER, attendees=[
        PanelAttendee(name="Social Worker Synthetic", agency=Agency.CHILDRENS_SOCIAL_CARE, role="Social worker",
                      named_role=NamedRole.ALLOCATED_SOCIAL_WORKER),
        PanelAttendee(name="PC Synthetic", agency=Agency.POLICE, role="Officer in case", named_role=NamedRole.ALLOCATED_OFFICER),
        PanelAttendee(name="Nurse Synthetic", agency=Agency.HEALTH, role="School nurse"),
    ]), lambda s: f"{len(s.attendees)} attendees; no one from the CSE team")
    before = await query_state(client, referred)
    due = datetime.now(timezone.utc) + timedelta(days=14)
    state = await decide("case decided: graded high", PanelCaseOutcome(
        actor=INSPECTOR, case_id=referred, grade=PanelGrade.HIGH, rationale="Synthetic: exploitation risk.",
        agreed_actions=[AgreedActionSpec(description="Synthetic: disruption visit.", deadline=due,
                                         owner=ActionOwner(agency=Agency.POLICE, owner="DC Synthetic"))],
    ), lambda s: f"absent: {', '.join(r.value for i in s.agenda if i.case_id == referred for r in i.absent_roles)}; "
                 f"{len(s.escalations)} escalation(s)")
    after = await query_state(client, referred)
    console.print(f"  {referred} on the live record at once: risk {before.risk.value} -> {after.risk.value}, "
                  f"deadline {short(before.deadline)} -> {short(after.deadline)}")
    state = await decide("meeting closed: minutes made", SittingClosure(actor=INSPECTOR),
                         lambda s: f"{sum(i.not_reached for i in s.agenda)} case(s) carried to the next sitting")
    (action,) = state.actions
    await step(f"complete {action.action_id}", AgreedActions(client).decide(
        action.action_id, ActionCompletion(actor=OFFICER, note="Synthetic: visit made.")))
    steps.add(f"action {action.action_id} completed", OFFICER, "done")
    state = await eventually(f"{sitting} closing", lambda: sittings.state(sitting),
                             lambda s: s.phase is SittingPhase.CLOSED, CLOSE_TIMEOUT)
    minutes = await step("minutes", sittings.minutes(sitting))
    console.print(f"  minutes: {len(minutes.attendees)} attendees; "
                  + "; ".join(f"{c.case_id} {c.grade.value if c.grade else 'no grade'}"
                              f"{' (carried)' if c.not_reached else ''}" for c in minutes.cases))
    return state


async def show_escalation(client: Client, console: Console, reference: str, started_at: float) -> ReferralState:
    referrals = Referrals(client)
    console.rule(f"{reference}: left unreviewed under a fast SLA, it escalates")
    waited_from = time.monotonic()
    state = await eventually(
        f"{reference} escalating",
        lambda: referrals.state(reference),
        lambda s: len(s.escalations) >= 2,
        ESCALATION_TIMEOUT,
    )
    console.print(
        f"  {len(state.escalations)} escalations {time.monotonic() - started_at:.0f} s after submission "
        f"(waited {time.monotonic() - waited_from:.0f} s here); stage {state.stage.value}, "
        f"due {short(state.deadline)}",
        soft_wrap=True,
    )
    console.print(escalation_table(state))
    console.print(f"  (times are Europe/London; subject: the {state.stage.value} stage)")

    # A rung is acknowledged by its rank or above: the inspector takes the inspector's rung.
    rung = next(e for e in state.escalations if e.rank is Rank.INSPECTOR and e.acknowledged_at is None)
    ack = EscalationAcknowledgement(actor=INSPECTOR, escalation_id=rung.escalation_id)
    state = await step(f"acknowledge {rung.escalation_id}", referrals.decide(reference, ack))
    acknowledged = next(e for e in state.escalations if e.escalation_id == rung.escalation_id)
    console.print(
        f"  {acknowledged.escalation_id} acknowledged by {acknowledged.acknowledged_by} (inspector) "
        f"at {short(acknowledged.acknowledged_at)}; the next rung waits a grace period from then",
        soft_wrap=True,
    )
    return state


def escalation_table(state: ReferralState) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("escalation", no_wrap=True)
    table.add_column("rung", justify="right", no_wrap=True)
    table.add_column("rank", no_wrap=True)
    table.add_column("addressed to", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("due at", no_wrap=True)
    table.add_column("raised at", no_wrap=True)
    for e in state.escalations:
        table.add_row(
            e.escalation_id.removeprefix(state.reference + "."),
            str(e.rung),
            e.rank.value,
            e.addressed_to,
            e.reason,
            short(e.due_at),
            short(e.raised_at),
        )
    return table


async def _fetch(pool_or_dsn: asyncpg.Pool | str, sql: str, *args: Any) -> list[asyncpg.Record]:
    if isinstance(pool_or_dsn, str):
        conn = await asyncpg.connect(pool_or_dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return await pool_or_dsn.fetch(sql, *args)


async def show_all_referrals(
    client: Client, pool_or_dsn: asyncpg.Pool | str, console: Console, expected: dict[str, Stage]
) -> None:
    console.rule("Every referral the system knows")
    # Facts reach PostgreSQL through each workflow's outbox: wait for this run's to arrive.
    references = list(expected)

    async def recorded() -> dict[str, str]:
        rows = await _fetch(pool_or_dsn, "SELECT reference, stage FROM referrals WHERE reference = ANY($1)", references)
        return {row["reference"]: row["stage"] for row in rows}

    await eventually(
        "this run's referrals recorded in PostgreSQL",
        recorded,
        lambda got: all(got.get(ref) == stage.value for ref, stage in expected.items()),
        RECORDED_TIMEOUT,
    )
    rows = await step(
        "read the referrals table",
        _fetch(
            pool_or_dsn,
            "SELECT reference, stage, risk, incident_type, submitted_at FROM referrals"
            " WHERE reference NOT IN (SELECT reference FROM imported_cases) ORDER BY submitted_at",
        ),
    )
    imported = (await _fetch(pool_or_dsn, "SELECT count(*) AS n FROM imported_cases"))[0]["n"]
    table = Table(show_header=True, header_style="bold", title="PostgreSQL: referrals")
    table.add_column("reference", no_wrap=True, min_width=15)
    table.add_column("stage", no_wrap=True)
    table.add_column("risk", no_wrap=True)
    table.add_column("incident type", no_wrap=True)
    table.add_column("submitted at (London)", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in rows:
        table.add_row(
            row["reference"],
            row["stage"],
            row["risk"],
            row["incident_type"],
            when(row["submitted_at"]),
            "this run" if row["reference"] in expected else "",
        )
    console.print(table)
    workflow_type = Referrals.workflow.__name__
    count = await step("count referral workflows", client.count_workflows(f"WorkflowType='{workflow_type}'"))
    console.print(
        f"{len(rows)} referrals in PostgreSQL ({len(expected)} from this run), and {imported} imported from the "
        f"archive; Temporal visibility counts {count.count} {workflow_type} executions"
    )


async def show_episode_recorded(pool_or_dsn: asyncpg.Pool | str, console: Console, episode: str) -> None:
    """The missing episode's row once its facts reached PostgreSQL through the outbox."""
    row = await eventually(
        f"{episode} recorded in PostgreSQL",
        lambda: _fetch(
            pool_or_dsn,
            "SELECT phase, grade, where_found, interview_outcome FROM missing_episodes WHERE episode_id = $1",
            episode,
        ),
        lambda rows: bool(rows) and rows[0]["phase"] == EpisodePhase.CLOSED.value,
        RECORDED_TIMEOUT,
    )
    console.print(
        f"PostgreSQL: missing episode {episode} {row[0]['phase']}, grade {row[0]['grade']}, "
        f"found at {row[0]['where_found']}, return-home interview {row[0]['interview_outcome']}"
    )


async def show_archive_imported(pool_or_dsn: asyncpg.Pool | str, console: Console, policy: SlaPolicy) -> None:
    """Import the synthetic archive of the twelve weeks before the stack began, so the timeliness page has history."""
    pool = await create_pool(pool_or_dsn, max_size=2) if isinstance(pool_or_dsn, str) else pool_or_dsn
    # One line for the archive on the console, not one for each of its facts the recorder writes.
    recorder_log = logging.getLogger(ReferralRecords.__module__)
    level = recorder_log.level
    recorder_log.setLevel(logging.WARNING)
    try:
        imported = await step("import the synthetic archive", import_archive(pool, datetime.now(timezone.utc), policy),
                              timeout=120)
    finally:
        recorder_log.setLevel(level)
        if pool is not pool_or_dsn:
            await pool.close()
    console.print(f"Imported a synthetic archive of {len(imported)} closed referrals over the last {ARCHIVE_WEEKS} "
                  "weeks into the read model, marked as imported (no workflow ran them; the reconciliation knows)")


async def run_demo(client: Client, pool_or_dsn: asyncpg.Pool | str, settings: Settings, console: Console) -> None:
    """Play the demo against a running worker; raise DemoError naming the step that failed."""
    rng = random.Random()
    policy = build_sla_policy(settings.sla_policy_file)
    await show_archive_imported(pool_or_dsn, console, policy)

    # The escalating referral starts first, so its clock runs while the others are worked.
    incident_type, risk = ESCALATING
    escalating_submission = synthetic_vist(rng=rng, incident_type=incident_type, risk=risk)
    escalating_started = time.monotonic()
    escalating = await start_referral(client, settings, escalating_submission, fast_sla_policy(policy))
    console.print(
        f"Started {escalating} ({incident_type.value}, {risk.value}) with a fast SLA: "
        "supervisor review due in ~11 s, each further rung ~7 s later"
    )

    started = await submit_referrals(client, settings, console, same_day_report_policy(policy), rng)
    submission, reference = started[0]
    walked = await walk_through_every_stage(client, console, submission, reference)
    episode = await walk_missing_episode(client, settings, console, policy, rng)
    await walk_daily_triage(client, settings, console, policy)
    await walk_panel_sitting(client, settings, console, policy, started[1][1])
    await show_escalation(client, console, escalating, escalating_started)

    expected = {escalating: Stage.SUPERVISOR_REVIEW, walked.reference: Stage.CLOSED}
    for _, other in started[1:]:
        expected[other] = Stage.SUPERVISOR_REVIEW
    await show_all_referrals(client, pool_or_dsn, console, expected)
    await show_episode_recorded(pool_or_dsn, console, episode.episode_id)


async def _main() -> None:
    from runtime.temporal import connect

    settings = Settings()
    if settings.database_url is None:
        raise SystemExit("python -m starter.demo needs TEMPORAL_ADDRESS and DATABASE_URL; `make run` sets both")
    client = await connect(settings, signs_decisions=True)
    await run_demo(client, settings.database_url.get_secret_value(), settings, Console())


if __name__ == "__main__":
    asyncio.run(_main())
