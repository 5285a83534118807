"""Reconciliation: the facts in the workflow histories against the rows in PostgreSQL, every mismatch reported.

A case is a referral or a missing episode: each is compared with its own row (`referrals`
or `missing_episodes`), its projections' rows and its agreed actions' and escalations' rows.

The history is the source of truth. A fact in a history with no row is a decision the
database lost; a row with no fact behind it was written by something other than the
workflows. A fact the database refused for good and quarantined is a mismatch until an
administrator re-applies it. Facts whose write is still in flight, and referrals a retention
purge removed on purpose, are counted but are not mismatches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.audit import AuditRecords, ReadModelRows
from runtime.codec import UNSEALED_TYPE
from audit.history import (
    DecodedCase,
    DecodedEpisode,
    DecodedReferral,
    case_query,
    decode_case,
    fetch_referral,
    list_referrals,
    recorded_facts,
)
from workflows.facts import (
    ActionAgreed,
    ActionReassigned,
    ChildFound,
    Closed,
    ConferenceBooked,
    ConferenceHeld,
    EpisodeClosed,
    EpisodeReviewed,
    EpisodeTimes,
    EscalationRaised,
    FactKind,
    FactPayload,
    InterviewRecorded,
    MissingReported,
    RecordedEvent,
    RiskRegraded,
    Screened,
    StageChanged,
    StrategyDiscussionHeld,
    TracingRecorded,
    VistResubmitted,
    VistSubmitted,
)
from workflows.models import TRIAGE_ID_PATTERN

# A day's triage records facts about several referrals on its own stream, each under its referral's reference.
TRIAGE_STREAM = re.compile(rf"^{TRIAGE_ID_PATTERN}$")
EVENT_FIELDS = ("kind", "at", "actor_id", "actor_role", "actor_agency", "stage", "risk", "payload")
REFERRAL_FIELDS = ("stage", "risk", "deadline", "screening_outcome", "section_47", "child_protection_plan", "close_reason")
EPISODE_FIELDS = ("phase", "grade", "assessed_grade", "review_due", "tracing_due", "interview_outcome")


class Problem(StrEnum):
    MISSING_IN_DATABASE = "missing_in_database"
    MISSING_IN_HISTORY = "missing_in_history"
    DIFFERS = "differs"
    NO_HISTORY = "no_history"
    QUARANTINED = "quarantined"


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
    refused: list[str] = Field(
        default=[], description="workflows whose start was not sealed by the keyring: refused, never referrals"
    )
    mismatches: list[Mismatch]

    @property
    def passed(self) -> bool:
        return not self.mismatches


def _event_row(fact: RecordedEvent) -> dict[str, Any]:
    return {
        "kind": fact.kind,
        "at": fact.at,
        "actor_id": fact.actor.id,
        "actor_role": fact.actor.role.value,
        "actor_agency": fact.actor.agency.value,
        "stage": fact.stage.value if fact.stage else None,
        "risk": fact.risk.value if fact.risk else None,
        "payload": fact.payload,
    }


def projection_keys(fact: RecordedEvent) -> list[tuple[str, str]]:
    """The (table, key) rows a fact's projection writes, keyed as activities/audit.PROJECTION_KEYS reads them."""
    match fact.content:
        case VistSubmitted(version=version):  # and its resubmissions
            return [("submission_versions", f"{fact.reference} v{version}")]
        case StageChanged():
            return [("stage_transitions", f"{fact.reference}#{fact.seq}")]
        case RiskRegraded():
            return [("risk_regrades", f"{fact.reference}#{fact.seq}")]
        case StrategyDiscussionHeld():
            return [("strategy_discussions", f"{fact.reference}#{fact.seq}")]
        case ConferenceBooked():
            return [("conferences", f"{fact.reference}#{fact.seq}")]
        case ActionAgreed():
            return [("agreed_actions", fact.stream)]
        case ActionReassigned():
            return [("action_reassignments", f"{fact.stream}#{fact.seq}")]
        case EscalationRaised(escalation=escalation):
            return [("escalations", escalation.escalation_id)]
        case EpisodeReviewed():
            return [("missing_reviews", f"{fact.reference}#{fact.seq}")]
        case TracingRecorded():
            return [("missing_tracing", f"{fact.reference}#{fact.seq}")]
    return []


def _own_contents(case: DecodedCase) -> Iterator[FactPayload]:
    """The contents of the case's own facts (not its actions'), in order: what its own row is made of."""
    return (fact.content for fact in case.facts if fact.stream == case.reference)


def _referral_row(referral: DecodedReferral) -> dict[str, Any]:
    """The referrals row as the projections would leave it after every recorded fact."""
    row: dict[str, Any] = dict.fromkeys(REFERRAL_FIELDS)
    for content in _own_contents(referral):
        match content:
            case VistResubmitted():
                pass  # a resubmission's grade is not the referral's: only the first form's is
            case VistSubmitted(submission=form):
                row["risk"] = form.initial_risk
            case StageChanged(to_stage=stage, deadline=deadline):
                row["stage"], row["deadline"] = stage, deadline
            case RiskRegraded(to_risk=risk, deadline=deadline):
                row["risk"], row["deadline"] = risk, deadline
            case Screened(outcome=outcome, risk=risk):
                row["screening_outcome"], row["risk"] = outcome, risk
            case StrategyDiscussionHeld(section_47=section_47):
                row["section_47"] = section_47
            case ConferenceHeld(child_protection_plan=plan):
                row["child_protection_plan"] = plan
            case Closed(reason=reason):
                row["close_reason"] = reason
    return row


