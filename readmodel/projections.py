"""How each kind of fact shapes the read model's tables: one projection per `FactKind`, run inside the fact's transaction.

A projection reads the fact's typed payload (`RecordedEvent.content`); a payload that does
not fit its kind's model raises a ValidationError, which the recorder quarantines like any
fact PostgreSQL refuses. A kind whose fact lives in `referral_events` alone projects nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import asyncpg

from workflows.facts import (
    ActionAgreed,
    ActionCompleted,
    ActionReassigned,
    ChildFound,
    EpisodeClosed,
    EpisodeReviewed,
    EpisodeTimes,
    InterviewRecorded,
    MissingReported,
    TracingRecorded,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    EscalationAcknowledged,
    EscalationRaised,
    EscalationResolved,
    FactKind,
    FactPayload,
    RecordedEvent,
    RiskRegraded,
    Screened,
    StageChanged,
    StrategyDiscussionHeld,
    TriageDecided,
    TriageListed,
    TriggerPlanEnded,
    TriggerPlanRead,
    TriggerPlanWritten,
    PoliceAddendumAdded,
    VistSubmitted,
    PanelAgendaEdited,
    PanelAttendanceRecorded,
    PanelCaseDecided,
    PanelGradeApplied,
    PanelMeetingOpened,
    PanelSittingClosed,
    PanelSittingOpened,
)
from workflows.models import PartnerReferral, ReferralForm, VistSubmission, identity_key, match_key

Projection = Callable[[asyncpg.Connection, RecordedEvent], Awaitable[None]]
P = TypeVar("P", bound=FactPayload)


def content(event: RecordedEvent, model: type[P]) -> P:
    """The fact's payload as `model`, the one its kind declares."""
    payload = event.content
    if not isinstance(payload, model):
        raise TypeError(f"{event.kind} is projected as {model.__name__}, but its registry entry says otherwise")
    return payload


