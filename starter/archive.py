"""A synthetic archive of the twelve weeks before a fresh stack began: closed referrals, imported into the read model.

Temporal cannot start a workflow in the past, so a new stack has no history to chart. The demo
fills the earlier weeks as a service moving onto this system would: by importing the closed
referrals of an archive. Each archived referral's facts are written through the recorder the
activities use (activities/records.py), so the rows are those a workflow would have made, and the
referral is listed in `imported_cases` first: the reconciliation counts it as imported, not as a
row without a workflow behind it, and the audit report says it has no history to show.

The archive is made up (starter/synthetic.py's forms, a seeded generator per week), so importing
it again writes nothing new. Each referral goes through review and screening; some to a strategy
discussion with agreed actions and on to a conference; a few stages run past their deadlines.
It holds no escalations: an archive keeps what was decided, not the alerts of the day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from activities.records import ReferralRecords
from starter.synthetic import CSC_PARTNER, OFFICER, SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_vist
from workflows.calendar import add_duration, add_working_days
from workflows.facts import (
    ActionAgreed,
    ActionCompleted,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    FactPayload,
    RecordedEvent,
    Screened,
    StageChanged,
    StrategyDiscussionHeld,
    SupervisorReviewed,
    VistSubmitted,
    kind_of,
)
from workflows.models import (
    SYSTEM_ACTOR,
    Actor,
    CloseReason,
    IncidentType,
    PoliceAttendance,
    RiskGrade,
    ScreeningOutcome,
    SlaPolicy,
    Stage,
    agreed_action_id,
    referral_reference,
)

SOURCE = "synthetic archive"
LONDON = ZoneInfo("Europe/London")
WEEKS = 12
# Referrals a week, and how they go: the shares are a referral unit's, roughly.
PER_WEEK = (6, 11)
RISKS = ((RiskGrade.STANDARD, 4), (RiskGrade.MEDIUM, 4), (RiskGrade.HIGH, 2))
OUTCOMES = ((ScreeningOutcome.NO_FURTHER_ACTION, 3), (ScreeningOutcome.EARLY_HELP, 3),
            (ScreeningOutcome.STRATEGY_DISCUSSION, 4))
INCIDENTS = (IncidentType.DOMESTIC_ABUSE, IncidentType.NEGLECT, IncidentType.PHYSICAL_ABUSE)


def _pick(rng: random.Random, weighted: tuple) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


@dataclass
class ArchivedReferral:
    """One archived referral's facts, written in order as its workflow would have recorded them."""

    reference: str
    policy: SlaPolicy
    risk: RiskGrade
    facts: list[RecordedEvent] = field(default_factory=list)
    stage: Stage = Stage.SUPERVISOR_REVIEW
    actions: int = 0

    def fact(self, payload: FactPayload, actor: Actor, at: datetime, stream: str | None = None,
             stage: Stage | None = None) -> None:
        stream = stream or self.reference
        seq = 1 + sum(f.stream == stream for f in self.facts)
        self.facts.append(RecordedEvent(
            stream=stream, seq=seq, reference=self.reference, kind=kind_of(payload), at=at, actor=actor,
            stage=stage if stream != self.reference else self.stage, risk=self.risk, payload=payload.recorded()))

    def enter(self, stage: Stage, actor: Actor, at: datetime, deadline: datetime | None = None) -> None:
        previous, self.stage = self.stage, stage
        deadlines = self.policy.deadlines_for(stage)
        if deadline is None and deadlines is not None:
            deadline = add_duration(at, deadlines.for_risk(self.risk), self.policy)
        self.fact(StageChanged(from_stage=previous, to_stage=stage, deadline=deadline, entered_at=at), actor, at)

    def deadline_of(self, stage: Stage, entered: datetime) -> datetime:
        deadlines = self.policy.deadlines_for(stage)
        assert deadlines is not None
        return add_duration(entered, deadlines.for_risk(self.risk), self.policy)

    @property
    def ended(self) -> datetime:
        return max(f.at for f in self.facts)


def _taken(rng: random.Random, deadline: timedelta, late_share: float = 0.12) -> timedelta:
    """How long a stage took: mostly well within its deadline, now and then past it."""
    if rng.random() < late_share:
        return deadline * rng.uniform(1.05, 1.8)
    return deadline * rng.uniform(0.08, 0.9)