def _episode_row(episode: DecodedCase) -> dict[str, Any]:
    """The missing_episodes row as the projections would leave it after every recorded fact."""
    row: dict[str, Any] = dict.fromkeys(EPISODE_FIELDS)
    for content in _own_contents(episode):
        match content:
            case EpisodeTimes(grade=grade, assessed_grade=assessed, review_due=review_due, tracing_due=tracing_due):
                if isinstance(content, MissingReported):
                    row["phase"] = "missing"
                row |= {"grade": grade, "assessed_grade": assessed, "review_due": review_due, "tracing_due": tracing_due}
            case ChildFound():
                row |= {"phase": "returned", "review_due": None, "tracing_due": None}
            case InterviewRecorded(outcome=outcome):
                row["interview_outcome"] = outcome
            case EpisodeClosed():
                row["phase"] = "closed"
    return row


# Each kind of case's own row: its table, the fields compared, and the row its facts would leave.
CASE_ROWS = {
    DecodedReferral: ("referrals", REFERRAL_FIELDS, _referral_row),
    DecodedEpisode: ("missing_episodes", EPISODE_FIELDS, _episode_row),
}


def compare(referral: DecodedCase, rows: ReadModelRows) -> tuple[list[Mismatch], int]:
    """Every mismatch between one case's facts and its rows, and the count of facts still in flight."""
    ref = referral.reference
    mismatches: list[Mismatch] = []
    in_flight = 0
    expected: dict[str, set[str]] = {table: set() for table in rows.keys}
    seen_events: set[tuple[str, int]] = set()
    quarantined = [f for f in referral.facts if (f.stream, f.seq) in rows.quarantined]
    for fact in referral.facts:
        key = (fact.stream, fact.seq)
        seen_events.add(key)
        if key in rows.quarantined:
            mismatches.append(Mismatch(reference=ref, problem=Problem.QUARANTINED, table="quarantined_facts",
                                       key=f"{fact.stream}#{fact.seq}", kind=fact.kind, reason=rows.quarantined[key]))
            continue
        row = rows.events.get(key)
        if row is None:
            if key in referral.unconfirmed:
                in_flight += 1
            else:
                mismatches.append(Mismatch(reference=ref, problem=Problem.MISSING_IN_DATABASE, table="referral_events",
                                           key=f"{fact.stream}#{fact.seq}", kind=fact.kind))
            continue
        wanted = _event_row(fact)
        differing = [f for f in EVENT_FIELDS if row[f] != wanted[f]]
        if differing:
            mismatches.append(Mismatch(reference=ref, problem=Problem.DIFFERS, table="referral_events",
                                       key=f"{fact.stream}#{fact.seq}", kind=fact.kind, fields=differing))
        for table, table_key in projection_keys(fact):
            expected[table].add(table_key)
    for key, row in rows.events.items():
        if row["reference"] == ref and key not in seen_events:
            mismatches.append(Mismatch(reference=ref, problem=Problem.MISSING_IN_HISTORY, table="referral_events",
                                       key=f"{key[0]}#{key[1]}", kind=row["kind"]))
    # Projection rows: only those facts whose write completed are expected to be there.
    for table, keys in expected.items():
        # A row another workflow keyed (a triage's escalation) belongs to the referral when one of its facts wrote it.
        present = {k for k in rows.keys[table] if _belongs(k, ref) or k in keys}
        unconfirmed = {k for f in referral.facts if (f.stream, f.seq) in referral.unconfirmed for t, k in projection_keys(f) if t == table}
        for key in sorted(keys - present - unconfirmed):
            mismatches.append(Mismatch(reference=ref, problem=Problem.MISSING_IN_DATABASE, table=table, key=key))
        for key in sorted(present - keys):
            mismatches.append(Mismatch(reference=ref, problem=Problem.MISSING_IN_HISTORY, table=table, key=key))
    case_table, case_fields, case_row = CASE_ROWS[type(referral)]
    actual = rows.cases[case_table].get(ref)
    if actual is None:
        if referral.facts and (referral.facts[0].stream, 1) not in referral.unconfirmed:
            mismatches.append(Mismatch(reference=ref, problem=Problem.MISSING_IN_DATABASE, table=case_table, key=ref))
    elif not referral.unconfirmed and not quarantined:  # a quarantined fact already explains the row
        wanted_row = case_row(referral)
        differing = [f for f in case_fields if actual[f] != wanted_row[f]]
        if differing:
            mismatches.append(Mismatch(reference=ref, problem=Problem.DIFFERS, table=case_table, key=ref, fields=differing))
    return mismatches, in_flight


def _belongs(key: str, reference: str) -> bool:
    # Keys are the reference itself, or start with it followed by '#', ' v' or '.' (actions, escalations).
    return key == reference or key.startswith((f"{reference}#", f"{reference} v", f"{reference}."))


async def reconcile_referrals(
    referrals: list[DecodedCase], records: AuditRecords, without_history: list[str] | None = None
) -> ReconcileReport:
    """Compare decoded cases with the read model; `without_history`: rows whose workflow was not found."""
    without_history = without_history or []
    references = [r.reference for r in referrals] + without_history
    purged = await records.purged_references(references)
    rows = await records.read_model_rows(references)
    mismatches: list[Mismatch] = []
    in_flight = 0
    for referral in referrals:
        if referral.reference in purged:
            continue
        found, pending = compare(referral, rows)
        mismatches += found
        in_flight += pending
    for reference in without_history:
        if reference not in purged:
            mismatches.append(Mismatch(reference=reference, problem=Problem.NO_HISTORY, table="referrals", key=reference))
    return ReconcileReport(
        referrals=len(references),
        facts=sum(len(r.facts) for r in referrals),
        rows=len(rows.events),
        in_flight=in_flight,
        purged=sorted(purged),
        mismatches=mismatches,
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