async def submission(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A VIST (or a partner's referral): the first registers the referral; a resubmission replaces its form's columns
    and children."""
    fact = content(event, VistSubmitted)
    if fact.version == 1:
        await _register_referral(conn, event, fact.submission, fact.submitted(event.at))
    else:
        await _replace_form(conn, event.reference, fact.submission)
    await conn.execute(
        """INSERT INTO submission_versions (reference, version, form, submitted_by, submitted_at)
           VALUES ($1, $2, $3::jsonb, $4, $5)""",
        event.reference,
        fact.version,
        fact.submission.model_dump_json(),
        event.actor.id,
        event.at,
    )
    await conn.executemany(
        """INSERT INTO referral_children
               (reference, child_id, name, date_of_birth, home_address, identity_key, address_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (
                event.reference,
                child.child_id,
                child.name,
                child.date_of_birth,
                child.home_address,
                identity_key(child.name, child.date_of_birth),
                match_key(child.home_address) if child.home_address else None,
            )
            for child in fact.submission.children
        ],
    )
    await conn.executemany(
        "INSERT INTO referral_adults (reference, position, role, identity_key) VALUES ($1, $2, $3, $4)",
        [
            # An adult without a date of birth has no key: a name alone would match strangers.
            (event.reference, position, adult.role.value,
             identity_key(adult.name, adult.date_of_birth) if adult.date_of_birth else None)
            for position, adult in enumerate(fact.submission.adults, start=1)
        ],
    )


async def _register_referral(
    conn: asyncpg.Connection, event: RecordedEvent, form: ReferralForm, submitted_at: datetime
) -> None:
    vist = form if isinstance(form, VistSubmission) else None
    partner = form if isinstance(form, PartnerReferral) else None
    await conn.execute(
        """INSERT INTO referrals
               (reference, form_id, form_digest, incident_type, incident_at, location_key, station,
                officer_id, initial_risk, risk, stage, section_46, submitted_at, updated_at,
                referring_agency, referrer_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $12, $13, $14)
           -- A placeholder from a quarantined submission gets the form's columns when it is re-applied.
           ON CONFLICT (reference) DO UPDATE SET
               form_id = EXCLUDED.form_id, form_digest = EXCLUDED.form_digest,
               incident_type = EXCLUDED.incident_type, incident_at = EXCLUDED.incident_at,
               location_key = EXCLUDED.location_key, station = EXCLUDED.station,
               officer_id = EXCLUDED.officer_id, initial_risk = EXCLUDED.initial_risk,
               section_46 = EXCLUDED.section_46, submitted_at = EXCLUDED.submitted_at,
               referring_agency = EXCLUDED.referring_agency, referrer_id = EXCLUDED.referrer_id""",
        event.reference,
        form.form_id,
        form.content_digest(),
        form.incident.type.value,
        form.incident.occurred_at,
        match_key(form.incident.location),
        vist.station if vist else None,
        vist.officer_id if vist else None,
        form.initial_risk.value,
        event.stage.value if event.stage else None,
        form.police_protection_used(),
        submitted_at,
        partner.referring_agency.value if partner else "police",
        partner.referrer_id if partner else None,
    )


async def _replace_form(conn: asyncpg.Connection, reference: str, form: VistSubmission) -> None:
    await conn.execute(
        """UPDATE referrals SET incident_type = $2, incident_at = $3, location_key = $4,
                  section_46 = $5 WHERE reference = $1""",
        reference,
        form.incident.type.value,
        form.incident.occurred_at,
        match_key(form.incident.location),
        form.section_46 is not None,
    )
    await conn.execute("DELETE FROM referral_children WHERE reference = $1", reference)
    await conn.execute("DELETE FROM referral_adults WHERE reference = $1", reference)


async def stage_changed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, StageChanged)
    await conn.execute(
        """INSERT INTO stage_transitions (reference, seq, from_stage, to_stage, actor_id, actor_role, at, deadline)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        event.reference,
        event.seq,
        fact.from_stage.value if fact.from_stage else None,
        fact.to_stage.value,
        event.actor.id,
        event.actor.role.value,
        event.at,
        fact.deadline,
    )
    await conn.execute(
        "UPDATE referrals SET stage = $2, deadline = $3 WHERE reference = $1",
        event.reference,
        fact.to_stage.value,
        fact.deadline,
    )


async def screened(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, Screened)
    await conn.execute(
        "UPDATE referrals SET screening_outcome = $2, risk = $3 WHERE reference = $1",
        event.reference,
        fact.outcome.value,
        fact.risk.value,
    )


async def risk_regraded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, RiskRegraded)
    await conn.execute(
        """INSERT INTO risk_regrades (reference, seq, from_risk, to_risk, actor_id, actor_role, reason, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        event.reference,
        event.seq,
        fact.from_risk.value,
        fact.to_risk.value,
        event.actor.id,
        event.actor.role.value,
        fact.reason,
        event.at,
    )
    await conn.execute(
        "UPDATE referrals SET risk = $2, deadline = $3 WHERE reference = $1",
        event.reference,
        fact.to_risk.value,
        fact.deadline,
    )


async def strategy_discussion_held(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, StrategyDiscussionHeld)
    await conn.execute(
        """INSERT INTO strategy_discussions (reference, seq, held_at, section_47, quorate, recorded_by)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        event.reference,
        event.seq,
        fact.held_at,
        fact.section_47,
        fact.quorate,
        event.actor.id,
    )
    await conn.executemany(
        """INSERT INTO strategy_attendees (reference, discussion_seq, position, name, agency, role, named_role)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [
            (event.reference, event.seq, position, a.name, a.agency.value, a.role,
             a.named_role.value if a.named_role else None)
            for position, a in enumerate(fact.attendees, start=1)
        ],
    )
    reasons = {absence.named_role: absence.reason for absence in fact.absences}
    await conn.executemany(
        """INSERT INTO strategy_missing_roles (reference, discussion_seq, named_role, reason_given, reason)
           VALUES ($1, $2, $3, $4, $5)""",
        [(event.reference, event.seq, role.value, role in reasons, reasons.get(role)) for role in fact.missing_roles],
    )
    await conn.execute("UPDATE referrals SET section_47 = $2 WHERE reference = $1", event.reference, fact.section_47)


async def conference_booked(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ConferenceBooked)
    await conn.execute(
        """INSERT INTO conferences (reference, seq, conference_at, due_by, late_reason, police_attendance,
                                    attendance_rationale, booked_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        event.reference,
        event.seq,
        fact.conference_at,
        fact.due_by,
        fact.late_reason,
        fact.police_attendance.value,
        fact.attendance_rationale,
        event.actor.id,
    )
    if fact.deadline is not None:  # facts recorded before the booking carried it have none
        await conn.execute("UPDATE referrals SET deadline = $2 WHERE reference = $1", event.reference, fact.deadline)


async def conference_held(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ConferenceHeld)
    await conn.execute(
        """UPDATE conferences SET held_at = $2, police_attended = $3, child_protection_plan = $4
           WHERE reference = $1 AND seq = (SELECT max(seq) FROM conferences WHERE reference = $1)""",
        event.reference,
        fact.held_at,
        fact.police_attended,
        fact.child_protection_plan,
    )
    await conn.execute(
        "UPDATE referrals SET child_protection_plan = $2 WHERE reference = $1",
        event.reference,
        fact.child_protection_plan,
    )
    await _hold_plans(conn, event.reference, fact)


async def _hold_plans(conn: asyncpg.Connection, reference: str, fact: ConferenceHeld) -> None:
    """A conference ends each of its children's live plans made before it, and holds the plan it makes, if any."""
    await conn.execute(
        """UPDATE child_protection_plans p SET ended_at = $2, ended_by = $1
           FROM referral_children c
           WHERE c.reference = $1 AND p.identity_key = c.identity_key
             AND p.ended_at IS NULL AND p.started_at < $2 AND p.reference <> $1""",
        reference,
        fact.held_at,
    )
    if not fact.child_protection_plan:
        return
    worker = fact.allocated_social_worker
    await conn.execute(
        """INSERT INTO child_protection_plans
               (identity_key, reference, child_id, started_at, social_worker_id, social_worker_name)
           SELECT identity_key, reference, child_id, $2, $3, $4 FROM referral_children WHERE reference = $1""",
        reference,
        fact.held_at,
        worker.staff_id if worker else None,
        worker.name if worker else None,
    )


async def closed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, Closed)
    await conn.execute(
        "UPDATE referrals SET closed_at = $2, close_reason = $3 WHERE reference = $1",
        event.reference,
        event.at,
        fact.reason.value,
    )


async def escalation_raised(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    e = content(event, EscalationRaised).escalation
    await conn.execute(
        """INSERT INTO escalations (escalation_id, reference, subject, rung, rank, addressed_to, reason,
                                    due_at, raised_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        e.escalation_id,
        event.reference,
        e.subject,
        e.rung,
        e.rank.value,
        e.addressed_to,
        e.reason,
        e.due_at,
        e.raised_at,
    )


async def escalation_acknowledged(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute(
        """UPDATE escalations SET acknowledged_by = $2, acknowledged_at = $3
           WHERE escalation_id = $1 AND acknowledged_at IS NULL""",
        content(event, EscalationAcknowledged).escalation_id,
        event.actor.id,
        event.at,
    )


async def escalation_resolved(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, EscalationResolved)
    await conn.execute(
        """UPDATE escalations SET resolved_at = $2, resolution = $3
           WHERE escalation_id = $1 AND resolved_at IS NULL""",
        fact.escalation_id,
        event.at,
        fact.resolution,
    )


async def action_agreed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ActionAgreed)
    await conn.execute(
        """INSERT INTO agreed_actions (action_id, reference, description, agency, owner, owner_supervisor,
                                       deadline, agreed_at, agreed_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        event.stream,
        event.reference,
        fact.description,
        fact.owner.agency.value,
        fact.owner.owner,
        fact.owner.supervisor,
        fact.deadline,
        event.at,
        event.actor.id,
    )


async def action_reminded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    await conn.execute("UPDATE agreed_actions SET reminded_at = $2 WHERE action_id = $1", event.stream, event.at)


async def action_reassigned(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ActionReassigned)
    await conn.execute(
        """INSERT INTO action_reassignments (action_id, seq, from_agency, from_owner, to_agency, to_owner,
                                             new_deadline, reason, actor_id, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        event.stream,
        event.seq,
        fact.from_owner.agency.value,
        fact.from_owner.owner,
        fact.owner.agency.value,
        fact.owner.owner,
        fact.deadline,
        fact.reason,
        event.actor.id,
        event.at,
    )
    await conn.execute(
        """UPDATE agreed_actions SET agency = $2, owner = $3, owner_supervisor = $4,
                  deadline = COALESCE($5, deadline), reminded_at = NULL
           WHERE action_id = $1""",
        event.stream,
        fact.owner.agency.value,
        fact.owner.owner,
        fact.owner.supervisor,
        fact.deadline,
    )


async def action_completed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ActionCompleted)
    await conn.execute(
        """UPDATE agreed_actions SET completed_at = $2, completed_by = $3, completion_note = $4
           WHERE action_id = $1""",
        event.stream,
        event.at,
        event.actor.id,
        fact.note,
    )


# --- a missing episode's --------------------------------------------------------------------


async def missing_reported(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, MissingReported)
    report = fact.report
    await conn.execute(
        """INSERT INTO missing_episodes
               (episode_id, report_id, identity_key, station, reported_by, reported_at, missing_since,
                assessed_grade, grade, indicators, phase, review_due, tracing_due, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'missing', $11, $12, $6)""",
        event.reference,
        report.report_id,
        identity_key(report.child.name, report.child.date_of_birth),
        report.station,
        event.actor.id,
        event.at,
        report.missing_since,
        report.assessment.grade.value,
        fact.grade.value,
        [indicator.value for indicator in report.assessment.indicators],
        fact.review_due,
        fact.tracing_due,
    )


async def episode_times(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A fact that moves the episode's grade and deadlines (a regrade, a low grade decided)."""
    fact = content(event, EpisodeTimes)
    await conn.execute(
        """UPDATE missing_episodes SET grade = $2, assessed_grade = $3, review_due = $4, tracing_due = $5,
                  updated_at = GREATEST(updated_at, $6)
           WHERE episode_id = $1""",
        event.reference,
        fact.grade.value,
        fact.assessed_grade.value,
        fact.review_due,
        fact.tracing_due,
        event.at,
    )


async def episode_reviewed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, EpisodeReviewed)
    await conn.execute(
        """INSERT INTO missing_reviews (episode_id, seq, reviewed_by, reviewer_rank, grade, tracing_actions, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        event.reference,
        event.seq,
        event.actor.id,
        fact.reviewer_rank,
        fact.grade.value,
        len(fact.tracing_actions),
        event.at,
    )
    await episode_times(conn, event)


async def tracing_recorded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, TracingRecorded)
    await conn.execute(
        """INSERT INTO missing_tracing (episode_id, seq, activity, action_id, recorded_by, at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        event.reference,
        event.seq,
        fact.activity,
        fact.action_id,
        event.actor.id,
        event.at,
    )
    await conn.execute("UPDATE missing_episodes SET last_tracing_at = $2 WHERE episode_id = $1", event.reference, event.at)
    await episode_times(conn, event)


async def child_found(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, ChildFound)
    await conn.execute(
        """UPDATE missing_episodes SET phase = 'returned', found_at = $2, where_found = $3, how_found = $4,
                  safe_and_well = $5, interview_due = $6, review_due = NULL, tracing_due = NULL, updated_at = $7
           WHERE episode_id = $1""",
        event.reference,
        fact.found_at,
        fact.where,
        fact.how,
        fact.safe_and_well,
        fact.interview_due,
        event.at,
    )


async def interview_recorded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, InterviewRecorded)
    await conn.execute(
        """UPDATE missing_episodes SET interview_outcome = $2, intelligence_shared = $3, updated_at = $4
           WHERE episode_id = $1""",
        event.reference,
        fact.outcome,
        fact.intelligence_for_police is not None,
        event.at,
    )


async def episode_closed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    content(event, EpisodeClosed)
    await conn.execute(
        "UPDATE missing_episodes SET phase = 'closed', closed_at = $2, updated_at = $2 WHERE episode_id = $1",
        event.reference,
        event.at,
    )


# --- a child's trigger plan's ---------------------------------------------------------------------


async def trigger_plan_written(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A version of the plan: the first registers the plan under its child's identity key; each is kept whole."""
    fact = content(event, TriggerPlanWritten)
    plan = fact.plan
    if fact.child is not None:
        await conn.execute(
            """INSERT INTO trigger_plans (plan_id, identity_key, version, owner, owner_manager, review_by,
                                          written_at, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)""",
            event.reference,
            identity_key(fact.child.name, fact.child.date_of_birth),
            fact.version,
            plan.owner.owner,
            plan.owner.supervisor,
            plan.review_by,
            event.at,
        )
    else:
        await conn.execute(
            """UPDATE trigger_plans SET version = $2, owner = $3, owner_manager = $4, review_by = $5,
                      written_at = $6, updated_at = $6, ended_at = NULL
               WHERE plan_id = $1""",
            event.reference,
            fact.version,
            plan.owner.owner,
            plan.owner.supervisor,
            plan.review_by,
            event.at,
        )
    await conn.execute(
        """INSERT INTO trigger_plan_versions (plan_id, version, plan, folds_in, written_by, written_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6)""",
        event.reference,
        fact.version,
        plan.model_dump_json(),
        fact.folds_in,
        event.actor.id,
        event.at,
    )
    await conn.execute(
        "UPDATE trigger_plan_addenda SET folded_into = $3 WHERE plan_id = $1 AND number = ANY($2::integer[])",
        event.reference,
        fact.folds_in,
        fact.version,
    )


async def police_addendum_added(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PoliceAddendumAdded)
    await conn.execute(
        """INSERT INTO trigger_plan_addenda (plan_id, number, information, fold_in_action_id, added_by, added_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        event.reference,
        fact.number,
        fact.information,
        fact.fold_in_action_id,
        event.actor.id,
        event.at,
    )
    await conn.execute("UPDATE trigger_plans SET updated_at = $2 WHERE plan_id = $1", event.reference, event.at)


async def trigger_plan_ended(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    content(event, TriggerPlanEnded)
    await conn.execute(
        "UPDATE trigger_plans SET ended_at = $2, updated_at = $2 WHERE plan_id = $1", event.reference, event.at
    )


async def trigger_plan_read(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, TriggerPlanRead)
    await conn.execute(
        """UPDATE missing_episodes SET trigger_plan_id = $2, trigger_plan_version = $3, trigger_plan_required = $4
           WHERE episode_id = $1""",
        event.reference,
        fact.plan.plan_id if fact.plan else None,
        fact.plan.version if fact.plan else None,
        fact.required,
    )


async def triage_listed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A referral put on a day's triage list: the stream is the triage, the reference the referral."""
    fact = content(event, TriageListed)
    await conn.execute(
        """INSERT INTO triage_items (triage_id, reference, day, risk, listed_at, due_at, prior_referrals)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        event.stream,
        event.reference,
        fact.day,
        event.risk.value if event.risk else None,
        event.at,
        fact.due_at,
        fact.prior_referrals,
    )


async def triage_decided(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, TriageDecided)
    await conn.execute(
        """UPDATE triage_items SET outcome = $3, decided_by = $4, decided_at = $5
           WHERE triage_id = $1 AND reference = $2""",
        event.stream,
        event.reference,
        fact.outcome.value,
        event.actor.id,
        event.at,
    )


async def panel_sitting_opened(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A sitting and its agenda; a case carried from an earlier sitting is marked carried there."""
    fact = content(event, PanelSittingOpened)
    await conn.execute(
        """INSERT INTO panel_sittings (sitting_id, panel_id, panel_name, day, meets_at, phase, opened_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 'agenda', $6, $6)""",
        event.reference, fact.panel_id, fact.panel_name, fact.day, fact.meets_at, event.at,
    )
    await conn.executemany(
        """INSERT INTO panel_agenda_items (sitting_id, case_id, listed_at, reasons, carried_from)
           VALUES ($1, $2, $3, $4, $5)""",
        [(event.reference, c.case_id, event.at, [r.value for r in c.reasons], c.carried_from) for c in fact.agenda],
    )
    await conn.executemany(
        "UPDATE panel_agenda_items SET carried_to = $3 WHERE sitting_id = $1 AND case_id = $2",
        [(c.carried_from, c.case_id, event.reference) for c in fact.agenda if c.carried_from],
    )


async def panel_agenda_edited(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PanelAgendaEdited)
    await conn.executemany(
        """INSERT INTO panel_agenda_items (sitting_id, case_id, listed_at, reasons, referred_by)
           VALUES ($1, $2, $3, '{member_referral}', $4)
           ON CONFLICT (sitting_id, case_id) DO UPDATE SET removed_at = NULL, referred_by = EXCLUDED.referred_by,
               reasons = array(SELECT DISTINCT unnest(panel_agenda_items.reasons || EXCLUDED.reasons))""",
        [(event.reference, a.case_id, event.at, a.referred_by.value) for a in fact.add],
    )
    await conn.executemany(
        "UPDATE panel_agenda_items SET removed_at = $3 WHERE sitting_id = $1 AND case_id = $2",
        [(event.reference, case_id, event.at) for case_id in fact.remove],
    )


async def panel_meeting_opened(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PanelMeetingOpened)
    await conn.execute(
        "UPDATE panel_sittings SET phase = 'in_session', held_at = $2, updated_at = $3 WHERE sitting_id = $1",
        event.reference, fact.held_at, event.at,
    )


async def panel_attendance_recorded(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PanelAttendanceRecorded)
    await conn.executemany(
        """INSERT INTO panel_attendees (sitting_id, seq, position, name, agency, role, named_role, case_ids)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        [
            (event.reference, event.seq, position, a.name, a.agency.value, a.role,
             a.named_role.value if a.named_role else None, a.case_ids)
            for position, a in enumerate(fact.attendees, start=1)
        ],
    )
    await conn.executemany(
        """INSERT INTO panel_absences (sitting_id, case_id, named_role, reason, at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (sitting_id, case_id, named_role) DO UPDATE SET reason = EXCLUDED.reason""",
        [(event.reference, a.case_id, a.named_role.value, a.reason, event.at) for a in fact.absences],
    )


async def panel_case_decided(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A case decided; each required role no attendee filled is an absence, flagged and escalated."""
    fact = content(event, PanelCaseDecided)
    await conn.execute(
        """UPDATE panel_agenda_items SET decided_at = $3, decided_by = $4, grade = $5, action_ids = $6, absent_roles = $7
           WHERE sitting_id = $1 AND case_id = $2""",
        event.reference, fact.case_id, event.at, event.actor.id, fact.grade.value if fact.grade else None,
        fact.action_ids, [r.value for r in fact.absent_roles],
    )
    await conn.executemany(
        """INSERT INTO panel_absences (sitting_id, case_id, named_role, escalated, at) VALUES ($1, $2, $3, true, $4)
           ON CONFLICT (sitting_id, case_id, named_role) DO UPDATE SET escalated = true""",
        [(event.reference, fact.case_id, role.value, event.at) for role in fact.absent_roles],
    )


async def panel_grade_applied(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PanelGradeApplied)
    await conn.execute(
        "UPDATE panel_agenda_items SET grade_result = $3 WHERE sitting_id = $1 AND case_id = $2",
        event.reference, fact.case_id, fact.result,
    )


async def panel_sitting_closed(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    fact = content(event, PanelSittingClosed)
    await conn.execute(
        "UPDATE panel_sittings SET phase = 'minuted', closed_at = $2, updated_at = $2 WHERE sitting_id = $1",
        event.reference, event.at,
    )
    await conn.execute(
        "UPDATE panel_agenda_items SET not_reached = true WHERE sitting_id = $1 AND case_id = ANY($2::text[])",
        event.reference, fact.not_reached,
    )


async def in_the_event_row_only(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """A fact read from `referral_events` alone (the decision history, the timeline): its payload still checked."""
    _ = event.content  # a payload not of its kind raises, and the fact is quarantined


PROJECTIONS: dict[FactKind, Projection] = {
    FactKind.VIST_SUBMITTED: submission,
    FactKind.VIST_RESUBMITTED: submission,
    FactKind.STAGE_CHANGED: stage_changed,
    FactKind.SUPERVISOR_REVIEWED: in_the_event_row_only,
    FactKind.SCREENED: screened,
    FactKind.REPEAT_OVERRIDE_REQUESTED: in_the_event_row_only,
    FactKind.REPEAT_OVERRIDE_DECIDED: in_the_event_row_only,
    FactKind.PARTNER_REFERRAL_RECEIVED: submission,
    FactKind.CSC_NOT_INFORMED_DECIDED: in_the_event_row_only,
    FactKind.STRATEGY_DISCUSSION_HELD: strategy_discussion_held,
    FactKind.CONFERENCE_BOOKED: conference_booked,
    FactKind.CONFERENCE_HELD: conference_held,
    FactKind.RISK_REGRADED: risk_regraded,
    FactKind.CLOSED: closed,
    FactKind.ESCALATION_RAISED: escalation_raised,
    FactKind.ESCALATION_ACKNOWLEDGED: escalation_acknowledged,
    FactKind.ESCALATION_RESOLVED: escalation_resolved,
    FactKind.ACTION_AGREED: action_agreed,
    FactKind.ACTION_REMINDED: action_reminded,
    FactKind.ACTION_REASSIGNED: action_reassigned,
    FactKind.ACTION_COMPLETED: action_completed,
    FactKind.MISSING_REPORTED: missing_reported,
    FactKind.LOW_GRADE_DECIDED: episode_times,
    FactKind.EPISODE_REVIEWED: episode_reviewed,
    FactKind.TRACING_RECORDED: tracing_recorded,
    FactKind.EPISODE_REGRADED: episode_times,
    FactKind.CHILD_FOUND: child_found,
    FactKind.INTERVIEW_RECORDED: interview_recorded,
    FactKind.EPISODE_CLOSED: episode_closed,
    FactKind.REPEAT_MISSING_FLAGGED: in_the_event_row_only,
    FactKind.TRIAGE_LISTED: triage_listed,
    FactKind.TRIAGE_DECIDED: triage_decided,
    FactKind.TRIGGER_PLAN_WRITTEN: trigger_plan_written,
    FactKind.POLICE_ADDENDUM_ADDED: police_addendum_added,
    FactKind.TRIGGER_PLAN_ENDED: trigger_plan_ended,
    FactKind.TRIGGER_PLAN_READ: trigger_plan_read,
    FactKind.CSE_REFERRAL_LINKED: in_the_event_row_only,
    FactKind.CSE_EPISODE_LINKED: in_the_event_row_only,
    FactKind.PANEL_SITTING_OPENED: panel_sitting_opened,
    FactKind.PANEL_AGENDA_EDITED: panel_agenda_edited,
    FactKind.PANEL_MEETING_OPENED: panel_meeting_opened,
    FactKind.PANEL_ATTENDANCE_RECORDED: panel_attendance_recorded,
    FactKind.PANEL_CASE_DECIDED: panel_case_decided,
    FactKind.PANEL_GRADE_APPLIED: panel_grade_applied,
    FactKind.PANEL_SITTING_CLOSED: panel_sitting_closed,
}


# Every table the facts write (their own `referral_events` row and every projection), with the SQL that names
# the case each row belongs to. The reconciliation compares every column of each; a projection writing a table
# not named here fails it (readmodel/shadow.py), so a new table cannot be left out.
PROJECTED_TABLES: dict[str, str] = {
    "referral_events": "reference",
    "referrals": "reference",
    "submission_versions": "reference",
    "referral_children": "reference",
    "stage_transitions": "reference",
    "risk_regrades": "reference",
    "strategy_discussions": "reference",
    "strategy_attendees": "reference",
    "conferences": "reference",
    "agreed_actions": "reference",
    "action_reassignments": "split_part(action_id, '.', 1)",
    "escalations": "reference",
    "missing_episodes": "episode_id",
    "missing_reviews": "episode_id",
    "missing_tracing": "episode_id",
    "triage_items": "reference",
    "trigger_plans": "plan_id",
    "trigger_plan_versions": "plan_id",
    "trigger_plan_addenda": "plan_id",
    "child_protection_plans": "reference",
    "referral_adults": "reference",
    "strategy_missing_roles": "reference",
    "panel_sittings": "sitting_id",
    "panel_agenda_items": "sitting_id",
    "panel_attendees": "sitting_id",
    "panel_absences": "sitting_id",
}
# Columns a fact of another case writes (a later conference about the child ends an earlier referral's plan):
# reconciled when that case is reconciled with it, and never taken for a mismatch of the row's own case alone.
WRITTEN_ACROSS_CASES: dict[str, tuple[str, ...]] = {
    "child_protection_plans": ("ended_at", "ended_by"),
    # A panel's next sitting marks the cases it carried from this one.
    "panel_agenda_items": ("carried_to",),
}
# Each kind of case's own row, which a quarantined fact may leave as a placeholder.
CASE_TABLES = ("referrals", "missing_episodes")


async def project(conn: asyncpg.Connection, event: RecordedEvent) -> None:
    """Shape the read model's tables by one fact, in the caller's transaction."""
    await PROJECTIONS[event.kind](conn, event)


async def write_fact(conn: asyncpg.Connection, event: RecordedEvent) -> bool:
    """The fact's event row and its projections, in the caller's transaction; False when it was already written.

    The recorder writes every fact through here, and the reconciliation writes a case's facts through
    here again into shadow tables, so what it expects is what the recorder does.
    """
    inserted = await conn.fetchval(
        """INSERT INTO referral_events
               (stream, seq, reference, kind, at, actor_id, actor_role, actor_agency, stage, risk, payload)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
           ON CONFLICT (stream, seq) DO NOTHING
           RETURNING true""",
        event.stream,
        event.seq,
        event.reference,
        event.kind,
        event.at,
        event.actor.id,
        event.actor.role.value,
        event.actor.agency.value,
        event.stage.value if event.stage else None,
        event.risk.value if event.risk else None,
        json.dumps(event.payload),
    )
    if not inserted:
        return False
    await project(conn, event)
    if event.stream == event.reference:
        await conn.execute(
            "UPDATE referrals SET updated_at = GREATEST(updated_at, $2) WHERE reference = $1", event.reference, event.at
        )
    return True
