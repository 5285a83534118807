"""The audit's reads of the read model, and the monthly sample it records as a worklist.

The sample is drawn at random but reproducibly: the same month and seed over the same
referrals and missing episodes give the same cases, and a worklist is recorded once per (month, seed), so a
retried activity or a second run finds the one already drawn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from workflows.audit_models import AuditWorklist, SampleCategory, SampleRequest, WorklistItem

# Drawn most specific first, so one case counts once and the rare categories are filled.
DRAW_ORDER = (
    SampleCategory.SECTION_46,
    SampleCategory.SECTION_47_VIST,
    SampleCategory.MISSING,
    SampleCategory.CSE,
    SampleCategory.VIST,
)
LONDON = ZoneInfo("Europe/London")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The month's first and the next month's first moment, Europe/London."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=LONDON)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=LONDON)
    return start, end


def draw_sample(
    candidates: dict[SampleCategory, list[str]], request: SampleRequest
) -> tuple[list[WorklistItem], dict[SampleCategory, int]]:
    """The worklist items and the shortfall per category; a pure function of its inputs."""
    rng = random.Random(f"{request.month}:{request.seed}")
    drawn: set[str] = set()
    items: list[WorklistItem] = []
    shortfall: dict[SampleCategory, int] = {}
    for category in DRAW_ORDER:
        wanted = request.quotas.get(category, 0)
        pool = sorted(set(candidates.get(category, [])) - drawn)
        chosen = rng.sample(pool, min(wanted, len(pool)))
        if len(chosen) < wanted:
            shortfall[category] = wanted - len(chosen)
        for reference in chosen:
            drawn.add(reference)
            items.append(WorklistItem(position=len(items) + 1, category=category, reference=reference))
    return items, shortfall


class AuditRecords:
    """Activities and reads over the read model for the auditors, holding the asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- the monthly sample ----------------------------------------------------------------

    async def sample_candidates(self, month: str) -> dict[SampleCategory, list[str]]:
        """Each category's cases of the month: referrals submitted in it, and missing episodes reported in it."""
        start, end = month_bounds(month)
        rows = await self.pool.fetch(
            """SELECT reference, incident_type, section_46, coalesce(section_47, false) AS section_47
               FROM referrals WHERE submitted_at >= $1 AND submitted_at < $2""",
            start,
            end,
        )
        # A missing-children case is a missing episode, its own workflow, not a referral's incident type.
        episodes = await self.pool.fetch(
            "SELECT episode_id FROM missing_episodes WHERE reported_at >= $1 AND reported_at < $2", start, end
        )
        return {
            SampleCategory.VIST: [r["reference"] for r in rows],
            SampleCategory.MISSING: [r["episode_id"] for r in episodes],
            SampleCategory.CSE: [r["reference"] for r in rows if r["incident_type"] == "cse"],
            SampleCategory.SECTION_47_VIST: [r["reference"] for r in rows if r["section_47"]],
            SampleCategory.SECTION_46: [r["reference"] for r in rows if r["section_46"]],
        }

    @activity.defn
    async def draw_monthly_sample(self, request: SampleRequest) -> AuditWorklist:
        """Draw the month's sample and record it as a worklist, or return the one already recorded."""
        existing = await self.worklist(request.month, request.seed)
        if existing is not None:
            return existing
        items, shortfall = draw_sample(await self.sample_candidates(request.month), request)
        async with self.pool.acquire() as conn, conn.transaction():
            worklist_id = await conn.fetchval(
                """INSERT INTO audit_worklists (month, seed, quotas, shortfall, drawn_by)
                   VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)
                   ON CONFLICT (month, seed) DO NOTHING RETURNING id""",
                request.month,
                request.seed,
                json.dumps({c.value: n for c, n in request.quotas.items()}),
                json.dumps({c.value: n for c, n in shortfall.items()}),
                request.drawn_by,
            )
            if worklist_id is not None:
                await conn.executemany(
                    """INSERT INTO audit_worklist_items (worklist_id, position, category, reference)
                       VALUES ($1, $2, $3, $4)""",
                    [(worklist_id, i.position, i.category.value, i.reference) for i in items],
                )
        worklist = await self.worklist(request.month, request.seed)
        assert worklist is not None
        return worklist

    async def worklist(self, month: str, seed: int = 0) -> AuditWorklist | None:
        head = await self.pool.fetchrow(
            "SELECT id, month, seed, quotas, shortfall, drawn_at, drawn_by FROM audit_worklists WHERE month = $1 AND seed = $2",
            month,
            seed,
        )
        if head is None:
            return None
        items = await self.pool.fetch(
            """SELECT position, category, reference, status FROM audit_worklist_items
               WHERE worklist_id = $1 ORDER BY position""",
            head["id"],
        )
        return AuditWorklist(
            worklist_id=head["id"],
            month=head["month"],
            seed=head["seed"],
            quotas=json.loads(head["quotas"]),
            shortfall=json.loads(head["shortfall"]),
            drawn_at=head["drawn_at"],
            drawn_by=head["drawn_by"],
            items=[WorklistItem(**dict(row)) for row in items],
        )

    # --- reconciliation ---------------------------------------------------------------------

    async def references_submitted(self, since: datetime | None, until: datetime | None) -> list[str]:
        """The referrals submitted and the missing episodes reported in [since, until), oldest first."""
        rows = await self.pool.fetch(
            """SELECT reference FROM (
                   SELECT reference, submitted_at AS at FROM referrals
                   UNION ALL SELECT episode_id, reported_at FROM missing_episodes) cases
               WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
               ORDER BY at, reference""",
            since,
            until,
        )
        return [r["reference"] for r in rows]

    async def purged_references(self, references: Sequence[str]) -> set[str]:
        """Those of `references` whose rows a retention purge removed on purpose."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT unnest(refs) AS reference FROM retention_purges WHERE refs && $1::text[]", list(references)
        )
        return {r["reference"] for r in rows} & set(references)

    async def open_quarantines(self, references: Sequence[str]) -> dict[tuple[str, int], str]:
        """The facts of `references` the database refused and no one has re-applied yet, with why each was refused."""
        rows = await self.pool.fetch(
            """SELECT stream, seq, reason FROM quarantined_facts WHERE reference = ANY($1) AND resolved_at IS NULL""",
            list(references),
        )
        return {(row["stream"], row["seq"]): row["reason"] for row in rows}
