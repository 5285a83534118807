"""Escalation alerts sent from a workflow: each delivered in the background once its escalation is recorded.

The escalation's fact reaches PostgreSQL first (the outbox), with the in-app alert in the
same transaction, so the dashboard shows it as soon as the escalation is recorded. The
`deliver_escalation` activity then sends it on the addressee's other channels (skipped when
there are none), retried until it succeeds, so a mail server or webhook that is down
delays an alert but never loses it. The ladder never waits for a delivery; the workflow's
`run` does, before it returns.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.changes import ALERTS_PATCH, IN_APP_WITH_FACT_PATCH, patched
    from activities.alerts import EscalationAlerts
    from workflows.facts import EscalationRaised, FactKind, RecordedEvent
    from workflows.models import Escalation, EscalationAlert, SlaPolicy
    from workflows.recording import Outbox

DELIVERY_TIMEOUT = timedelta(seconds=60)
# Who hears that a fact could not be recorded: the supervision directory's administrators.
ADMINISTRATORS = "records administrators"


def recording_failed(escalation_id: str, event: RecordedEvent, policy: SlaPolicy) -> Escalation | None:
    """The escalation telling the administrators that `event` was quarantined; none when that fact was
    itself such an escalation (its own failure is in the quarantine and the reconciliation, never a loop)."""
    raised = event.content if event.kind == FactKind.ESCALATION_RAISED else None
    if isinstance(raised, EscalationRaised) and raised.escalation.reason == "recording_failed":
        workflow.logger.error(
            "recording_failed_escalation_quarantined",
            extra={"reference": event.reference, "stream": event.stream, "seq": event.seq},
        )
        return None
    return Escalation(
        escalation_id=escalation_id,
        reference=event.reference,
        subject=f"{event.stream}#{event.seq}",
        rung=0,
        rank=policy.escalation.ladder[0],
        addressed_to=ADMINISTRATORS,
        due_at=event.at,
        raised_at=workflow.now(),
        reason="recording_failed",
    )


class AlertDispatch:
    """The alerts one workflow has sent: started in the background, awaited before the workflow ends."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._deliveries: list[asyncio.Task[None]] = []

    def send(self, alert: EscalationAlert, policy: SlaPolicy) -> None:
        """Deliver `alert` once the fact just added to the outbox (its escalation) is recorded."""
        if not patched(ALERTS_PATCH):
            return
        recorded_seq = self._outbox.last_seq
        with_fact = patched(IN_APP_WITH_FACT_PATCH)
        if with_fact:
            self._outbox.deliver_with(recorded_seq, alert)
        self._deliveries.append(asyncio.create_task(self._deliver(alert, recorded_seq, policy, with_fact)))

    async def delivered(self) -> None:
        done = 0
        while done < len(self._deliveries):  # an alert raised meanwhile is awaited too
            await self._deliveries[done]
            done += 1

    async def _deliver(self, alert: EscalationAlert, recorded_seq: int, policy: SlaPolicy, with_fact: bool) -> None:
        await self._outbox.recorded(recorded_seq)
        if with_fact and not self._outbox.alert_left(recorded_seq):
            return
        await workflow.execute_activity_method(
            EscalationAlerts.deliver_escalation,
            alert,
            start_to_close_timeout=DELIVERY_TIMEOUT,
            # No attempt limit: an alert is never given up on.
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=policy.escalation.alert_retry_first_seconds),
                maximum_interval=timedelta(seconds=policy.escalation.alert_retry_longest_seconds),
            ),
        )
