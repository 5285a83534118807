"""The outbox every workflow records its facts through: numbered in order, written once, in order.

A fact PostgreSQL refuses for good is quarantined by the activity; the outbox goes on with
the next fact and tells its workflow, which raises a "recording failed" escalation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from workflows.changes import (
        BATCHED_RECORDING_PATCH, IN_APP_WITH_FACT_PATCH, LOCAL_RECORDING_PATCH, QUARANTINE_PATCH, patched,
    )
    from activities.records import ReferralRecords
    from workflows.facts import FactBatch, FactPayload, RecordedBatch, RecordedEvent, kind_of
    from workflows.models import (
        Actor, EscalationAlert, PriorReferralQuery, RecordOutcome, RiskGrade, ScreeningView, Stage, StartProofCheck,
    )

RECORD_TIMEOUT = timedelta(seconds=10)
# The database may be down for a while: keep trying, backing off to once a minute.
RECORD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# A batch written inside the workflow task that made it: one attempt, held at most this long. A database that
# does not answer by then (slow, down) leaves the batch to `record_facts` as an activity, retried as above,
# and the workflow answers meanwhile (a local activity holds its workflow task while it runs).
LOCAL_RECORD_TIMEOUT = timedelta(seconds=2)
LOCAL_RECORD_ONCE = RetryPolicy(maximum_attempts=1)
# Enough for every fact of the largest decision; a longer queue (a database back after an outage) drains in turns.
BATCH_LIMIT = 25

QuarantineHandler = Callable[[RecordedEvent], None]


class Outbox:
    """Facts waiting to be written to PostgreSQL by the `record_facts` activity.

    Each fact takes the next sequence number when it happens (deterministically), and one
    writer drains them in that order, so the read model never sees a later fact first. The
    writer takes every fact waiting at once: a decision's facts (the decision, the stage it
    moves to, a regrade, the actions it agrees) cost one activity and one commit.
    """

    def __init__(self, stream: str, reference: str, on_quarantined: QuarantineHandler | None = None) -> None:
        self.stream = stream
        self.reference = reference
        self.last_seq = 0
        # Every fact up to here is settled: recorded, or quarantined (and its workflow told).
        self.recorded_seq = 0
        self._pending: list[RecordedEvent] = []
        self._on_quarantined = on_quarantined
        # Escalations' alerts to deliver in-app with their facts, by the fact's seq; then whether channels are left.
        self._alerts: dict[int, EscalationAlert] = {}
        self._alerts_left: dict[int, bool] = {}
        # A screening view to read with the batch holding the fact `seq`; then the view read, by that seq.
        self._read_after: tuple[int, PriorReferralQuery] | None = None
        self._views: dict[int, ScreeningView | None] = {}
        # A referral's start, checked by the first batch before it writes anything; then the check's answer.
        # The history's length in the workflow task that last wrote a batch as a local activity.
        self._written_locally_in: int | None = None
        self._start_check: StartProofCheck | None = None
        self.start_checked = False
        self.start_refusal: str | None = None

    def add(
        self,
        payload: FactPayload,
        actor: Actor,
        stage: Stage | None = None,
        risk: RiskGrade | None = None,
        reference: str | None = None,
    ) -> RecordedEvent:
        """Record `payload` as the next fact; its kind is its model's in the registry.

        `reference` names the referral a fact is about when it is not the outbox's own (a day's
        triage records each listed referral's facts under that referral).
        """
        self.last_seq += 1
        event = RecordedEvent(
            stream=self.stream,
            seq=self.last_seq,
            reference=reference or self.reference,
            kind=kind_of(payload),
            at=workflow.now(),
            actor=actor,
            stage=stage,
            risk=risk,
            payload=payload.recorded(),
        )
        self._pending.append(event)
        return event

    def deliver_with(self, seq: int, alert: EscalationAlert) -> None:
        """Write `alert` in-app in the same transaction as the fact `seq`, its escalation."""
        self._alerts[seq] = alert

    def check_start_first(self, check: StartProofCheck) -> None:
        """Have the first batch check the start's proof before writing anything: a refused start writes nothing
        and the outbox stops (`start_refusal`); an accepted one costs no activity of its own."""
        self._start_check = check

    def alert_left(self, seq: int) -> bool:
        """Once the fact `seq` is settled: whether its alert still needs `deliver_escalation` (a channel other
        than in-app, or the fact quarantined, or a worker that could not write it with the fact)."""
        return self._alerts_left.pop(seq, True)

    @property
    def drained(self) -> bool:
        return not self._pending

    async def recorded_then_read(self, query: PriorReferralQuery) -> ScreeningView | None:
        """Wait until every fact so far is in PostgreSQL, with the screening view `query` asks for read in the
        same transaction as the last of them: one activity, not two. None when the view could not come with the
        facts (every fact already written, or a workflow recording as it did before `record_facts`); read it then
        on its own."""
        seq = self.last_seq
        if self.recorded_seq >= seq:
            return None
        self._read_after = (seq, query)
        await self.recorded(seq)
        return self._views.pop(seq, None)

    async def recorded(self, seq: int | None = None) -> None:
        """Wait until the fact `seq` (default: every fact so far) is in PostgreSQL."""
        target = self.last_seq if seq is None else seq
        await workflow.wait_condition(lambda: self.recorded_seq >= target)

    async def settled(self) -> None:
        """Wait until every fact is in PostgreSQL and in the history; the last step before the workflow completes.

        A batch written as a local activity is in the history once its workflow task completes. The server
        refuses a completion when an event came in meanwhile (an action's signal to its referral delivered, a
        timer, a decision), and the task runs again: its batch would be written again with the later task's
        time, and the workflow's state would keep the later time while the database kept the first. So a
        workflow whose last batch was written in this task completes in the next: an empty batch, as an
        activity, gives it that task at once (a timer's would wait for the server's timer queue).
        """
        await self.recorded()
        if self._written_locally_in == workflow.info().get_current_history_length():
            await workflow.execute_activity_method(
                ReferralRecords.record_facts, FactBatch(events=[]),
                start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY,
            )

    async def drain_forever(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            batch = list(self._pending[:BATCH_LIMIT])
            outcomes: list[RecordOutcome]
            read = self._read_after if self._read_after is not None and self._read_after[0] <= batch[-1].seq else None
            view: ScreeningView | None = None
            if patched(BATCHED_RECORDING_PATCH) and patched(IN_APP_WITH_FACT_PATCH):
                alerts = {event.seq: self._alerts.pop(event.seq) for event in batch if event.seq in self._alerts}
                check, self._start_check = self._start_check, None
                recorded = await self._record_facts(
                    FactBatch(events=batch, alerts=alerts, then_read=read[1] if read else None, start_check=check)
                )
                if check is not None:
                    self.start_checked = True
                    if recorded.start_refusal is not None:
                        self.start_refusal = recorded.start_refusal
                        return
                outcomes, view = recorded.outcomes, recorded.screening_view
                for event, outcome in zip(batch, outcomes, strict=True):
                    if event.seq in alerts:
                        self._alerts_left[event.seq] = outcome.alert_left is not False
            elif patched(BATCHED_RECORDING_PATCH):
                outcomes = await workflow.execute_activity_method(
                    ReferralRecords.record_events, batch, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY,
                )
            else:
                batch = batch[:1]
                outcomes = [await workflow.execute_activity_method(
                    ReferralRecords.record_event, batch[0], start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY,
                )]
            if read is not None:
                self._read_after = None
                self._views[read[0]] = view
            for event, outcome in zip(batch, outcomes, strict=True):
                self._pending.pop(0)
                self.recorded_seq = event.seq
                if outcome.quarantined and self._on_quarantined is not None and patched(QUARANTINE_PATCH):
                    self._on_quarantined(event)

    async def _record_facts(self, batch: FactBatch) -> RecordedBatch:
        """Write `batch` in one transaction: as a local activity first, for a workflow of the local-recording
        generation, then (when the database did not take it at once) as an activity, retried until it does.

        The local activity writes within the workflow task that made the facts: no activity task, no second
        workflow task. Its marker holds only its result, so the result echoes the facts, and the audit reads
        them there. Written twice (the local attempt timed out after its commit), a fact is written once.

        The marker is in the history once the task completes. A task that did not complete (a worker lost)
        runs again and writes the batch again, each fact with the later task's time: the database keeps the
        first write and the result echoes the facts as the database holds them, so the history and the read
        model agree (the workflow's own state keeps the later time). A completion refused is kept from this
        by `settled`.
        """
        if patched(LOCAL_RECORDING_PATCH):
            try:
                written: RecordedBatch = await workflow.execute_local_activity_method(
                    ReferralRecords.record_facts, batch,
                    start_to_close_timeout=LOCAL_RECORD_TIMEOUT, retry_policy=LOCAL_RECORD_ONCE,
                )
                self._written_locally_in = workflow.info().get_current_history_length()
                return written
            except FailureError as failed:
                # A local attempt's failure comes as the activity's own error (a refused connection) or a timeout,
                # not always wrapped as an activity's: any of them leaves the batch to the activity.
                if isinstance(failed, CancelledError):
                    raise
        return await workflow.execute_activity_method(
            ReferralRecords.record_facts, batch, start_to_close_timeout=RECORD_TIMEOUT, retry_policy=RECORD_RETRY,
        )
