"""Reconciliation: the facts in the workflow histories against the rows in PostgreSQL, every mismatch reported.

A case is a referral or a missing episode: each is compared with its own row (`referrals`
or `missing_episodes`), its projections' rows and its agreed actions' and escalations' rows.

The history is the source of truth. A fact in a history with no row is a decision the
database lost; a row with no fact behind it was written by something other than the
workflows. A fact the database refused for good and quarantined is a mismatch until an
administrator re-applies it. Facts whose write is still in flight, referrals a retention
purge removed on purpose, and referrals imported from an archive (no workflow ever ran them:
starter/archive.py) are counted but are not mismatches.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

import asyncpg
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.audit import AuditRecords
from readmodel.shadow import compare_with_shadow
from runtime.codec import UNSEALED_TYPE
from audit.history import (
    DecodedCase,
    case_query,
    decode_case,
    fetch_referral,
    list_referrals,
    recorded_facts,
)
from workflows.facts import FactKind, RecordedEvent
from workflows.models import TRIAGE_ID_PATTERN

# A day's triage records facts about several referrals on its own stream, each under its referral's reference.
TRIAGE_STREAM = re.compile(rf"^{TRIAGE_ID_PATTERN}$")


class Problem(StrEnum):
    MISSING_IN_DATABASE = "missing_in_database"
    MISSING_IN_HISTORY = "missing_in_history"
    DIFFERS = "differs"
    NO_HISTORY = "no_history"
    QUARANTINED = "quarantined"
    UNPROJECTABLE = "unprojectable"  # the current projections refuse a fact the database holds


class Mismatch(BaseModel):
    reference: str
    problem: Problem
    table: str
    key: str
    kind: FactKind | None = None
    fields: list[str] = []  # which fields differ: names only, never the values
    reason: str | None = None  # why a quarantined fact was refused: an error type, never a value


class ReconcileReport(BaseModel):
    referrals: int
    facts: int
    rows: int
    in_flight: int = 0
    purged: list[str] = []
    imported: list[str] = Field(default=[], description="imported from an archive: rows without a workflow, by design")
    refused: list[str] = Field(
        default=[], description="workflows whose start was not sealed by the keyring: refused, never referrals"
    )
    mismatches: list[Mismatch]

    @property
    def passed(self) -> bool:
        return not self.mismatches


def _kind(value: str | None) -> FactKind | None:
    """The fact kind a row names; None for a row no fact explains, or one naming no kind (a forged row)."""
    try:
        return FactKind(value) if value is not None else None
    except ValueError:
        return None


async def reconcile_referrals(
    referrals: list[DecodedCase], records: AuditRecords, without_history: list[str] | None = None
) -> ReconcileReport:
    """Compare decoded cases with the read model; `without_history`: rows whose workflow was not found.

    Each case's facts are written again through the recorder's projections into shadow tables
    (readmodel/shadow.py) and every column of every projected row is compared with the real one.
    """
    without_history = without_history or []
    references = [r.reference for r in referrals] + without_history
    purged = await records.purged_references(references)
    imported = await records.imported_references(without_history)
    quarantined = await records.open_quarantines(references)
    live = [r for r in referrals if r.reference not in purged]
    mismatches = [
        Mismatch(reference=case.reference, problem=Problem.QUARANTINED, table="quarantined_facts",
                 key=f"{fact.stream}#{fact.seq}", kind=fact.kind, reason=quarantined[(fact.stream, fact.seq)])
        for case in live for fact in case.facts if (fact.stream, fact.seq) in quarantined
    ]
    comparison = await compare_with_shadow(
        records.pool,
        {
            case.reference: sorted((f for f in case.facts if (f.stream, f.seq) not in quarantined), key=lambda f: f.at)
            for case in live
        },
        pending={key for case in live for key in case.unconfirmed},
        placeholders={m.reference for m in mismatches},
    )
    mismatches += [
        Mismatch(reference=d.case, problem=Problem(d.problem.value), table=d.table, key=d.key, kind=_kind(d.kind),
                 fields=list(d.fields))
        for d in comparison.differences
    ]
    mismatches += [
        Mismatch(reference=reference, problem=Problem.NO_HISTORY, table="referrals", key=reference)
        for reference in without_history if reference not in purged | imported
    ]
    return ReconcileReport(
        referrals=len(references),
        facts=sum(len(r.facts) for r in referrals),
        rows=comparison.event_rows,
        in_flight=len(comparison.unwritten),
        purged=sorted(purged),
        imported=sorted(imported),
        mismatches=sorted(mismatches, key=lambda m: (m.reference, m.table, m.key)),
    )


async def triage_facts(client: Client, pool: asyncpg.Pool, reference: str) -> list[tuple[RecordedEvent, bool]]:
    """The facts the days' triages recorded about the referral, from the triages' own histories, each with
    whether its write is confirmed. The triages are those the read model names for it, by fact or by list."""
    rows = await pool.fetch(
        """SELECT stream FROM referral_events WHERE reference = $1 AND stream LIKE 'TRIAGE-%'
           UNION SELECT triage_id FROM triage_items WHERE reference = $1""",
        reference,
    )
    facts: list[tuple[RecordedEvent, bool]] = []
    for triage in sorted(row["stream"] for row in rows if TRIAGE_STREAM.fullmatch(row["stream"])):
        try:
            history = await client.get_workflow_handle(triage).fetch_history()
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            continue  # its rows then have no history behind them, and say so
        facts += [(f, confirmed) for f, confirmed in await recorded_facts(history, client.data_converter)
                  if f.reference == reference]
    return facts


async def reconcile(
    client: Client,
    pool: asyncpg.Pool,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    references: list[str] | None = None,
) -> ReconcileReport:
    """Reconcile the named cases, or every referral submitted and missing episode reported in [since, until)
    by either side's account."""
    records = AuditRecords(pool)
    if references is None:
        in_database = await records.references_submitted(since, until)
        on_server = [ref for ref, _ in await list_referrals(client, case_query(since, until))]
        references = sorted(set(in_database) | set(on_server))
    decoded, without_history, refused = [], [], []
    for reference in references:
        try:
            histories = await fetch_referral(client, reference)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            without_history.append(reference)
            continue
        try:
            referral = await decode_case(histories, client.data_converter)
        except ApplicationError as error:
            if error.type != UNSEALED_TYPE:
                raise
            refused.append(reference)  # its start failed at once, before anything was recorded
            continue
        for fact, confirmed in await triage_facts(client, pool, reference):
            referral.facts.append(fact)
            if not confirmed:
                referral.unconfirmed.add((fact.stream, fact.seq))
        decoded.append(referral)
    report = await reconcile_referrals(decoded, records, without_history)
    return report.model_copy(update={"refused": refused})
