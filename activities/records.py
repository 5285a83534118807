"""Recording referral facts in PostgreSQL, and reading back what screening needs to see.

Every fact is written once: the event row's key (stream, seq) comes from the workflow, so a
retried activity finds its row already there and changes nothing. A fact and its
projections (readmodel/projections.py, one per kind) are written in one transaction. A fact PostgreSQL refuses for good (a
character text cannot hold, a value out of range, a projection that cannot read it) is
quarantined with its reason in a transaction of its own, and the referral is marked
"record incomplete" until an administrator re-applies it; a database that is down is
retried as before.

A batch written as a local activity commits before the history holds it (its marker is
written when the workflow task completes). A task that did not complete (a worker lost, a
completion refused: `Outbox.settled`) runs again and writes the same facts, which are already there; its
workflow time, each fact's `at`, is the later task's; the earlier is kept, and echoed. A fact whose
place holds a different fact (a decision the history never took, then a different one) is
not dropped: it is quarantined, and its workflow raises "recording failed".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TypeVar

import asyncpg
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from readmodel.projections import write_fact
from activities.alerts import EscalationAlerts
from activities.proofs import StartProofs
from runtime.metrics import ALERT_DELIVERIES, ESCALATIONS_RAISED, FACTS_QUARANTINED, FACTS_RECORDED, OUTBOX_LAG_SECONDS
from workflows.facts import EscalationRaised, FactBatch, FactKind, RecordedBatch, RecordedEvent
from workflows.missing_models import EpisodeCountQuery, OpenReferralQuery, OpenReferrals
from workflows.plan_models import TriggerPlan, TriggerPlanFound, TriggerPlanQuery, TriggerPlanView
from workflows.models import (
    AboutTheChildren,
    Actor,
    AdultHistory,
    AdultInvolvement,
    ChildOnPlan,
    EscalationAlert,
    IncidentType,
    PriorConference,
    PriorPanelDecision,
    PriorEpisode,
    PriorReferral,
    PriorReferralQuery,
    RecordOutcome,
    RiskGrade,
    ScreeningView,
    SocialWorker,
    adult_id,
)

log = structlog.get_logger(__name__)


class PlaceTaken(LookupError):
    """The fact's (stream, seq) holds a different fact: one written by a workflow task that did not complete."""


# Refusals that retrying cannot mend: the fact itself is what the database or a projection refuses.
# A lost connection or a database that is down raises none of these, and is retried.
UNRECORDABLE: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22, and arguments asyncpg cannot encode
    asyncpg.IntegrityConstraintViolationError,  # class 23
    UnicodeError,
    OverflowError,
    ValueError,
    LookupError,
    TypeError,
)


def quarantine_reason(error: BaseException) -> str:
    """Why a fact could not be recorded, by the error's type and SQLSTATE: never its message (it may quote values)."""
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(error, PlaceTaken):
        why = "its place in the stream holds a different fact, written by a workflow task that did not complete"
    elif isinstance(error, asyncpg.IntegrityConstraintViolationError):
        why = "it breaks a database constraint"
    elif isinstance(error, asyncpg.DataError):
        why = "PostgreSQL cannot store one of its values"
    elif isinstance(error, UnicodeError):
        why = "it holds text that cannot be encoded"
    elif isinstance(error, OverflowError):
        why = "it holds a value out of range"
    else:
        why = "a projection cannot read it"
    return f"{type(error).__name__}{f' [{sqlstate}]' if sqlstate else ''}: {why}"


def storable_time(value: datetime) -> datetime | None:
    """`value` when PostgreSQL can hold it; None for a moment that overflows on its way to UTC."""
    try:
        value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    return value


def fact_bytes(event: RecordedEvent) -> bytes:
    """The fact as JSON bytes, every character escaped to ASCII: whatever it holds survives."""
    # Built without validation by a laxer worker, it may hold a plain string where a kind belongs: kept as it is.
    return json.dumps(event.model_dump(mode="json", warnings=False), ensure_ascii=True).encode("ascii")


def _valid(parse: Callable[[object], object], value: object) -> object | None:
    """`value` parsed as its closed type, or None when it is not one."""
    try:
        return parse(value)
    except (ValueError, TypeError):
        return None


