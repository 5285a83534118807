"""The fact registry: every kind has one payload model, one reading and one projection; facts of every generation decode; typing changed no recorded byte."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from audit.history import decode_case, load_exports
from audit.timeline import _is_decision
from dashboard.pages.referrals import fact_view
from readmodel.projections import PROJECTIONS
from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    found_report,
    synthetic_missing_report,
    FAMILY_NAMES,
    FIRST_NAMES,
    OFFICER,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_partner_referral,
    synthetic_vist,
)
from tests.audit_helpers import GENERATIONS, HISTORIES_CONVERTER
from workflows.facts import (
    DECISION_KINDS,
    FACTS,
    KIND_OF,
    ActionAgreed,
    ActionCompleted,
    ActionReassigned,
    ActionReminded,
    ChildFound,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    EpisodeClosed,
    EpisodeRegraded,
    EpisodeReviewed,
    EpisodeTimes,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationResolved,
    FactKind,
    FactPayload,
    InterviewRecorded,
    LowGradeDecided,
    MissingReported,
    RecordedEvent,
    RepeatMissingFlagged,
    RepeatOverrideDecided,
    PartnerReferralReceived,
    CscNotInformedDecided,
    RepeatOverrideRequested,
    RiskRegraded,
    Screened,
    StageChanged,
    StrategyDiscussionHeld,
    SupervisorReviewed,
    TracingRecorded,
    TriageDecided,
    TriageListed,
    ListedCase,
    PanelCaseDecided,
    PanelGradeApplied,
    PanelSittingClosed,
    PanelSittingOpened,
    VistResubmitted,
    VistSubmitted,
    visible_to,
)
from workflows.models import (
    SYSTEM_ACTOR,
    MissingGrade,
    NamedRole,
    ActionCompletion,
    ActionOwner,
    ActionReassignment,
    Agency,
    AgreedActionSpec,
    CloseReason,
    ConferenceBooking,
    ConferenceOutcome,
    Escalation,
    OverrideDecision,
    OverrideRequest,
    PoliceAttendance,
    Rank,
    RiskGrade,
    Role,
    ScreeningOutcome,
    Stage,
)
from workflows.panel_models import AgendaCriterion, PanelGrade
from workflows.triage_models import TriageOutcome

# The kinds as PostgreSQL and every recorded history hold them: never to change.
STORED_KINDS = {
    "vist_submitted", "vist_resubmitted", "stage_changed", "supervisor_reviewed", "screened",
    "repeat_override_requested", "repeat_override_decided", "strategy_discussion_held", "conference_booked",
    "conference_held", "risk_regraded", "closed", "partner_referral_received", "csc_not_informed_decided",
    "escalation_raised", "escalation_acknowledged",
    "escalation_resolved", "action_agreed", "action_reminded", "action_reassigned", "action_completed",
    "missing_reported", "low_grade_decided", "episode_reviewed", "tracing_recorded", "episode_regraded",
    "child_found", "interview_recorded", "episode_closed", "repeat_missing_flagged",
    "triage_listed", "triage_decided",
    "trigger_plan_written", "police_addendum_added", "trigger_plan_ended", "trigger_plan_read",
    "cse_referral_linked", "cse_episode_linked",
    "panel_sitting_opened", "panel_agenda_edited", "panel_meeting_opened", "panel_attendance_recorded",
    "panel_case_decided", "panel_grade_applied", "panel_sitting_closed",
}
# What `ReferralWorkflow` kept in its decision history before the registry said so.
REFERRAL_DECISIONS = {
    "supervisor_reviewed", "screened", "repeat_override_requested", "repeat_override_decided",
    "strategy_discussion_held", "conference_booked", "conference_held", "risk_regraded", "closed",
    "csc_not_informed_decided",
}
# A partner's referral and a supervisor's decision not to inform children's social care, typed from their first fact.
SCREENING_KINDS = {"partner_referral_received", "csc_not_informed_decided"}
EPISODE_KINDS = {
    "missing_reported", "low_grade_decided", "episode_reviewed", "tracing_recorded", "episode_regraded",
    "child_found", "interview_recorded", "episode_closed", "repeat_missing_flagged",
}
# A missing episode's decision history: every person's decision on it and its repeat-missing flag (its closure is automatic).
EPISODE_DECISIONS = EPISODE_KINDS - {"episode_closed"}
# A day's triage keeps its own decisions (each listed referral's), recorded under the referral.
TRIAGE_DECISIONS = {"triage_decided"}
# A trigger plan's kinds, typed from their first fact; its decision history is every decision on it.
PLAN_KINDS = {"trigger_plan_written", "police_addendum_added", "trigger_plan_ended", "trigger_plan_read"}
# A CSE episode's link to a referral, recorded on each side: not a person's decision.
LINK_KINDS = {"cse_referral_linked", "cse_episode_linked"}
PLAN_DECISIONS = PLAN_KINDS - {"trigger_plan_read"}
# A panel sitting's kinds, typed from their first fact; its decision history is every person's decision at it.
PANEL_KINDS = {
    "panel_sitting_opened", "panel_agenda_edited", "panel_meeting_opened", "panel_attendance_recorded",
    "panel_case_decided", "panel_grade_applied", "panel_sitting_closed",
}
PANEL_DECISIONS = PANEL_KINDS - {"panel_sitting_opened", "panel_grade_applied"}
NOW = datetime(2026, 3, 2, 10, 30, tzinfo=timezone.utc)
DEADLINE = datetime(2026, 3, 3, 17, 0, tzinfo=timezone(timedelta(hours=0)))


def test_every_kind_has_one_entry_one_payload_model_and_one_projection():
    assert {kind.value for kind in FactKind} == STORED_KINDS
    assert set(FACTS) == set(FactKind) == set(PROJECTIONS)
    # One model per kind, so a payload names its kind.
    assert len(KIND_OF) == len(FactKind)
    for kind, entry in FACTS.items():
        assert issubclass(entry.payload, FactPayload) and entry.label.strip(), kind


def test_the_decision_set_is_the_referrals_decision_history_and_what_every_reader_marks():
    assert {k.value for k in DECISION_KINDS} == (
        REFERRAL_DECISIONS | EPISODE_DECISIONS | TRIAGE_DECISIONS | PLAN_DECISIONS | PANEL_DECISIONS
    )
    for payload in one_payload_of_each_kind():
        fact = recorded_fact(payload, actor=SYSTEM_ACTOR)
        assert fact_view(fact)["decision"] is fact.entry.decision
        # The audit timeline lists every decision, even one the workflow took itself (an automatic closure).
        if fact.entry.decision:
            assert _is_decision(fact), fact.kind


def test_a_partner_sees_no_fact_and_every_case_reader_sees_them_all():
    for kind in FactKind:
        assert not visible_to(Role.PARTNER, kind) and not visible_to(Role.SYSTEM, kind)
        assert all(visible_to(role, kind) for role in (Role.OFFICER, Role.SUPERVISOR, Role.SCREENER, Role.AUDITOR, Role.ADMIN))


def test_each_fact_is_recorded_as_it_was_before_it_was_typed():
    """The typed payloads serialise to the very JSON the workflows wrote as dicts (activity inputs unchanged)."""
    submission = synthetic_vist(rng=random.Random("facts:json"))
    review = approval()
    screened = screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)
    discussion = strategy_discussion(NOW, section_47=True, actions=2)
    booking = ConferenceBooking(actor=SERGEANT, conference_at=NOW + timedelta(days=9),
                                police_attendance=PoliceAttendance.REPORT_IN_LIEU,
                                attendance_rationale="Synthetic rationale.", report_owner="DC Synthetic")
    outcome = ConferenceOutcome(actor=SERGEANT, held_at=NOW, child_protection_plan=True, police_attended=False,
                                rationale="Synthetic.", agreed_actions=discussion.agreed_actions,
                                allocated_social_worker=ALLOCATED_SOCIAL_WORKER)
    request = OverrideRequest(actor=SCREENER, reason="Synthetic reason.")
    decided = OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic.")
    spec = AgreedActionSpec(description="Synthetic action.", owner=ActionOwner(agency=Agency.HEALTH, owner="HV Synthetic"),
                            deadline=NOW + timedelta(days=5))
    reassignment = ActionReassignment(actor=SCREENER, owner=ActionOwner(agency=Agency.POLICE, owner="DC Synthetic",
                                                                        supervisor="DS Synthetic"),
                                      reason="Synthetic.", deadline=NOW + timedelta(days=7))
    escalation = Escalation(escalation_id="REF-AAAAA-BBBBB.E1", reference="REF-AAAAA-BBBBB", subject="screening",
                            rung=0, rank=Rank.SERGEANT, addressed_to="sergeant, CRU", due_at=NOW, raised_at=NOW)
    ack = EscalationAcknowledged(escalation_id=escalation.escalation_id, rank=SERGEANT.rank, as_named_addressee=False)
    # Each pair: the typed payload, and the dict the workflow built before (copied from that code).
    # Deadlines from the submission added when the SLA clock started and each stage's clock; the rest is as the dicts were.
    pairs = [
        (VistSubmitted(version=1, submission=submission, submitted_at=NOW),
         {"version": 1, "submission": submission.model_dump(mode="json"), "submitted_at": NOW.isoformat()}),
        (VistResubmitted(version=2, submission=submission),
         {"version": 2, "submission": submission.model_dump(mode="json"), "submitted_at": None}),
        (StageChanged(from_stage=None, to_stage=Stage.SUPERVISOR_REVIEW, deadline=DEADLINE, entered_at=NOW),
         {"from_stage": None, "to_stage": "supervisor_review", "deadline": DEADLINE.isoformat(),
          "entered_at": NOW.isoformat()}),
        (StageChanged(from_stage=Stage.SCREENING, to_stage=Stage.CLOSED, deadline=None, entered_at=NOW),
         {"from_stage": "screening", "to_stage": "closed", "deadline": None, "entered_at": NOW.isoformat()}),
        (SupervisorReviewed.of(review), review.details()),
        (Screened.of(screened), screened.details()),
        (RepeatOverrideRequested.of(request), {"reason": request.reason}),
        (RepeatOverrideDecided.of(decided, requested_by=SCREENER.id),
         {"granted": True, "rationale": decided.rationale, "requested_by": SCREENER.id}),
        # Named attendance added the roles found missing; the rest is as the dicts were.
        (StrategyDiscussionHeld.of(discussion, quorate=discussion.quorate),
         {k: v for k, v in discussion.details().items() if k != "absences"}
         | {"quorate": discussion.quorate, "absences": [], "missing_roles": []}),
        (ConferenceBooked.of(booking, due_by=DEADLINE, deadline=None),
         booking.details() | {"due_by": DEADLINE.isoformat(), "deadline": None}),
        (ConferenceHeld.of(outcome), outcome.details()),
        (RiskRegraded(from_risk=RiskGrade.MEDIUM, to_risk=RiskGrade.HIGH, reason="graded at screening", deadline=DEADLINE),
         {"from_risk": "medium", "to_risk": "high", "reason": "graded at screening", "deadline": DEADLINE.isoformat()}),
        (Closed(reason=CloseReason.WITHDRAWN, note=None), {"reason": "withdrawn", "note": None}),
        (EscalationRaised(escalation=escalation), {"escalation": escalation.model_dump(mode="json")}),
        (ack, {"escalation_id": escalation.escalation_id, "rank": "sergeant", "as_named_addressee": False}),
        (EscalationResolved(escalation_id=escalation.escalation_id, resolution="referral_closed"),
         {"escalation_id": escalation.escalation_id, "resolution": "referral_closed"}),
        (ActionAgreed(description=spec.description, owner=spec.owner, deadline=spec.deadline), spec.model_dump(mode="json")),
        (ActionReminded(owner=spec.owner), {"owner": spec.owner.model_dump(mode="json")}),
        (ActionReassigned.of(reassignment, from_owner=spec.owner),
         reassignment.details() | {"from_owner": spec.owner.model_dump(mode="json")}),
        (ActionCompleted.of(ActionCompletion(actor=SCREENER, note="Synthetic note.")), {"note": "Synthetic note."}),
        (TriageListed(day=NOW.date(), due_at=DEADLINE, prior_referrals=2),
         {"day": NOW.date().isoformat(), "due_at": DEADLINE.isoformat(), "prior_referrals": 2}),
        (TriageDecided(day=NOW.date(), outcome=TriageOutcome.JOINT_VISIT, rationale="Synthetic."),
         {"day": NOW.date().isoformat(), "outcome": "joint_visit", "rationale": "Synthetic."}),
    ]
    # A missing episode's, a trigger plan's, a link's and a panel sitting's kinds were typed from their first fact: no
    # untyped JSON to match.
    assert {KIND_OF[type(typed)] for typed, _ in pairs} == {
        k for k in FactKind if k not in EPISODE_KINDS | PLAN_KINDS | LINK_KINDS | PANEL_KINDS | SCREENING_KINDS}
    for typed, before in pairs:
        assert json.dumps(typed.recorded()) == json.dumps(before), type(typed).__name__


@pytest.mark.parametrize("generation", GENERATIONS, ids=lambda g: g.name)
async def test_facts_of_every_generation_decode_into_their_kinds_models_without_loss(generation):
    kinds = set()
    for referral in load_exports(generation):
        decoded = await decode_case(referral, HISTORIES_CONVERTER)
        for fact in decoded.facts:
            content = fact.content
            assert type(content) is FACTS[fact.kind].payload
            kinds.add(fact.kind)
            again = content.recorded()
            # Every field the older code recorded reads back as it was; fields added since take their defaults.
            retired = {"repeat_referral_override"} if fact.kind is FactKind.SCREENED else set()
            assert kept({k: v for k, v in fact.payload.items() if k not in retired}, again), (generation.name, fact.kind)
            summary = json.dumps(content.summary(), default=str)
            assert not [w for w in [*FIRST_NAMES, *FAMILY_NAMES, "Synthetic"] if w in summary], fact.kind
    assert len(kinds) >= 15, sorted(kinds)


def test_a_payload_that_is_not_its_kinds_is_refused_with_the_field_named():
    fact = RecordedEvent(stream="REF-AAAAA-BBBBB", seq=3, reference="REF-AAAAA-BBBBB", kind=FactKind.RISK_REGRADED,
                         at=NOW, actor=SERGEANT, payload={"from_risk": "medium", "to_risk": "severe", "reason": "x"})
    with pytest.raises(ValueError, match="to_risk"):
        fact.content


# --- helpers -------------------------------------------------------------------------------

def kept(recorded: object, again: object) -> bool:
    """Every value `recorded` holds is in `again`, as it was (at any depth); `again` may hold more."""
    if isinstance(recorded, dict):
        return isinstance(again, dict) and all(k in again and kept(v, again[k]) for k, v in recorded.items())
    if isinstance(recorded, list):
        return isinstance(again, list) and len(recorded) == len(again) and all(map(kept, recorded, again))
    return recorded == again


def recorded_fact(payload: FactPayload, actor=OFFICER) -> RecordedEvent:
    return RecordedEvent(stream="REF-AAAAA-BBBBB", seq=1, reference="REF-AAAAA-BBBBB", kind=KIND_OF[type(payload)],
                         at=NOW, actor=actor, stage=Stage.SCREENING, risk=RiskGrade.MEDIUM, payload=payload.recorded())


def one_payload_of_each_kind() -> list[FactPayload]:
    submission = synthetic_vist(rng=random.Random("facts:each"))
    owner = ActionOwner(agency=Agency.HEALTH, owner="HV Synthetic")
    escalation = Escalation(escalation_id="REF-AAAAA-BBBBB.E1", reference="REF-AAAAA-BBBBB", subject="screening",
                            rung=0, rank=Rank.SERGEANT, addressed_to="sergeant, CRU", due_at=NOW, raised_at=NOW)
    discussion = strategy_discussion(NOW, section_47=False, actions=1)
    times = EpisodeTimes(grade=MissingGrade.HIGH, assessed_grade=MissingGrade.LOW, review_due=DEADLINE).model_dump()
    return [
        VistSubmitted(submission=submission),
        VistResubmitted(version=2, submission=submission),
        StageChanged(to_stage=Stage.SCREENING),
        SupervisorReviewed.of(approval()),
        Screened.of(screening(submission, ScreeningOutcome.EARLY_HELP)),
        RepeatOverrideRequested(reason="Synthetic."),
        RepeatOverrideDecided(granted=False, rationale="Synthetic.", requested_by=SCREENER.id),
        PartnerReferralReceived(submission=synthetic_partner_referral(rng=random.Random("facts:each"))),
        CscNotInformedDecided(rationale="Synthetic."),
        StrategyDiscussionHeld.of(discussion, quorate=True),
        ConferenceBooked(conference_at=NOW, police_attendance=PoliceAttendance.ATTEND),
        ConferenceHeld(held_at=NOW, child_protection_plan=False, police_attended=True, rationale="Synthetic."),
        RiskRegraded(from_risk=RiskGrade.STANDARD, to_risk=RiskGrade.MEDIUM, reason="Synthetic."),
        Closed(reason=CloseReason.EARLY_HELP),
        EscalationRaised(escalation=escalation),
        EscalationAcknowledged(escalation_id=escalation.escalation_id),
        EscalationResolved(escalation_id=escalation.escalation_id, resolution="referral_closed"),
        ActionAgreed(description="Synthetic.", owner=owner, deadline=NOW),
        ActionReminded(owner=owner),
        ActionReassigned(owner=owner, reason="Synthetic.", from_owner=owner),
        ActionCompleted(note="Synthetic."),
        MissingReported(report=synthetic_missing_report(rng=random.Random("facts:each")), **times),
        LowGradeDecided(keep_low=True, rationale="Synthetic.", **times),
        EpisodeReviewed(tracing_done="Synthetic.", next_steps="Synthetic.", reviewer_rank="inspector", **times),
        TracingRecorded(activity="cctv_reviewed", **times),
        EpisodeRegraded(from_grade=MissingGrade.LOW, reason="Synthetic.", **times),
        ChildFound.of(found_report(NOW), interview_due=DEADLINE),
        InterviewRecorded(outcome="declined", reasons="Synthetic."),
        EpisodeClosed(interview_outcome="declined"),
        RepeatMissingFlagged(episodes=3, window_days=90),
        TriageListed(day=NOW.date(), due_at=NOW, prior_referrals=1),
        TriageDecided(day=NOW.date(), outcome=TriageOutcome.NO_FURTHER_ACTION, rationale="Synthetic."),
        PanelSittingOpened(panel_id="CSENORTH", panel_name="Synthetic panel", day=NOW.date(), meets_at=NOW,
                           agenda=[ListedCase(case_id="MIS-AAAAA-BBBBB", reasons=[AgendaCriterion.CSE_CONCERN])]),
        PanelCaseDecided(case_id="MIS-AAAAA-BBBBB", grade=PanelGrade.HIGH, rationale="Synthetic.",
                         absent_roles=[NamedRole.CSE_TEAM]),
        PanelGradeApplied(case_id="MIS-AAAAA-BBBBB", grade=PanelGrade.HIGH, result="applied"),
        PanelSittingClosed(decided=["MIS-AAAAA-BBBBB"]),
    ]
