"""Retention: closed cases' database records are removed once the retention period has passed.

A case is a referral or a missing episode once closed, or a child's trigger plan once ended. A
dry run lists what would go; a purge removes every row about those cases in one transaction and
records itself (when, who, the cut-off and the case IDs). The workflow histories are kept or
removed by the Temporal namespace's own retention period. A trigger plan's workflow runs on after
its rows go: a version written after that has no plan row to join and is quarantined, so the
administrators hear of it (a plan ended that long is written afresh only through a new plan ID).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg
from pydantic import BaseModel

from workflows.models import Actor

# Every table holding rows about a case, children before parents: a referral's, a missing episode's, a trigger
# plan's (each keyed by its own ID), and those all three share (keyed by `reference`).
CASE_TABLES = (
    ("missing_reviews", "episode_id = ANY($1)"),
    ("missing_tracing", "episode_id = ANY($1)"),
    ("missing_episodes", "episode_id = ANY($1)"),
    ("trigger_plan_addenda", "plan_id = ANY($1)"),
    ("trigger_plan_versions", "plan_id = ANY($1)"),
    ("trigger_plans", "plan_id = ANY($1)"),
    ("action_reassignments", "action_id IN (SELECT action_id FROM agreed_actions WHERE reference = ANY($1))"),
    ("agreed_actions", "reference = ANY($1)"),
    ("escalations", "reference = ANY($1)"),
    ("strategy_attendees", "reference = ANY($1)"),
    ("strategy_discussions", "reference = ANY($1)"),
    ("conferences", "reference = ANY($1)"),
    ("risk_regrades", "reference = ANY($1)"),
    ("stage_transitions", "reference = ANY($1)"),
    # A plan ending another referral's plan names it in ended_by only: that plan stays, still ended.
    ("child_protection_plans", "reference = ANY($1)"),
    ("referral_adults", "reference = ANY($1)"),
    ("referral_children", "reference = ANY($1)"),
    ("submission_versions", "reference = ANY($1)"),
    ("triage_items", "reference = ANY($1)"),
    ("referral_events", "reference = ANY($1)"),
    ("referrals", "reference = ANY($1)"),
)


# Each kind of case: its table, its ID, and when it closed (a plan: ended). `$1` is the cut-off.
CASES = (("referrals", "reference", "closed_at"), ("missing_episodes", "episode_id", "closed_at"),
         ("trigger_plans", "plan_id", "ended_at"))


def closed_cases(table: str, key: str, closed: str) -> str:
    return f"SELECT {key} AS reference, {closed} AS closed_at FROM {table} WHERE {closed} < $1"


class RetentionReport(BaseModel):
    closed_before: datetime
    dry_run: bool
    references: list[str]
    rows: int = 0


class Retention:
    def __init__(self, pool: asyncpg.Pool, retention_days: int) -> None:
        if retention_days < 1:
            raise ValueError("retention_days: must be at least 1")
        self.pool = pool
        self.retention_days = retention_days

    def cutoff(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(timezone.utc)) - timedelta(days=self.retention_days)

    async def due(self, now: datetime | None = None) -> RetentionReport:
        """What a purge would remove now (the dry run)."""
        closed_before = self.cutoff(now)
        union = " UNION ALL ".join(closed_cases(*case) for case in CASES)
        rows = await self.pool.fetch(f"{union} ORDER BY closed_at, reference", closed_before)
        return RetentionReport(closed_before=closed_before, dry_run=True, references=[r["reference"] for r in rows])

    async def purge(self, actor: Actor, now: datetime | None = None) -> RetentionReport:
        closed_before = self.cutoff(now)
        async with self.pool.acquire() as conn, conn.transaction():
            references = []
            for case in CASES:
                rows = await conn.fetch(f"{closed_cases(*case)} FOR UPDATE", closed_before)
                references += [r["reference"] for r in rows]
            references.sort()
            removed = 0
            for table, condition in CASE_TABLES:
                status = await conn.execute(f"DELETE FROM {table} WHERE {condition}", references)
                removed += int(status.split()[-1])
            await conn.execute(
                """INSERT INTO retention_purges (actor_id, closed_before, referral_count, row_count, refs)
                   VALUES ($1, $2, $3, $4, $5)""",
                actor.id,
                closed_before,
                len(references),
                removed,
                references,
            )
        return RetentionReport(closed_before=closed_before, dry_run=False, references=references, rows=removed)
