"""Recording referral facts in PostgreSQL, and reading back what screening needs to see.

Every fact is written once: the event row's key (stream, seq) comes from the workflow, so a
retried activity finds its row already there and changes nothing. A fact and its
projections are written in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import structlog
from temporalio import activity

from workflows.models import (
    PriorReferral,
    PriorReferralQuery,
    RecordedEvent,
    ScreeningView,
    VistSubmission,
)

log = structlog.get_logger(__name__)


def match_key(*parts: str) -> str:
    """A keyed digest of normalised identity text, for matching without comparing raw names."""
    normalised = "|".join(re.sub(r"[^a-z0-9]+", " ", part.lower()).strip() for part in parts)
    return hashlib.sha256(normalised.encode()).hexdigest()


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


Projection = Callable[[asyncpg.Connection, RecordedEvent], Awaitable[None]]


class ReferralRecords:
    """Activities over the referral read model, holding the asyncpg pool they share."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._projections: dict[str, Projection] = {
            "vist_submitted": self._submission,
            "vist_resubmitted": self._submission,
            "stage_changed": self._stage_changed,
            "screened": self._screened,
            "risk_regraded": self._risk_regraded,
            "strategy_discussion_held": self._strategy_discussion,
            "conference_booked": self._conference_booked,
            "conference_held": self._conference_held,
            "closed": self._closed,
            "escalation_raised": self._escalation_raised,
            "escalation_acknowledged": self._escalation_acknowledged,
            "escalation_resolved": self._escalation_resolved,
            "action_agreed": self._action_agreed,
            "action_reminded": self._action_reminded,
            "action_reassigned": self._action_reassigned,
            "action_completed": self._action_completed,
        }

    @activity.defn
    async def record_event(self, event: RecordedEvent) -> bool:
        """Write one fact and its projections; False when it was already recorded."""
        async with self.pool.acquire() as conn, conn.transaction():
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
            projection = self._projections.get(event.kind)
            if projection is not None:
                await projection(conn, event)
            if event.stream == event.reference:
                await conn.execute(
                    "UPDATE referrals SET updated_at = GREATEST(updated_at, $2) WHERE reference = $1",
                    event.reference,
                    event.at,
                )
        log.info("fact_recorded", reference=event.reference, stream=event.stream, seq=event.seq, kind=event.kind)
        return True

    @activity.defn
    async def find_prior_referrals(self, query: PriorReferralQuery) -> ScreeningView:
        """Earlier referrals about the same children or the same address, within the window."""
        rows = await self.pool.fetch(
            """WITH mine AS (
                   SELECT c.child_id, c.identity_key, c.address_key, r.location_key, r.submitted_at AS my_time
                   FROM referral_children c JOIN referrals r USING (reference)
                   WHERE c.reference = $1)
               SELECT DISTINCT ON (other.reference, matched_on, child_id)
                      other.reference, other.submitted_at, other.incident_type, other.screening_outcome,
                      m.matched_on, m.child_id
               FROM (
                   SELECT oc.reference, 'child' AS matched_on, mine.child_id, mine.my_time
                   FROM mine JOIN referral_children oc ON oc.identity_key = mine.identity_key
                   UNION ALL
                   SELECT oc.reference, 'address', NULL, mine.my_time
                   FROM mine JOIN referral_children oc ON oc.address_key = mine.address_key
                   UNION ALL
                   SELECT o.reference, 'address', NULL, mine.my_time
                   FROM mine JOIN referrals o ON o.location_key = mine.location_key
               ) m
               JOIN referrals other ON other.reference = m.reference
               WHERE other.reference <> $1
                 AND other.submitted_at >= $2
                 AND other.submitted_at <= m.my_time
               ORDER BY other.reference, matched_on, child_id, other.submitted_at""",
            query.reference,
            query.since,
        )
        prior: dict[str, PriorReferral] = {}
        for row in rows:
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
            if row["child_id"] is not None and row["child_id"] not in item.child_ids:
                item.child_ids.append(row["child_id"])
        per_child: dict[str, int] = {}
        for item in prior.values():
            for child_id in item.child_ids:
                per_child[child_id] = per_child.get(child_id, 0) + 1
        # This referral counts too: "three or more referrals about a child".
        repeat = sorted(c for c, n in per_child.items() if n + 1 >= query.policy_threshold)
        return ScreeningView(prior_referrals=list(prior.values()), repeat_children=repeat)

    # --- projections -------------------------------------------------------------------

    async def _submission(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        form = VistSubmission.model_validate(event.payload["submission"])
        version = event.payload["version"]
        if version == 1:
            await conn.execute(
                """INSERT INTO referrals
                       (reference, form_id, form_digest, incident_type, incident_at, location_key, station,
                        officer_id, initial_risk, risk, stage, section_46, submitted_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $12)""",
                event.reference,
                form.form_id,
                form.content_digest(),
                form.incident.type.value,
                form.incident.occurred_at,
                match_key(form.incident.location),
                form.station,
                form.officer_id,
                form.initial_risk.value,
                event.stage.value,
                form.section_46 is not None,
                event.at,
            )
        else:
            await conn.execute(
                """UPDATE referrals SET incident_type = $2, incident_at = $3, location_key = $4,
                          section_46 = $5 WHERE reference = $1""",
                event.reference,
                form.incident.type.value,
                form.incident.occurred_at,
                match_key(form.incident.location),
                form.section_46 is not None,
            )
            await conn.execute("DELETE FROM referral_children WHERE reference = $1", event.reference)
        await conn.execute(
            """INSERT INTO submission_versions (reference, version, form, submitted_by, submitted_at)
               VALUES ($1, $2, $3::jsonb, $4, $5)""",
            event.reference,
            version,
            form.model_dump_json(),
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
                    match_key(child.name, child.date_of_birth.isoformat()),
                    match_key(child.home_address) if child.home_address else None,
                )
                for child in form.children
            ],
        )

    async def _stage_changed(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        await conn.execute(
            """INSERT INTO stage_transitions (reference, seq, from_stage, to_stage, actor_id, actor_role, at, deadline)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            event.reference,
            event.seq,
            payload.get("from_stage"),
            payload["to_stage"],
            event.actor.id,
            event.actor.role.value,
            event.at,
            _ts(payload.get("deadline")),
        )
        await conn.execute(
            "UPDATE referrals SET stage = $2, deadline = $3 WHERE reference = $1",
            event.reference,
            payload["to_stage"],
            _ts(payload.get("deadline")),
        )

    async def _screened(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute(
            "UPDATE referrals SET screening_outcome = $2, risk = $3 WHERE reference = $1",
            event.reference,
            event.payload["outcome"],
            event.payload["risk"],
        )

    async def _risk_regraded(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        await conn.execute(
            """INSERT INTO risk_regrades (reference, seq, from_risk, to_risk, actor_id, actor_role, reason, at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            event.reference,
            event.seq,
            payload["from_risk"],
            payload["to_risk"],
            event.actor.id,
            event.actor.role.value,
            payload["reason"],
            event.at,
        )
        await conn.execute(
            "UPDATE referrals SET risk = $2, deadline = $3 WHERE reference = $1",
            event.reference,
            payload["to_risk"],
            _ts(payload.get("deadline")),
        )

    async def _strategy_discussion(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        await conn.execute(
            """INSERT INTO strategy_discussions (reference, seq, held_at, section_47, quorate, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            event.reference,
            event.seq,
            _ts(payload["held_at"]),
            payload["section_47"],
            payload["quorate"],
            event.actor.id,
        )
        await conn.executemany(
            """INSERT INTO strategy_attendees (reference, discussion_seq, position, name, agency, role)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [
                (event.reference, event.seq, position, a["name"], a["agency"], a["role"])
                for position, a in enumerate(payload["attendees"], start=1)
            ],
        )
        await conn.execute(
            "UPDATE referrals SET section_47 = $2 WHERE reference = $1", event.reference, payload["section_47"]
        )

    async def _conference_booked(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        await conn.execute(
            """INSERT INTO conferences (reference, seq, conference_at, due_by, late_reason, police_attendance,
                                        attendance_rationale, booked_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            event.reference,
            event.seq,
            _ts(payload["conference_at"]),
            _ts(payload["due_by"]),
            payload.get("late_reason"),
            payload["police_attendance"],
            payload.get("attendance_rationale"),
            event.actor.id,
        )
        if payload.get("deadline") is not None:  # facts recorded before the booking carried it have none
            await conn.execute(
                "UPDATE referrals SET deadline = $2 WHERE reference = $1", event.reference, _ts(payload["deadline"])
            )

    async def _conference_held(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        await conn.execute(
            """UPDATE conferences SET held_at = $2, police_attended = $3, child_protection_plan = $4
               WHERE reference = $1 AND seq = (SELECT max(seq) FROM conferences WHERE reference = $1)""",
            event.reference,
            _ts(payload["held_at"]),
            payload["police_attended"],
            payload["child_protection_plan"],
        )
        await conn.execute(
            "UPDATE referrals SET child_protection_plan = $2 WHERE reference = $1",
            event.reference,
            payload["child_protection_plan"],
        )

    async def _closed(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute(
            "UPDATE referrals SET closed_at = $2, close_reason = $3 WHERE reference = $1",
            event.reference,
            event.at,
            event.payload["reason"],
        )

    async def _escalation_raised(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        e = event.payload["escalation"]
        await conn.execute(
            """INSERT INTO escalations (escalation_id, reference, subject, rung, rank, addressed_to, reason,
                                        due_at, raised_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            e["escalation_id"],
            event.reference,
            e["subject"],
            e["rung"],
            e["rank"],
            e["addressed_to"],
            e["reason"],
            _ts(e["due_at"]),
            _ts(e["raised_at"]),
        )

    async def _escalation_acknowledged(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute(
            """UPDATE escalations SET acknowledged_by = $2, acknowledged_at = $3
               WHERE escalation_id = $1 AND acknowledged_at IS NULL""",
            event.payload["escalation_id"],
            event.actor.id,
            event.at,
        )

    async def _escalation_resolved(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute(
            """UPDATE escalations SET resolved_at = $2, resolution = $3
               WHERE escalation_id = $1 AND resolved_at IS NULL""",
            event.payload["escalation_id"],
            event.at,
            event.payload["resolution"],
        )

    async def _action_agreed(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        p = event.payload
        await conn.execute(
            """INSERT INTO agreed_actions (action_id, reference, description, agency, owner, owner_supervisor,
                                           deadline, agreed_at, agreed_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            event.stream,
            event.reference,
            p["description"],
            p["owner"]["agency"],
            p["owner"]["owner"],
            p["owner"].get("supervisor"),
            _ts(p["deadline"]),
            event.at,
            event.actor.id,
        )

    async def _action_reminded(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute("UPDATE agreed_actions SET reminded_at = $2 WHERE action_id = $1", event.stream, event.at)

    async def _action_reassigned(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        p = event.payload
        await conn.execute(
            """INSERT INTO action_reassignments (action_id, seq, from_agency, from_owner, to_agency, to_owner,
                                                 new_deadline, reason, actor_id, at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            event.stream,
            event.seq,
            p["from_owner"]["agency"],
            p["from_owner"]["owner"],
            p["owner"]["agency"],
            p["owner"]["owner"],
            _ts(p.get("deadline")),
            p["reason"],
            event.actor.id,
            event.at,
        )
        await conn.execute(
            """UPDATE agreed_actions SET agency = $2, owner = $3, owner_supervisor = $4,
                      deadline = COALESCE($5, deadline), reminded_at = NULL
               WHERE action_id = $1""",
            event.stream,
            p["owner"]["agency"],
            p["owner"]["owner"],
            p["owner"].get("supervisor"),
            _ts(p.get("deadline")),
        )

    async def _action_completed(self, conn: asyncpg.Connection, event: RecordedEvent) -> None:
        await conn.execute(
            """UPDATE agreed_actions SET completed_at = $2, completed_by = $3, completion_note = $4
               WHERE action_id = $1""",
            event.stream,
            event.at,
            event.actor.id,
            event.payload["note"],
        )
