"""A panel's activities: its sitting opened by the cadence, the agenda built from the read model, and a grade applied to the child's live case."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows.authority import REJECTION_TYPE
from workflows.models import panel_sitting_id
from workflows.panel_models import (
    Agenda,
    AgendaCandidate,
    AgendaCriterion,
    AgendaQuery,
    ForwardedRegrade,
    GradeApplied,
    SittingOpened,
    SittingStart,
)

# The sitting's workflow type, started by name: the workflow module names these activities.
SITTING_WORKFLOW = "PanelSittingWorkflow"

# Each criterion's cases over [$1, $2) (the window up to the meeting): the latest episode of each child (by identity
# key), or the open referral.
CRITERIA_QUERIES: dict[AgendaCriterion, str] = {
    AgendaCriterion.REPEAT_MISSING: """
        SELECT DISTINCT ON (m.identity_key) m.episode_id AS case_id
        FROM missing_episodes m
        WHERE m.reported_at >= $1 AND m.reported_at < COALESCE($2::timestamptz, 'infinity')
          AND EXISTS (SELECT 1 FROM referral_events e WHERE e.reference = m.episode_id AND e.kind = 'repeat_missing_flagged')
        ORDER BY m.identity_key, m.reported_at DESC""",
    AgendaCriterion.CSE_CONCERN: """
        SELECT case_id FROM (
            SELECT DISTINCT ON (m.identity_key) m.episode_id AS case_id, m.reported_at AS at
            FROM missing_episodes m
            WHERE m.reported_at >= $1 AND m.reported_at < COALESCE($2::timestamptz, 'infinity') AND 'cse_concern' = ANY (m.indicators)
            ORDER BY m.identity_key, m.reported_at DESC
        ) episodes
        UNION ALL
        SELECT r.reference FROM referrals r
        WHERE r.incident_type = 'cse' AND r.closed_at IS NULL AND r.submitted_at >= $1
          AND r.submitted_at < COALESCE($2::timestamptz, 'infinity')""",
    # A child's current plan whose review falls due by the meeting: the child's latest episode in the window.
    AgendaCriterion.TRIGGER_PLAN_DUE: """
        SELECT DISTINCT ON (m.identity_key) m.episode_id AS case_id
        FROM trigger_plans p JOIN missing_episodes m USING (identity_key)
        WHERE p.ended_at IS NULL AND p.review_by < COALESCE($2::timestamptz, 'infinity') AND m.reported_at >= $1
        ORDER BY m.identity_key, m.reported_at DESC""",
}
CARRIED_QUERY = """
    SELECT i.case_id, i.sitting_id FROM panel_agenda_items i JOIN panel_sittings s USING (sitting_id)
    WHERE s.panel_id = $1 AND i.sitting_id <> $2 AND i.not_reached AND i.carried_to IS NULL AND i.removed_at IS NULL
    ORDER BY s.day, i.listed_at, i.case_id"""


class PanelRecords:
    """The panel's activities, holding the read model's pool and the worker's Temporal client."""

    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self.pool = pool
        self.client = client

    @activity.defn
    async def open_sitting(self, start: SittingStart) -> SittingOpened:
        """Start the sitting's workflow, once: a second opening of the same day finds it."""
        sitting_id = panel_sitting_id(start.panel.panel_id, start.day)
        try:
            await self.client.start_workflow(
                SITTING_WORKFLOW,
                start,
                id=sitting_id,
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            return SittingOpened(sitting_id=sitting_id, created=False)
        return SittingOpened(sitting_id=sitting_id, created=True)

    @activity.defn
    async def panel_agenda(self, query: AgendaQuery) -> Agenda:
        """The cases the panel's criteria put on the sitting, each once with every reason; carried cases first."""
        reasons: dict[str, list[AgendaCriterion]] = {}
        carried_from: dict[str, str] = {}
        for row in await self.pool.fetch(CARRIED_QUERY, query.panel_id, query.sitting_id):
            reasons.setdefault(row["case_id"], []).append(AgendaCriterion.CARRIED)
            carried_from.setdefault(row["case_id"], row["sitting_id"])
        for criterion in query.criteria:
            for case_id in await self.cases_meeting(criterion, query):
                listed = reasons.setdefault(case_id, [])
                if criterion not in listed:
                    listed.append(criterion)
        return Agenda(candidates=[
            AgendaCandidate(case_id=case_id, reasons=why, carried_from=carried_from.get(case_id))
            for case_id, why in reasons.items()
        ])

    async def cases_meeting(self, criterion: AgendaCriterion, query: AgendaQuery) -> list[str]:
        """The cases one criterion lists; a member agency's referral is an edit of the agenda, not a query."""
        sql = CRITERIA_QUERIES.get(criterion)
        if sql is None:
            return []
        return [row["case_id"] for row in await self.pool.fetch(sql, query.since, query.until)]

    @activity.defn
    async def apply_grade(self, forwarded: ForwardedRegrade) -> GradeApplied:
        """The panel's grade as the live case's own regrade, under its proof and update ID (applied once)."""
        handle = self.client.get_workflow_handle(forwarded.workflow_id)
        try:
            await handle.execute_update(forwarded.update, forwarded.decision, id=forwarded.update_id)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE:
                result = "unchanged" if "already graded" in cause.message else "refused"
                return GradeApplied(result=result, reason=cause.message)
            raise
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return GradeApplied(result="refused", reason="case_id: the case is closed or unknown")
            raise
        return GradeApplied(result="applied")