class Reapplication(BaseModel):
    """One quarantined fact an administrator re-applied: recorded now, or still refused and why."""

    stream: str
    seq: int
    reference: str
    kind: FactKind
    resolved: bool
    reason: str | None = None


class QuarantinedFact(BaseModel):
    """A quarantined fact as administrators see it: where it belongs and why it was refused, never its content."""

    stream: str
    seq: int
    reference: str
    kind: FactKind
    at: datetime | None = Field(description="when it happened; none when that time is itself what was refused")
    reason: str
    quarantined_at: datetime
    reapply_attempts: int
    last_reapplied_at: datetime | None = None
    last_reapplied_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None


# What screening sees about a referral's children ($1) since the look-back's start ($2), newest first, each
# item once with the referral's children it is about. A further source about the child is one more query of
# this shape, one more model derived from `AboutTheChildren` and one more list.
MISSING_EPISODES = """
    SELECT m.episode_id, m.reported_at, m.phase, m.grade,
           array_agg(DISTINCT c.child_id ORDER BY c.child_id) AS child_ids
    FROM referral_children c JOIN missing_episodes m ON m.identity_key = c.identity_key
    WHERE c.reference = $1 AND m.reported_at >= $2
    GROUP BY m.episode_id, m.reported_at, m.phase, m.grade
    ORDER BY m.reported_at DESC, m.episode_id DESC"""
# Other referrals' conferences about the children, whether they made a child protection plan.
CONFERENCE_OUTCOMES = """
    SELECT f.reference, f.held_at, f.child_protection_plan,
           array_agg(DISTINCT c.child_id ORDER BY c.child_id) AS child_ids
    FROM referral_children c
    JOIN referral_children oc ON oc.identity_key = c.identity_key AND oc.reference <> c.reference
    JOIN conferences f ON f.reference = oc.reference
    WHERE c.reference = $1 AND f.held_at >= $2
    GROUP BY f.reference, f.seq, f.held_at, f.child_protection_plan
    ORDER BY f.held_at DESC, f.reference DESC"""
# Panels' decisions on the children's other cases: a referral about the child or the child's missing episode.
PANEL_DECISIONS = """
    SELECT p.sitting_id, p.case_id, p.decided_at, p.grade, cardinality(p.action_ids) AS actions_agreed,
           array_agg(DISTINCT c.child_id ORDER BY c.child_id) AS child_ids
    FROM referral_children c
    JOIN (SELECT reference AS case_id, identity_key FROM referral_children
          UNION ALL SELECT episode_id, identity_key FROM missing_episodes) k
      ON k.identity_key = c.identity_key AND k.case_id <> c.reference
    JOIN panel_agenda_items p ON p.case_id = k.case_id
    WHERE c.reference = $1 AND p.decided_at >= $2
    GROUP BY p.sitting_id, p.case_id, p.decided_at, p.grade, p.action_ids
    ORDER BY p.decided_at DESC, p.sitting_id DESC, p.case_id DESC"""
About = TypeVar("About", bound=AboutTheChildren)


def count_recorded(event: RecordedEvent, committed_at: datetime) -> None:
    """A newly written fact in the domain's counters: its kind, its time in the outbox, an escalation's rung."""
    FACTS_RECORDED.labels(str(event.kind)).inc()
    OUTBOX_LAG_SECONDS.observe(max(0.0, (committed_at - event.at).total_seconds()))
    raised = event.content if event.kind == FactKind.ESCALATION_RAISED else None
    if isinstance(raised, EscalationRaised):
        ESCALATIONS_RAISED.labels(str(raised.escalation.rung)).inc()