def archived_referral(rng: random.Random, submitted_at: datetime, policy: SlaPolicy) -> ArchivedReferral:
    """A referral from submission to closure, each stage taking a plausible time against its deadline."""
    risk = _pick(rng, RISKS)
    form = synthetic_vist(rng=rng, incident_type=rng.choice(INCIDENTS), risk=risk,
                          occurred_at=submitted_at - timedelta(hours=rng.uniform(1, 20)), children=rng.randint(1, 3))
    case = ArchivedReferral(referral_reference(form.form_id), policy, risk)
    case.fact(VistSubmitted(submission=form, submitted_at=submitted_at), OFFICER, submitted_at)
    case.enter(Stage.SUPERVISOR_REVIEW, SYSTEM_ACTOR, submitted_at)

    def decided(stage_entered: datetime) -> datetime:
        return stage_entered + _taken(rng, case.deadline_of(case.stage, stage_entered) - stage_entered)

    reviewed = decided(submitted_at)
    case.fact(SupervisorReviewed.of(approval()), SERGEANT, reviewed)
    case.enter(Stage.SCREENING, SERGEANT, reviewed)
    screened = decided(reviewed)
    outcome = _pick(rng, OUTCOMES)
    case.fact(Screened.of(screening(form, outcome)), SCREENER, screened)
    if outcome is not ScreeningOutcome.STRATEGY_DISCUSSION:
        case.fact(Closed(reason=CloseReason(outcome.value)), SCREENER, screened)
        case.enter(Stage.CLOSED, SCREENER, screened)
        return case
    case.enter(Stage.STRATEGY_DISCUSSION, SCREENER, screened)
    held = decided(screened)
    section_47 = rng.random() < 0.5
    discussion = strategy_discussion(held, section_47=section_47, actions=rng.randint(1, 3))
    case.fact(StrategyDiscussionHeld.of(discussion, quorate=True), SCREENER, held)
    done = [_agreed_action(rng, case, spec, held) for spec in discussion.agreed_actions]
    if not section_47:
        case.enter(Stage.ACTIONS, SCREENER, held)
        closed = max(done)
        case.fact(Closed(reason=CloseReason.NO_SECTION_47), SYSTEM_ACTOR, closed)
        case.enter(Stage.CLOSED, SYSTEM_ACTOR, closed)
        return case
    due_by = add_working_days(held, policy.conference_working_days, frozenset(policy.bank_holidays), policy.timezone)
    case.enter(Stage.CONFERENCE, SCREENER, held, deadline=due_by)
    booked = held + timedelta(hours=rng.uniform(2, 48))
    conference_at = due_by - timedelta(days=rng.choice((1, 2, 3, 5, 7)), hours=rng.uniform(0, 4))
    attendance = rng.choices([PoliceAttendance.ATTEND, PoliceAttendance.REPORT_IN_LIEU], weights=[7, 3])[0]
    booking = ConferenceBooked(conference_at=conference_at, police_attendance=attendance, due_by=due_by,
                               deadline=due_by, report_owner=OFFICER.id if attendance is PoliceAttendance.REPORT_IN_LIEU
                               else None)
    case.fact(booking, SCREENER, booked)
    plan = rng.random() < 0.6
    held_conference = conference_at + timedelta(hours=rng.uniform(1, 3))
    case.fact(ConferenceHeld(held_at=conference_at, child_protection_plan=plan,
                             police_attended=attendance is PoliceAttendance.ATTEND,
                             rationale="Synthetic conference rationale."), SCREENER, held_conference)
    reason = CloseReason.CHILD_PROTECTION_PLAN if plan else CloseReason.NO_CHILD_PROTECTION_PLAN
    closed = max([held_conference, *done])
    case.fact(Closed(reason=reason), SYSTEM_ACTOR, closed)
    case.enter(Stage.CLOSED, SYSTEM_ACTOR, closed)
    return case


def _agreed_action(rng: random.Random, case: ArchivedReferral, spec, agreed_at: datetime) -> datetime:
    """An agreed action's facts on its own stream: agreed, and completed on time or a little late; when it was done."""
    case.actions += 1
    stream = agreed_action_id(case.reference, case.actions)
    case.fact(ActionAgreed(description=spec.description, owner=spec.owner, deadline=spec.deadline), SCREENER,
              agreed_at, stream=stream)
    window = spec.deadline - agreed_at
    completed = agreed_at + (window * rng.uniform(0.2, 0.95) if rng.random() > 0.15 else window * rng.uniform(1.05, 1.6))
    case.fact(ActionCompleted(note="Synthetic: done."), CSC_PARTNER, completed, stream=stream)
    return completed


def archive(now: datetime, policy: SlaPolicy, weeks: int = WEEKS) -> list[ArchivedReferral]:
    """The archive's referrals submitted in the `weeks` London weeks up to `now` (this one too), each closed by `now`.

    Each week's referrals come from a generator seeded by the week, so the same weeks give the same archive.
    """
    cases: list[ArchivedReferral] = []
    today = now.astimezone(LONDON).date()
    this_week = today - timedelta(days=today.weekday())
    for back in reversed(range(weeks)):
        monday = this_week - timedelta(weeks=back)
        rng = random.Random(f"archive:{monday.isoformat()}")
        for _ in range(rng.randint(*PER_WEEK)):
            day = monday + timedelta(days=rng.choices(range(7), weights=[5, 5, 5, 5, 5, 1, 1])[0])
            submitted = datetime.combine(day, datetime.min.time(), LONDON) + timedelta(hours=rng.uniform(7, 21))
            case = archived_referral(rng, submitted, policy)
            if case.ended < now:
                cases.append(case)
    return cases


async def import_archive(pool: asyncpg.Pool, now: datetime, policy: SlaPolicy, weeks: int = WEEKS) -> list[str]:
    """Import the archive's referrals into the read model (each listed as imported first); their references."""
    cases = archive(now, policy, weeks)
    await pool.executemany(
        "INSERT INTO imported_cases (reference, source) VALUES ($1, $2) ON CONFLICT (reference) DO NOTHING",
        [(case.reference, SOURCE) for case in cases],
    )
    records = ReferralRecords(pool)
    for case in cases:
        outcomes = await records.record_events(case.facts)
        refused = [f.kind for f, o in zip(case.facts, outcomes) if o.quarantined]
        if refused:
            raise ValueError(f"{case.reference}: the read model refused its {', '.join(map(str, refused))}")
    return [case.reference for case in cases]
