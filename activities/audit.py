"""The audit's reads of the read model, and the monthly sample it records as a worklist.

The sample is drawn at random but reproducibly: the same month and seed over the same
referrals and missing episodes give the same cases, and a worklist is recorded once per (month, seed), so a
retried activity or a second run finds the one already drawn.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from workflows.audit_models import AuditWorklist, SampleCategory, SampleRequest, Shortfall, WorklistItem

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
) -> tuple[list[WorklistItem], dict[SampleCategory, Shortfall]]:
    """The worklist items and why each short category fell short; a pure function of its inputs.

    A case is drawn once, under the first category that takes it; a category drawn earlier
    leaves alone, while it can, the cases a later category needs all of.
    """
    rng = random.Random(f"{request.month}:{request.seed}")
    drawn: dict[str, SampleCategory] = {}
    items: list[WorklistItem] = []
    shortfall: dict[SampleCategory, Shortfall] = {}
    for index, category in enumerate(DRAW_ORDER):
        wanted = request.quotas.get(category, 0)
        in_month = sorted(set(candidates.get(category, [])))
        pool = [reference for reference in in_month if reference not in drawn]
        needed_later = {
            reference
            for later in DRAW_ORDER[index + 1:]
            if len(left := set(candidates.get(later, [])) - set(drawn)) <= request.quotas.get(later, 0)
            for reference in left
        }
        spare = [reference for reference in pool if reference not in needed_later]
        chosen = rng.sample(spare, min(wanted, len(spare)))
        needed = [reference for reference in pool if reference in needed_later]
        chosen += rng.sample(needed, min(wanted - len(chosen), len(needed)))
        for reference in chosen:
            drawn[reference] = category
            items.append(WorklistItem(position=len(items) + 1, category=category, reference=reference))
        if len(chosen) < wanted:
            elsewhere = Counter(drawn[r] for r in in_month if drawn[r] is not category)
            shortfall[category] = Shortfall(wanted=wanted, drawn=len(chosen), in_month=len(in_month),
                                            drawn_under={c: elsewhere[c] for c in DRAW_ORDER if elsewhere[c]})
    return items, shortfall


class QuotasDiffer(Exception):
    """The month (and seed) is drawn already, under other quotas: drawn again only when asked to redraw."""

    def __init__(self, worklist: AuditWorklist) -> None:
        quotas = ", ".join(f"{c.value}={n}" for c, n in worklist.quotas.items())
        super().__init__(
            f"{worklist.month} (seed {worklist.seed}) was drawn on {worklist.drawn_at:%Y-%m-%d} by {worklist.drawn_by} "
            f"with {quotas}: ask to redraw to draw it again under other quotas (the redraw is recorded)"
        )
        self.worklist = worklist


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
        """Draw the month's sample and record it as a worklist, or return the one already recorded.

        A redraw draws the month again: the earlier worklist is kept, marked superseded by whoever redrew it.
        """
        existing = await self.worklist(request.month, request.seed)
        if existing is not None and not request.redraw:
            return existing
        items, shortfall = draw_sample(await self.sample_candidates(request.month), request)
        async with self.pool.acquire() as conn, conn.transaction():
            if existing is not None:
                await conn.execute(
                    """UPDATE audit_worklists SET superseded_at = now(), superseded_by = $2
                       WHERE id = $1 AND superseded_at IS NULL""",
                    existing.worklist_id,
                    request.drawn_by,
                )
            worklist_id = await conn.fetchval(
                """INSERT INTO audit_worklists (month, seed, quotas, shortfall, shortfall_reasons, drawn_by, redraw_of)
                   VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7)
                   ON CONFLICT (month, seed) WHERE superseded_at IS NULL DO NOTHING RETURNING id""",
                request.month,
                request.seed,
                json.dumps({c.value: n for c, n in request.quotas.items()}),
                json.dumps({c.value: s.wanted - s.drawn for c, s in shortfall.items()}),
                json.dumps({c.value: s.model_dump(mode="json") for c, s in shortfall.items()}),
                request.drawn_by,
                existing.worklist_id if existing else None,
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
        """The worklist in force for the month and seed (not one a redraw superseded)."""
        head = await self.pool.fetchrow(
            """SELECT id, month, seed, quotas, shortfall, shortfall_reasons, drawn_at, drawn_by, redraw_of
               FROM audit_worklists WHERE month = $1 AND seed = $2 AND superseded_at IS NULL""",
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
            shortfall_reasons=json.loads(head["shortfall_reasons"]),
            drawn_at=head["drawn_at"],
            drawn_by=head["drawn_by"],
            redraw_of=head["redraw_of"],
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

    async def imported_references(self, references: Sequence[str]) -> set[str]:
        """Those of `references` imported from an archive: their rows have no workflow history behind them."""
        rows = await self.pool.fetch("SELECT reference FROM imported_cases WHERE reference = ANY($1)", list(references))
        return {r["reference"] for r in rows}

    async def open_quarantines(self, references: Sequence[str]) -> dict[tuple[str, int], str]:
        """The facts of `references` the database refused and no one has re-applied yet, with why each was refused."""
        rows = await self.pool.fetch(
            """SELECT stream, seq, reason FROM quarantined_facts WHERE reference = ANY($1) AND resolved_at IS NULL""",
            list(references),
        )
        return {(row["stream"], row["seq"]): row["reason"] for row in rows}