class ReferralRecords:
    """Activities over the referral read model, holding the asyncpg pool they share."""

    def __init__(
        self, pool: asyncpg.Pool, alerts: EscalationAlerts | None = None, proofs: StartProofs | None = None
    ) -> None:
        """`alerts`, when given, writes an escalation's in-app alert with its fact; `proofs` checks a referral's
        start before its first facts are written."""
        self.pool = pool
        self.alerts = alerts
        self.proofs = proofs

    @activity.defn
    async def record_event(self, event: RecordedEvent) -> RecordOutcome:
        """Write one fact and its projections, or quarantine it when PostgreSQL refuses it for good."""
        return (await self.record_events([event]))[0]

    @activity.defn
    async def record_events(self, events: list[RecordedEvent]) -> list[RecordOutcome]:
        """Write a workflow's waiting facts in order, in one transaction: one round trip and one commit for all
        the facts of a decision. Each is written under its own savepoint, so a fact PostgreSQL refuses for
        good is quarantined alone and the rest are kept; a retried batch finds its facts written and skips them."""
        return await self._record(events, {})

    @activity.defn
    async def record_facts(self, batch: FactBatch) -> RecordedBatch:
        """`record_events`, with what goes with the facts in the same transaction: each escalation's alert among
        them delivered in-app (its outcome says whether channels are left for `deliver_escalation`), and the
        screening view read once they are written, when the batch asks for it. A referral's first batch
        carries its start: without the API's valid proof nothing is written, and the refusal is the answer."""
        if not batch.events and batch.start_check is None and batch.then_read is None:
            return RecordedBatch(outcomes=[])  # a workflow's last task, after its last local write: nothing to write
        if batch.start_check is not None:
            if self.proofs is None:
                raise RuntimeError("start_check: this worker holds no decision keys to check a start with")
            refusal = self.proofs.verdict(batch.start_check).refusal
            if refusal is not None:
                log.warning("start_refused", reference=batch.start_check.workflow_id)
                return RecordedBatch(outcomes=[], start_refusal=refusal)
        views: list[ScreeningView] = []

        async def then_read(conn: asyncpg.Connection) -> None:
            if batch.then_read is not None:
                views.append(await self.screening_view(conn, batch.then_read))

        outcomes = await self._record(batch.events, batch.alerts, then_read)
        # A local activity's marker holds its result alone: the facts go in it for the history, as written.
        written = await self._as_stored(batch.events, outcomes) if activity.info().is_local else None
        return RecordedBatch(outcomes=outcomes, screening_view=views[0] if views else None, written=written)

    async def _record(
        self,
        events: list[RecordedEvent],
        alerts: dict[int, EscalationAlert],
        then: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    ) -> list[RecordOutcome]:
        outcomes: list[RecordOutcome] = []
        in_app_sent: list[EscalationAlert] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for event in events:
                alert = alerts.get(event.seq)
                try:
                    async with conn.transaction():
                        outcome = RecordOutcome(recorded=await self._write(conn, event))
                except UNRECORDABLE as error:
                    # Quarantined: the alert, if any, is left whole to `deliver_escalation`.
                    outcomes.append(RecordOutcome(
                        recorded=False, quarantine_reason=await self._quarantine(conn, event, error),
                        alert_left=True if alert is not None else None,
                    ))
                    continue
                if alert is not None:
                    outcome.alert_left = await self._alert_with_fact(conn, alert, in_app_sent)
                outcomes.append(outcome)
            if then is not None:
                await then(conn)
        committed_at = datetime.now(timezone.utc)
        for event, outcome in zip(events, outcomes):
            if outcome.recorded:
                log.info("fact_recorded", reference=event.reference, stream=event.stream, seq=event.seq, kind=event.kind)
                count_recorded(event, committed_at)
            elif outcome.quarantined:
                log.error("fact_quarantined", reference=event.reference, stream=event.stream, seq=event.seq,
                          kind=event.kind, reason=outcome.quarantine_reason)
                FACTS_QUARANTINED.labels(str(event.kind)).inc()
        for alert in in_app_sent:
            ALERT_DELIVERIES.labels("in_app", "sent").inc()
            log.info("alert_delivered", reference=alert.escalation.reference, escalation_id=alert.escalation.escalation_id,
                     sent=["in_app"], with_fact=True)
        return outcomes

    async def _alert_with_fact(
        self, conn: asyncpg.Connection, alert: EscalationAlert, sent: list[EscalationAlert]
    ) -> bool:
        """The escalation's in-app alert, in a savepoint after its fact's; whether channels are left to deliver.

        A refusal here costs the fact nothing: the whole alert is then left to `deliver_escalation`.
        """
        if self.alerts is None:
            return True
        try:
            async with conn.transaction():
                with_fact = await self.alerts.deliver_with_fact(conn, alert)
        except UNRECORDABLE as error:
            log.warning("alert_not_written_with_fact", reference=alert.escalation.reference,
                        escalation_id=alert.escalation.escalation_id, error=type(error).__name__)
            return True
        if with_fact.sent:
            sent.append(alert)
        return with_fact.others_left

    async def _write(self, conn: asyncpg.Connection, event: RecordedEvent) -> bool:
        """The fact and its projections, in the caller's savepoint; False when it was already recorded."""
        if not await write_fact(conn, event):
            await self._check_same(conn, event)
            return False
        # The case a fact names is checked at the end of each fact, not at the batch's commit:
        # a fact about no case is refused alone, inside its own savepoint.
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        await conn.execute("SET CONSTRAINTS ALL DEFERRED")
        return True

    async def _as_stored(self, events: list[RecordedEvent], outcomes: list[RecordOutcome]) -> list[RecordedEvent]:
        """The facts as the database holds them. One written before, by a workflow task that did not complete and
        ran again, keeps the time it was first written with, and the history says so too."""
        before = [event for event, outcome in zip(events, outcomes) if not outcome.recorded and not outcome.quarantined]
        if not before:
            return events
        rows = await self.pool.fetch(
            """SELECT e.stream, e.seq, e.at FROM referral_events e
               JOIN unnest($1::text[], $2::int[]) AS w (stream, seq) USING (stream, seq)""",
            [event.stream for event in before], [event.seq for event in before],
        )
        stored = {(row["stream"], row["seq"]): row["at"] for row in rows}
        for event in before:
            if (at := stored.get((event.stream, event.seq))) is not None and at != event.at:
                log.warning("fact_written_before", reference=event.reference, stream=event.stream, seq=event.seq,
                            kind=event.kind)
        return [
            event.model_copy(update={"at": stored[(event.stream, event.seq)]}) if (event.stream, event.seq) in stored else event
            for event in events
        ]

    async def _check_same(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        """The fact already at (stream, seq) is this one, written before by a retried activity or a task that ran
        again (its `at` may be earlier); otherwise `PlaceTaken`."""
        same = await conn.fetchval(
            """SELECT kind = $3 AND reference = $4 AND actor_id = $5 AND payload = $6::jsonb
               FROM referral_events WHERE stream = $1 AND seq = $2""",
            event.stream, event.seq, event.kind, event.reference, event.actor.id, json.dumps(event.payload),
        )
        if same is False:
            raise PlaceTaken(f"{event.stream}#{event.seq}")

    async def _quarantine(self, conn: asyncpg.Connection, event: RecordedEvent, error: BaseException) -> str:
        """Keep the refused fact whole with its reason, and mark its referral "record incomplete"."""
        reason = quarantine_reason(error)
        await conn.execute(
            """INSERT INTO quarantined_facts (stream, seq, reference, kind, at, reason, fact)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (stream, seq) DO UPDATE SET reason = EXCLUDED.reason""",
            event.stream,
            event.seq,
            event.reference,
            event.kind,
            storable_time(event.at),
            reason,
            fact_bytes(event),
        )
        await self._mark_incomplete(conn, event)
        return reason

    async def _mark_incomplete(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        """Flag the referral; if its submission never reached the database, a placeholder from safe fields only."""
        if event.stream != event.reference or event.stage is None or event.risk is None:
            await conn.execute("UPDATE referrals SET record_incomplete = true WHERE reference = $1", event.reference)
            return
        # The payload may be what was refused: read as raw JSON, never as its model.
        opening = (FactKind.VIST_SUBMITTED, FactKind.PARTNER_REFERRAL_RECEIVED)
        form = event.payload.get("submission") if event.kind in opening else None
        form = form if isinstance(form, dict) else {}
        incident = form.get("incident") if isinstance(form.get("incident"), dict) else {}
        # Only values that parse as the closed types they are (an ID, an enum) are copied from the form.
        await conn.execute(
            """INSERT INTO referrals (reference, form_id, incident_type, initial_risk, risk, stage, submitted_at,
                                      updated_at, record_incomplete)
               VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()), COALESCE($7, now()), true)
               ON CONFLICT (reference) DO UPDATE SET record_incomplete = true""",
            event.reference,
            _valid(lambda v: uuid.UUID(str(v)), form.get("form_id")),
            _valid(lambda v: IncidentType(v).value, incident.get("type")),
            _valid(lambda v: RiskGrade(v).value, form.get("initial_risk")),
            event.risk.value,
            event.stage.value,
            storable_time(event.at),
        )

    async def quarantined(self, reference: str | None = None, include_resolved: bool = False) -> list[QuarantinedFact]:
        rows = await self.pool.fetch(
            """SELECT stream, seq, reference, kind, at, reason, quarantined_at, reapply_attempts, last_reapplied_at,
                      last_reapplied_by, resolved_at, resolved_by
               FROM quarantined_facts
               WHERE ($1::text IS NULL OR reference = $1) AND ($2 OR resolved_at IS NULL)
               ORDER BY quarantined_at, stream, seq""",
            reference,
            include_resolved,
        )
        return [QuarantinedFact(**dict(row)) for row in rows]

    async def reapply_quarantined(self, actor: Actor, reference: str | None = None) -> list[Reapplication]:
        """Write each open quarantined fact again, in order: recorded ones are resolved, the rest keep a fresh reason.

        Every attempt is counted on the fact's row with who made it; a referral whose facts are
        all recorded loses its "record incomplete" mark.
        """
        rows = await self.pool.fetch(
            """SELECT stream, seq, reference, kind, fact FROM quarantined_facts
               WHERE resolved_at IS NULL AND ($1::text IS NULL OR reference = $1)
               ORDER BY reference, at, stream, seq""",
            reference,
        )
        outcomes = []
        for row in rows:
            reason: str | None = None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    await self._write(conn, RecordedEvent.model_validate(json.loads(row["fact"])))
            except UNRECORDABLE as error:
                reason = quarantine_reason(error)
            await self.pool.execute(
                """UPDATE quarantined_facts
                   SET reapply_attempts = reapply_attempts + 1, last_reapplied_at = now(), last_reapplied_by = $3,
                       reason = COALESCE($4, reason),
                       resolved_at = CASE WHEN $4::text IS NULL THEN now() END,
                       resolved_by = CASE WHEN $4::text IS NULL THEN $3 END
                   WHERE stream = $1 AND seq = $2""",
                row["stream"],
                row["seq"],
                actor.id,
                reason,
            )
            outcomes.append(Reapplication(stream=row["stream"], seq=row["seq"], reference=row["reference"],
                                          kind=row["kind"], resolved=reason is None, reason=reason))
            log.info("fact_reapplied", reference=row["reference"], stream=row["stream"], seq=row["seq"],
                     resolved=reason is None, by=actor.id)
        await self.pool.execute(
            """UPDATE referrals r SET record_incomplete = EXISTS (
                   SELECT 1 FROM quarantined_facts q WHERE q.reference = r.reference AND q.resolved_at IS NULL)
               WHERE r.reference = ANY($1::text[])""",
            sorted({o.reference for o in outcomes}),
        )
        return outcomes

    @activity.defn
    async def count_missing_episodes(self, query: EpisodeCountQuery) -> int:
        """How many episodes the episode's child (same identity key) has had since `query.since`, this one included."""
        count = await self.pool.fetchval(
            """SELECT count(*) FROM missing_episodes other
               JOIN missing_episodes mine ON mine.identity_key = other.identity_key
               WHERE mine.episode_id = $1 AND other.reported_at >= $2 AND other.reported_at <= mine.reported_at""",
            query.episode_id,
            query.since,
        )
        return int(count)

    @activity.defn
    async def find_trigger_plan(self, query: TriggerPlanQuery) -> TriggerPlanFound:
        """The episode's child's trigger plan (same identity key), if they have one that has not ended, as police read it."""
        row = await self.pool.fetchrow(
            """SELECT p.plan_id, p.version, v.plan, p.review_by FROM missing_episodes m
               JOIN trigger_plans p ON p.identity_key = m.identity_key AND p.ended_at IS NULL
               JOIN trigger_plan_versions v ON v.plan_id = p.plan_id AND v.version = p.version
               WHERE m.episode_id = $1""",
            query.episode_id,
        )
        if row is None:
            return TriggerPlanFound()
        plan = TriggerPlan.model_validate_json(row["plan"])
        addenda = await self.pool.fetch(
            """SELECT information FROM trigger_plan_addenda WHERE plan_id = $1 AND folded_into IS NULL
               ORDER BY number""",
            row["plan_id"],
        )
        return TriggerPlanFound(
            plan=TriggerPlanView(
                plan_id=row["plan_id"],
                version=row["version"],
                owner=plan.owner,
                police_activity=plan.police_activity,
                addenda=[a["information"] for a in addenda],
                review_by=row["review_by"],
                current=row["review_by"] > query.at,
            )
        )

    @activity.defn
    async def find_open_referrals(self, query: OpenReferralQuery) -> OpenReferrals:
        """The referrals not yet closed about the episode's child (a child of theirs with the same identity key)."""
        rows = await self.pool.fetch(
            """SELECT DISTINCT r.reference FROM missing_episodes m
               JOIN referral_children c ON c.identity_key = m.identity_key
               JOIN referrals r ON r.reference = c.reference
               WHERE m.episode_id = $1 AND r.closed_at IS NULL
               ORDER BY r.reference""",
            query.episode_id,
        )
        return OpenReferrals(references=[row["reference"] for row in rows])

    @activity.defn
    async def find_prior_referrals(self, query: PriorReferralQuery) -> ScreeningView:
        """The referral's screening view (`screening_view`), read on its own."""
        return await self.screening_view(self.pool, query)

    async def screening_view(self, db: asyncpg.Pool | asyncpg.Connection, query: PriorReferralQuery) -> ScreeningView:
        """Everything known about the referral's children before it, and earlier referrals at its address.

        About a child (the same identity key): earlier referrals, missing episodes, conference
        outcomes and panels' decisions since the look-back's start. At the address: earlier
        referrals since the repeat window's start, which alone the repeat flag counts. Each source
        newest first, each item once.
        """
        look_back = query.look_back_since or query.since
        rows = await db.fetch(
            """WITH mine AS (
                   SELECT c.child_id, c.identity_key, c.address_key, r.location_key, r.submitted_at AS my_time
                   FROM referral_children c JOIN referrals r USING (reference)
                   WHERE c.reference = $1)
               SELECT DISTINCT ON (other.reference, matched_on, child_id)
                      other.reference, other.submitted_at, other.incident_type, other.screening_outcome,
                      m.matched_on, m.child_id
               FROM (
                   SELECT oc.reference, 'child' AS matched_on, mine.child_id, mine.my_time, $3::timestamptz AS since
                   FROM mine JOIN referral_children oc ON oc.identity_key = mine.identity_key
                   UNION ALL
                   SELECT oc.reference, 'address', NULL, mine.my_time, $2
                   FROM mine JOIN referral_children oc ON oc.address_key = mine.address_key
                   UNION ALL
                   SELECT o.reference, 'address', NULL, mine.my_time, $2
                   FROM mine JOIN referrals o ON o.location_key = mine.location_key
               ) m
               JOIN referrals other ON other.reference = m.reference
               WHERE other.reference <> $1
                 AND other.submitted_at >= m.since
                 AND other.submitted_at <= m.my_time
               ORDER BY other.reference, matched_on, child_id, other.submitted_at""",
            query.reference,
            query.since,
            look_back,
        )
        prior: dict[str, PriorReferral] = {}
        for row in sorted(rows, key=lambda r: (r["submitted_at"], r["reference"]), reverse=True):
            item = prior.setdefault(
                row["reference"],
                PriorReferral(
                    reference=row["reference"],
                    submitted_at=row["submitted_at"],
                    incident_type=row["incident_type"],
                    matched_on=[],
                    outcome=row["screening_outcome"],
                ),
            )
            if row["matched_on"] not in item.matched_on:
                item.matched_on.append(row["matched_on"])
                item.matched_on.sort()
            if row["child_id"] is not None and row["child_id"] not in item.child_ids:
                item.child_ids.append(row["child_id"])
                item.child_ids.sort()
        per_child: dict[str, int] = {}
        for item in prior.values():
            if item.submitted_at < query.since:
                continue  # in the look-back, before the repeat window: shown, not counted
            for child_id in item.child_ids:
                per_child[child_id] = per_child.get(child_id, 0) + 1
        # This referral counts too: "three or more referrals about a child".
        repeat = sorted(c for c, n in per_child.items() if n + 1 >= query.policy_threshold)
        return ScreeningView(
            prior_referrals=list(prior.values()),
            missing_episodes=await self._about_the_children(db, MISSING_EPISODES, PriorEpisode, query.reference, look_back),
            conference_outcomes=await self._about_the_children(
                db, CONFERENCE_OUTCOMES, PriorConference, query.reference, look_back
            ),
            panel_decisions=await self._about_the_children(
                db, PANEL_DECISIONS, PriorPanelDecision, query.reference, look_back
            ),
            repeat_children=repeat,
            look_back_since=query.look_back_since,
            children_on_plans=await self._children_on_plans(db, query.reference),
            adults=await self._adults_of(db, query.reference, look_back),
        )

    async def _about_the_children(
        self, db: asyncpg.Pool | asyncpg.Connection, source: str, model: type[About], reference: str, since: datetime
    ) -> list[About]:
        """The rows `source` finds about the referral's children (by identity key) since `since`, newest first."""
        rows = await db.fetch(source, reference, since)
        return [model(**dict(row), matched_on=["child"]) for row in rows]

    async def _children_on_plans(self, db: asyncpg.Pool | asyncpg.Connection, reference: str) -> list[ChildOnPlan]:
        """The referral's children on a live child protection plan (made at another referral's conference)."""
        rows = await db.fetch(
            """SELECT c.child_id, p.reference AS plan_reference, p.started_at AS since,
                      p.social_worker_id, p.social_worker_name
               FROM referral_children c
               JOIN child_protection_plans p ON p.identity_key = c.identity_key AND p.reference <> c.reference
               WHERE c.reference = $1 AND p.ended_at IS NULL
               ORDER BY c.child_id, p.started_at DESC""",
            reference,
        )
        return [
            ChildOnPlan(
                child_id=row["child_id"],
                plan_reference=row["plan_reference"],
                since=row["since"],
                social_worker=SocialWorker(staff_id=row["social_worker_id"], name=row["social_worker_name"])
                if row["social_worker_id"] else None,
            )
            for row in rows
        ]

    async def _adults_of(self, db: asyncpg.Pool | asyncpg.Connection, reference: str, since: datetime) -> list[AdultHistory]:
        """The referral's adults (same identity key) in earlier referrals since `since`, each newest first."""
        rows = await db.fetch(
            """SELECT a.position, a.role AS role_now, o.reference, r.submitted_at, r.incident_type,
                      array_agg(DISTINCT o.role ORDER BY o.role) AS roles
               FROM referral_adults a
               JOIN referrals mine ON mine.reference = a.reference
               JOIN referral_adults o ON o.identity_key = a.identity_key AND o.reference <> a.reference
               JOIN referrals r ON r.reference = o.reference
               WHERE a.reference = $1 AND r.submitted_at >= $2 AND r.submitted_at <= mine.submitted_at
               GROUP BY a.position, a.role, o.reference, r.submitted_at, r.incident_type
               ORDER BY a.position, r.submitted_at DESC, o.reference DESC""",
            reference,
            since,
        )
        adults: dict[int, AdultHistory] = {}
        for row in rows:
            adult = adults.setdefault(
                row["position"], AdultHistory(adult_id=adult_id(row["position"]), role=row["role_now"], earlier=[])
            )
            adult.earlier.append(AdultInvolvement(
                reference=row["reference"], submitted_at=row["submitted_at"], incident_type=row["incident_type"],
                roles=row["roles"],
            ))
        return list(adults.values())
