"""Queries over the PostgreSQL read model for the API's lists: referrals and escalations, a page at a time.

Pages are keyset-paginated (newest first), so a page stays cheap however deep it is. The
rows carry references, grades, stages and times only: no child's name, date or address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from workflows.models import MissingTimetable

EscalationState = Literal["open", "acknowledged", "resolved", "all"]


@dataclass(frozen=True)
class PageStart:
    """Where a page starts: after the row with this (time, key), in newest-first order."""

    at: datetime
    key: str


def repeat_missing_since(now: datetime, policy: MissingTimetable) -> datetime:
    """The repeat-missing window's start, as of `now`."""
    return now - timedelta(days=policy.repeat_missing_days)


class ReferralReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def referrals(
        self,
        *,
        now: datetime,
        limit: int,
        after: PageStart | None = None,
        stage: str | None = None,
        risk: str | None = None,
        overdue: bool | None = None,
        updated_since: datetime | None = None,
    ) -> list[asyncpg.Record]:
        """Referrals, most recently updated first; `overdue` means open and past its current deadline at `now`."""
        return await self.pool.fetch(
            """SELECT reference, stage, risk, incident_type, submitted_at, updated_at, deadline, closed_at,
                      close_reason, (closed_at IS NULL AND deadline IS NOT NULL AND deadline < $4) AS overdue,
                      record_incomplete
               FROM referrals
               WHERE ($1::text IS NULL OR stage = $1)
                 AND ($2::text IS NULL OR risk = $2)
                 AND ($3::boolean IS NULL OR (closed_at IS NULL AND deadline IS NOT NULL AND deadline < $4) = $3)
                 AND ($5::timestamptz IS NULL OR updated_at >= $5)
                 AND ($6::timestamptz IS NULL OR (updated_at, reference) < ($6, $7))
               ORDER BY updated_at DESC, reference DESC
               LIMIT $8""",
            stage,
            risk,
            overdue,
            now,
            updated_since,
            after.at if after else None,
            after.key if after else None,
            limit,
        )

    async def missing_episodes(
        self,
        *,
        now: datetime,
        limit: int,
        after: PageStart | None = None,
        phase: str | None = None,
        grade: str | None = None,
    ) -> list[asyncpg.Record]:
        """Missing episodes, most recently updated first; `overdue` means a review or tracing is late at `now`."""
        return await self.pool.fetch(
            """SELECT episode_id, phase, grade, assessed_grade, reported_at, missing_since, updated_at, review_due,
                      tracing_due, found_at, interview_due, interview_outcome, closed_at,
                      (closed_at IS NULL AND COALESCE(LEAST(review_due, tracing_due) < $3, false)) AS overdue
               FROM missing_episodes
               WHERE ($1::text IS NULL OR phase = $1)
                 AND ($2::text IS NULL OR grade = $2)
                 AND ($4::timestamptz IS NULL OR (updated_at, episode_id) < ($4, $5))
               ORDER BY updated_at DESC, episode_id DESC
               LIMIT $6""",
            phase,
            grade,
            now,
            after.at if after else None,
            after.key if after else None,
            limit,
        )

    async def most_frequently_missing(self, *, now: datetime, policy: MissingTimetable, limit: int) -> list[asyncpg.Record]:
        """Children with the most episodes in the repeat-missing window back from `now`, read live: each once (by
        identity key, never returned) by their latest episode's ID; ties go to the most recently reported."""
        return await self.pool.fetch(
            """SELECT (array_agg(episode_id ORDER BY reported_at DESC, episode_id DESC))[1] AS latest_episode_id,
                      count(*) AS episodes,
                      count(*) FILTER (WHERE closed_at IS NULL) AS open_episodes,
                      bool_or(phase = 'missing') AS missing_now,
                      count(*) >= $3 AS repeat_missing,
                      max(reported_at) AS last_reported_at
               FROM missing_episodes
               WHERE reported_at >= $1 AND reported_at <= $2
               GROUP BY identity_key
               ORDER BY episodes DESC, last_reported_at DESC, latest_episode_id DESC
               LIMIT $4""",
            repeat_missing_since(now, policy),
            now,
            policy.repeat_missing_episodes,
            limit,
        )

    async def plans_due(self, *, now: datetime, until: datetime, limit: int) -> list[asyncpg.Record]:
        """Trigger plans in use whose review date falls before `until`, soonest (most overdue) first; no child data."""
        return await self.pool.fetch(
            """SELECT p.plan_id, p.version, p.owner, p.owner_manager, p.review_by, p.review_by <= $1 AS overdue,
                      (SELECT count(*) FROM trigger_plan_addenda a
                       WHERE a.plan_id = p.plan_id AND a.folded_into IS NULL) AS addenda_waiting
               FROM trigger_plans p
               WHERE p.ended_at IS NULL AND p.review_by < $2
               ORDER BY p.review_by, p.plan_id
               LIMIT $3""",
            now,
            until,
            limit,
        )

    async def address_warning(self, address_key: str) -> asyncpg.Record:
        """What is known at an address (its match key), as counts: open referrals about children living there or
        about an incident there, and of those children the ones on a live child protection plan or missing now."""
        return await self.pool.fetchrow(
            """WITH here AS (
                   SELECT c.reference, c.identity_key FROM referral_children c WHERE c.address_key = $1
                   UNION
                   SELECT c.reference, c.identity_key
                   FROM referrals r JOIN referral_children c USING (reference) WHERE r.location_key = $1),
               open_here AS (
                   SELECT h.* FROM here h JOIN referrals r USING (reference) WHERE r.closed_at IS NULL),
               children AS (SELECT DISTINCT identity_key FROM here)
               SELECT (SELECT count(DISTINCT reference) FROM open_here) AS open_referrals,
                      (SELECT count(DISTINCT p.identity_key) FROM child_protection_plans p
                       JOIN children USING (identity_key) WHERE p.ended_at IS NULL) AS children_on_plans,
                      (SELECT count(DISTINCT m.identity_key) FROM missing_episodes m
                       JOIN children USING (identity_key) WHERE m.phase = 'missing') AS children_missing""",
            address_key,
        )

    async def escalations(
        self,
        *,
        limit: int,
        after: PageStart | None = None,
        state: EscalationState = "open",
        reference: str | None = None,
        team: str | None = None,
        agency: str | None = None,
    ) -> list[asyncpg.Record]:
        """Escalations, most recently raised first.

        Given `team` or `agency`, only those addressed to the caller: a late stage's escalations
        go to a rank of a team ("sergeant, <station>", "inspector, CRU"), a late agreed
        action's to the supervisors of the agency that owns it.
        """
        return await self.pool.fetch(
            """SELECT e.escalation_id, e.reference, e.subject, e.rung, e.rank, e.addressed_to, e.reason,
                      e.due_at, e.raised_at, e.acknowledged_by, e.acknowledged_at, e.resolved_at, e.resolution
               FROM escalations e
               LEFT JOIN agreed_actions a ON a.action_id = e.subject
               WHERE ($1 = 'all'
                      OR ($1 = 'open' AND e.acknowledged_at IS NULL AND e.resolved_at IS NULL)
                      OR ($1 = 'acknowledged' AND e.acknowledged_at IS NOT NULL)
                      OR ($1 = 'resolved' AND e.resolved_at IS NOT NULL))
                 AND ($2::text IS NULL OR e.reference = $2)
                 AND (($3::text IS NULL AND $4::text IS NULL)
                      OR (a.action_id IS NULL AND e.addressed_to = e.rank || ', ' || $3)
                      OR (a.action_id IS NOT NULL AND a.agency = $4))
                 AND ($5::timestamptz IS NULL OR (e.raised_at, e.escalation_id) < ($5, $6))
               ORDER BY e.raised_at DESC, e.escalation_id DESC
               LIMIT $7""",
            state,
            reference,
            team,
            agency,
            after.at if after else None,
            after.key if after else None,
            limit,
        )
