"""Queries over the read model's panel sittings: upcoming sittings, their agendas, absent required attendees and the actions panels set.

Rows carry sitting and case IDs, codes, roles and times; an attendee's name only where the sitting's own register is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


class PanelReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def sittings(self, *, since: datetime | None = None, panel_id: str | None = None, limit: int = 100) -> list[asyncpg.Record]:
        """Sittings meeting from `since` (all when none), soonest first, with their agenda's counts."""
        return await self.pool.fetch(
            """SELECT s.sitting_id, s.panel_id, s.panel_name, s.day, s.meets_at, s.phase, s.held_at, s.closed_at,
                      count(i.case_id) FILTER (WHERE i.removed_at IS NULL) AS cases,
                      count(i.case_id) FILTER (WHERE i.decided_at IS NOT NULL) AS decided,
                      count(i.case_id) FILTER (WHERE i.carried_from IS NOT NULL AND i.removed_at IS NULL) AS carried,
                      count(i.case_id) FILTER (WHERE i.not_reached) AS not_reached
               FROM panel_sittings s LEFT JOIN panel_agenda_items i USING (sitting_id)
               WHERE ($1::timestamptz IS NULL OR s.meets_at >= $1) AND ($2::text IS NULL OR s.panel_id = $2)
               GROUP BY s.sitting_id
               ORDER BY s.meets_at, s.sitting_id
               LIMIT $3""",
            since, panel_id, limit,
        )

    async def agenda(self, sitting_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT case_id, reasons, carried_from, referred_by, decided_at, grade, grade_result, action_ids,
                      absent_roles, not_reached, carried_to
               FROM panel_agenda_items WHERE sitting_id = $1 AND removed_at IS NULL ORDER BY listed_at, case_id""",
            sitting_id,
        )

    async def absences(self, *, limit: int = 200) -> list[asyncpg.Record]:
        """Required roles absent at a case's discussion, newest first, with the escalation each raised."""
        return await self.pool.fetch(
            """SELECT a.sitting_id, s.panel_name, s.day, a.case_id, a.named_role, a.reason IS NOT NULL AS reason_given,
                      a.escalated, a.at,
                      (SELECT e.escalation_id FROM escalations e
                       WHERE e.reference = a.sitting_id AND e.reason = 'absent_attendee'
                         AND e.subject = a.named_role || ' at ' || a.case_id) AS escalation_id,
                      (SELECT e.acknowledged_at IS NULL AND e.resolved_at IS NULL FROM escalations e
                       WHERE e.reference = a.sitting_id AND e.reason = 'absent_attendee'
                         AND e.subject = a.named_role || ' at ' || a.case_id) AS open
               FROM panel_absences a JOIN panel_sittings s USING (sitting_id)
               ORDER BY a.at DESC, a.sitting_id, a.case_id, a.named_role
               LIMIT $1""",
            limit,
        )

    async def actions(self, *, open_only: bool = True, limit: int = 200) -> list[asyncpg.Record]:
        """The actions panels set, each with its case and sitting, soonest deadline first."""
        return await self.pool.fetch(
            """SELECT a.action_id, a.reference AS sitting_id, i.case_id, a.agency, a.owner, a.deadline, a.completed_at
               FROM agreed_actions a
               JOIN panel_sittings s ON s.sitting_id = a.reference
               LEFT JOIN panel_agenda_items i ON i.sitting_id = a.reference AND a.action_id = ANY (i.action_ids)
               WHERE NOT $1 OR a.completed_at IS NULL
               ORDER BY a.deadline, a.action_id
               LIMIT $2""",
            open_only, limit,
        )

    async def known_cases(self, case_ids: list[str]) -> set[str]:
        """Which of `case_ids` name a referral or a missing episode in the read model."""
        rows = await self.pool.fetch(
            """SELECT reference AS case_id FROM referrals WHERE reference = ANY ($1::text[])
               UNION SELECT episode_id FROM missing_episodes WHERE episode_id = ANY ($1::text[])""",
            case_ids,
        )
        return {row["case_id"] for row in rows}

    async def unknown_additions(self, case_ids: list[str]) -> list[dict[str, Any]]:
        """A refusal for each case an agenda edit adds (listed in its order) that names no referral or missing episode."""
        known = await self.known_cases(case_ids)
        return [{"loc": ["add", index, "case_id"], "msg": "no such referral or missing episode", "type": "value_error"}
                for index, case_id in enumerate(case_ids) if case_id not in known]

    async def sittings_of_case(self, case_id: str) -> list[asyncpg.Record]:
        """The sittings a case was on, newest first: what each decided for it."""
        return await self.pool.fetch(
            """SELECT i.sitting_id, s.panel_name, s.day, i.reasons, i.decided_at, i.grade, i.grade_result,
                      i.action_ids, i.absent_roles, i.not_reached
               FROM panel_agenda_items i JOIN panel_sittings s USING (sitting_id)
               WHERE i.case_id = $1 AND i.removed_at IS NULL
               ORDER BY s.day DESC""",
            case_id,
        )

    async def triage_decisions(self, reference: str) -> list[asyncpg.Record]:
        """The days' triages that listed a referral, and what each decided."""
        return await self.pool.fetch(
            """SELECT triage_id, day, listed_at, due_at, outcome, decided_by, decided_at
               FROM triage_items WHERE reference = $1 ORDER BY day DESC""",
            reference,
        )
