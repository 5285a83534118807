"""What supervisors and senior leaders see in the dashboard: open alerts, late actions, stages, timeliness, a referral's timeline.

Every query reads the PostgreSQL read model. Rows carry references, stages, grades, times,
staff and agencies: never a child's name, date of birth or address. A referral's timeline
carries its facts whole, for the dashboard to show each as the fact registry summarises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import json

import asyncpg

from workflows.facts import FactKind, RecordedEvent
from workflows.models import Actor, Stage

# Weeks are London weeks (Monday to Sunday), as the referral units keep them.
WEEK = "date_trunc('week', {column} AT TIME ZONE 'Europe/London')::date"

# Each stay in a stage: when it began and ended (the next transition), and its deadline on entry.
STAGE_SPANS = """
    WITH spans AS (
        SELECT t.reference, t.seq, t.to_stage AS stage, t.at AS entered_at, t.deadline,
               lead(t.at) OVER w AS left_at, lead(t.seq) OVER w AS next_seq
        FROM stage_transitions t
        WINDOW w AS (PARTITION BY t.reference ORDER BY t.seq))
"""


@dataclass(frozen=True)
class Audience:
    """Whose alerts: a team's (a late stage climbs its ladder), or an agency's (its late agreed actions)."""

    team: str | None
    agency: str


class OversightReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open_escalations(self, audience: Audience | None, limit: int = 200) -> list[asyncpg.Record]:
        """Escalations still to act on, oldest first: all of them, or those shown in-app to `audience`.

        Still to act on: not acknowledged, and the late step not yet done (the stage not left,
        the action not completed, the case not closed, the missing child not yet found, the trigger
        plan not yet revised nor ended); an inquorate discussion's alert stays until acknowledged or the
        referral closes, a panel's absent attendee's until acknowledged or the sitting is over.
        """
        return await self.pool.fetch(
            """SELECT e.escalation_id, e.reference, e.subject, e.rung, e.rank, e.addressed_to, e.reason,
                      e.due_at, e.raised_at, d.addressee, d.agency, d.team, d.delivered_at AS shown_at
               FROM escalations e
               LEFT JOIN referrals r ON r.reference = e.reference
               LEFT JOIN missing_episodes m ON m.episode_id = e.reference
               LEFT JOIN trigger_plans p ON p.plan_id = e.reference
               LEFT JOIN panel_sittings s ON s.sitting_id = e.reference
               LEFT JOIN agreed_actions a ON a.action_id = e.subject
               LEFT JOIN alert_deliveries d ON d.escalation_id = e.escalation_id AND d.channel = 'in_app'
               WHERE e.acknowledged_at IS NULL AND e.resolved_at IS NULL
                 AND (r.reference IS NOT NULL OR m.episode_id IS NOT NULL OR p.plan_id IS NOT NULL
                      OR s.sitting_id IS NOT NULL)
                 AND COALESCE(r.closed_at, m.closed_at, p.ended_at) IS NULL
                 AND CASE WHEN a.action_id IS NOT NULL THEN a.completed_at IS NULL
                          WHEN e.reason = 'inquorate' THEN true
                          -- A required attendee absent at a panel: until acknowledged, or the sitting is over.
                          WHEN s.sitting_id IS NOT NULL THEN true
                          -- A missing episode's review or tracing is moot once the child is found.
                          WHEN m.episode_id IS NOT NULL THEN m.phase = 'missing'
                          -- A plan's late review is moot once a new version is written.
                          WHEN p.plan_id IS NOT NULL THEN p.written_at <= e.raised_at
                          ELSE r.stage = e.subject END
                 AND (NOT $1::boolean OR (d.delivered_at IS NOT NULL
                      AND ((d.team IS NOT NULL AND d.team = $2) OR (d.team IS NULL AND d.agency = $3))))
               ORDER BY e.raised_at, e.escalation_id
               LIMIT $4""",
            audience is not None,
            audience.team if audience else None,
            audience.agency if audience else None,
            limit,
        )

    async def open_missing_episodes(self, limit: int = 200) -> list[asyncpg.Record]:
        """Missing episodes not yet closed, the nearest deadline (review, tracing, interview) first."""
        return await self.pool.fetch(
            """SELECT m.episode_id, m.phase, m.grade, m.assessed_grade, m.missing_since, m.review_due, m.tracing_due,
                      m.found_at, m.interview_due, m.interview_outcome,
                      m.trigger_plan_id, m.trigger_plan_version, m.trigger_plan_required,
                      p.review_by AS trigger_plan_review_by,
                      LEAST(m.review_due, m.tracing_due, m.interview_due) AS next_due,
                      (SELECT count(*) FROM escalations e
                       WHERE e.reference = m.episode_id AND e.acknowledged_at IS NULL AND e.resolved_at IS NULL)
                          AS open_escalations
               FROM missing_episodes m
               LEFT JOIN trigger_plans p ON p.plan_id = m.trigger_plan_id
               WHERE m.closed_at IS NULL
               ORDER BY LEAST(m.review_due, m.tracing_due, m.interview_due) NULLS LAST, m.episode_id
               LIMIT $1""",
            limit,
        )

    async def alert_addressing(self, escalation_id: str) -> asyncpg.Record | None:
        """Where an escalation's alert went: its rung, and the agency and team whose chain it climbs."""
        return await self.pool.fetchrow(
            """SELECT e.rung, e.rank, d.agency, d.team
               FROM escalations e
               JOIN alert_deliveries d ON d.escalation_id = e.escalation_id AND d.channel = 'in_app'
               WHERE e.escalation_id = $1""",
            escalation_id,
        )

    async def late_actions(
        self, now: datetime, due_within: timedelta, agency: str | None = None, limit: int = 500
    ) -> list[asyncpg.Record]:
        """Open agreed actions past their deadline or due within `due_within`, by agency and owner."""
        return await self.pool.fetch(
            """SELECT a.action_id, a.reference, a.agency, a.owner, a.owner_supervisor, a.deadline, a.reminded_at,
                      count(e.escalation_id) FILTER (WHERE e.acknowledged_at IS NULL AND e.resolved_at IS NULL) AS open_escalations
               FROM agreed_actions a
               LEFT JOIN escalations e ON e.subject = a.action_id
               WHERE a.completed_at IS NULL AND a.deadline < $1::timestamptz + $2::interval
                 AND ($3::text IS NULL OR a.agency = $3)
               GROUP BY a.action_id
               ORDER BY a.agency, a.owner, a.deadline
               LIMIT $4""",
            now,
            due_within,
            agency,
            limit,
        )

    async def triage_queue(self, limit: int = 200) -> list[asyncpg.Record]:
        """Referrals listed at a day's domestic-abuse triage and not yet decided, longest waiting first."""
        return await self.pool.fetch(
            """SELECT t.triage_id, t.day, t.reference, t.risk, t.prior_referrals, t.listed_at, t.due_at, r.submitted_at,
                      (SELECT count(*) FROM escalations e
                       WHERE e.escalation_id LIKE t.triage_id || '.E%' AND e.reference = t.reference
                         AND e.acknowledged_at IS NULL AND e.resolved_at IS NULL) AS open_escalations
               FROM triage_items t JOIN referrals r USING (reference)
               WHERE t.decided_at IS NULL
               ORDER BY r.submitted_at, t.reference
               LIMIT $1""",
            limit,
        )

    async def open_referrals_by_stage(self, now: datetime, per_stage: int = 50) -> list[asyncpg.Record]:
        """Open referrals, the `per_stage` nearest their deadline in each stage, with each stage's counts."""
        return await self.pool.fetch(
            """WITH open AS (
                   SELECT reference, stage, risk, deadline, record_incomplete,
                          row_number() OVER (PARTITION BY stage ORDER BY deadline NULLS LAST, reference) AS n,
                          count(*) OVER (PARTITION BY stage) AS in_stage,
                          count(*) FILTER (WHERE deadline < $1) OVER (PARTITION BY stage) AS late_in_stage
                   FROM referrals WHERE closed_at IS NULL)
               SELECT o.reference, o.stage, o.risk, o.deadline, o.record_incomplete, o.in_stage, o.late_in_stage,
                      t.at AS entered_at
               FROM open o
               LEFT JOIN LATERAL (
                   SELECT at FROM stage_transitions s WHERE s.reference = o.reference ORDER BY seq DESC LIMIT 1
               ) t ON true
               WHERE o.n <= $2
               ORDER BY o.stage, o.n""",
            now,
            per_stage,
        )

    # --- timeliness ----------------------------------------------------------------------

    async def time_in_stage(self, since: datetime, until: datetime) -> list[asyncpg.Record]:
        """Median and 90th percentile hours spent in each stage, by the week the stage was entered."""
        return await self.pool.fetch(
            STAGE_SPANS
            + f"""
            SELECT stage, {WEEK.format(column="entered_at")} AS week, count(*) AS stays,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) / 3600
                       AS median_hours,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) / 3600
                       AS p90_hours
            FROM spans
            WHERE left_at IS NOT NULL AND stage <> '{Stage.CLOSED}' AND entered_at >= $1 AND entered_at < $2
            GROUP BY stage, week ORDER BY week, stage""",
            since,
            until,
        )

    async def deadlines_met(self, since: datetime, until: datetime, now: datetime) -> list[asyncpg.Record]:
        """Stage deadlines met or missed, by week entered and stage.

        The deadline is the one in force when the stage ended: a regrade during the stay moves it.
        A stay still open counts once its deadline has passed (missed), not before.
        """
        return await self.pool.fetch(
            STAGE_SPANS
            + f""",
            judged AS (
                SELECT s.stage, s.entered_at, s.left_at,
                       COALESCE((SELECT (ev.payload->>'deadline')::timestamptz FROM referral_events ev
                                 WHERE ev.stream = s.reference AND ev.kind = '{FactKind.RISK_REGRADED}' AND ev.seq > s.seq
                                   AND (s.next_seq IS NULL OR ev.seq < s.next_seq)
                                 ORDER BY ev.seq DESC LIMIT 1), s.deadline) AS due
                FROM spans s
                WHERE s.deadline IS NOT NULL AND s.entered_at >= $1 AND s.entered_at < $2)
            SELECT stage, {WEEK.format(column="entered_at")} AS week,
                   count(*) FILTER (WHERE left_at <= due) AS met,
                   count(*) FILTER (WHERE COALESCE(left_at, $3) > due) AS missed
            FROM judged GROUP BY stage, week ORDER BY week, stage""",
            since,
            until,
            now,
        )

    async def conference_attendance(self, since: datetime, until: datetime) -> list[asyncpg.Record]:
        """Police decisions to attend an ICPC or send a report in lieu, by the week the ICPC was booked."""
        return await self.pool.fetch(
            f"""SELECT {WEEK.format(column="ev.at")} AS week,
                       count(*) FILTER (WHERE c.police_attendance = 'attend') AS attend,
                       count(*) FILTER (WHERE c.police_attendance = 'report_in_lieu') AS report_in_lieu
                FROM conferences c JOIN referral_events ev ON ev.stream = c.reference AND ev.seq = c.seq
                WHERE ev.at >= $1 AND ev.at < $2
                GROUP BY week ORDER BY week""",
            since,
            until,
        )

    async def actions_on_time(self, since: datetime, until: datetime, now: datetime) -> list[asyncpg.Record]:
        """Agreed actions due each week: completed on time, completed late, or still open past the deadline."""
        return await self.pool.fetch(
            f"""SELECT {WEEK.format(column="deadline")} AS week,
                       count(*) FILTER (WHERE completed_at <= deadline) AS on_time,
                       count(*) FILTER (WHERE completed_at > deadline) AS late,
                       count(*) FILTER (WHERE completed_at IS NULL AND deadline < $3) AS overdue
                FROM agreed_actions
                WHERE deadline >= $1 AND deadline < $2
                GROUP BY week ORDER BY week""",
            since,
            until,
            now,
        )

    # --- one referral ----------------------------------------------------------------------

    async def referral(self, reference: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            """SELECT reference, stage, risk, initial_risk, incident_type, station, submitted_at, deadline,
                      screening_outcome, section_47, child_protection_plan, closed_at, close_reason, record_incomplete
               FROM referrals WHERE reference = $1""",
            reference,
        )

    async def timeline(self, reference: str) -> list[RecordedEvent]:
        """Every fact about the referral and its actions, in order, to be read through the fact registry.

        A VIST's form is among them: the page shows each fact's registry summary, never the form.
        """
        rows = await self.pool.fetch(
            """SELECT stream, seq, reference, kind, at, actor_id, actor_role, actor_agency, stage, risk, payload
               FROM referral_events WHERE reference = $1
               ORDER BY at, stream, seq""",
            reference,
        )
        return [
            RecordedEvent(
                stream=row["stream"], seq=row["seq"], reference=row["reference"], kind=row["kind"], at=row["at"],
                actor=Actor(id=row["actor_id"], role=row["actor_role"], agency=row["actor_agency"]),
                stage=row["stage"], risk=row["risk"],
                payload=row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"]),
            )
            for row in rows
        ]

    async def stage_spans(self, reference: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            STAGE_SPANS + "SELECT stage, entered_at, left_at, deadline FROM spans WHERE reference = $1 ORDER BY seq",
            reference,
        )

    async def attendees(self, reference: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT d.held_at, d.quorate, a.name, a.agency, a.role, a.named_role
               FROM strategy_discussions d JOIN strategy_attendees a
                    ON a.reference = d.reference AND a.discussion_seq = d.seq
               WHERE d.reference = $1 ORDER BY d.seq, a.position""",
            reference,
        )

    async def missing_roles(self, reference: str) -> list[asyncpg.Record]:
        """The named roles each strategy discussion lacked, and whether a reason was given."""
        return await self.pool.fetch(
            """SELECT d.held_at, m.named_role, m.reason_given
               FROM strategy_discussions d JOIN strategy_missing_roles m
                    ON m.reference = d.reference AND m.discussion_seq = d.seq
               WHERE d.reference = $1 ORDER BY d.seq, m.named_role""",
            reference,
        )

    async def actions(self, reference: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT action_id, description, agency, owner, deadline, completed_at, completed_by
               FROM agreed_actions WHERE reference = $1 ORDER BY agreed_at, action_id""",
            reference,
        )

    async def escalations(self, reference: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT escalation_id, subject, rung, rank, addressed_to, reason, due_at, raised_at,
                      acknowledged_by, acknowledged_at
               FROM escalations WHERE reference = $1 ORDER BY raised_at, escalation_id""",
            reference,
        )
