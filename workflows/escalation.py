"""The escalation ladder: one mechanism for every late step, a stage or an agreed action.

A step has a deadline that may move (a regrade tightens or relaxes it). When it passes,
the first rung is alerted; each further rung follows a grace period after the previous
one was raised, or after it was acknowledged if that is later. The step being done stops
the ladder. Deterministic: time comes only from `workflow.now()` and timers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.alerting import ADMINISTRATORS, AlertDispatch, recording_failed
    from workflows.authority import reject, require_rung_authority
    from workflows.calendar import add_duration
    from workflows.facts import EscalationAcknowledged, EscalationRaised, EscalationResolved, FactPayload, RecordedEvent
    from workflows.models import (
        Agency,
        Actor,
        Escalation,
        EscalationAcknowledgement,
        EscalationAlert,
        EscalationReason,
        EscalationResolution,
        Rank,
        SlaPolicy,
        SYSTEM_ACTOR,
        escalation_id_for,
    )


def next_rung_at(due_at: datetime, raised: list[Escalation], policy: SlaPolicy) -> datetime | None:
    """When the next rung of the ladder is due, or None when the ladder is exhausted."""
    if len(raised) >= len(policy.escalation.ladder):
        return None
    if not raised:
        return due_at
    previous = raised[-1]
    since = max(previous.raised_at, previous.acknowledged_at or previous.raised_at)
    return add_duration(since, policy.escalation.grace, policy)


def open_escalation(escalations: list[Escalation], ack: EscalationAcknowledgement, on: str) -> Escalation:
    """The escalation an acknowledgement names, if it is still open and the actor has its rung's authority."""
    escalation = unacknowledged(escalations, ack, on)
    require_rung_authority(ack.actor, escalation.rank, ack.as_named_addressee)
    return escalation


def unacknowledged(escalations: list[Escalation], ack: EscalationAcknowledgement, on: str) -> Escalation:
    escalation = next((e for e in escalations if e.escalation_id == ack.escalation_id), None)
    if escalation is None:
        raise reject(f"escalation_id: no such escalation on this {on}")
    if escalation.acknowledged_at is not None:
        raise reject("escalation_id: already acknowledged")
    if escalation.resolved_at is not None:
        raise reject("escalation_id: resolved when the referral closed; nothing is left to acknowledge")
    return escalation


def acknowledge(escalations: list[Escalation], ack: EscalationAcknowledgement, on: str) -> EscalationAcknowledged:
    """Mark the escalation acknowledged; the fact's payload.

    Authority is the validator's to check, not the handler's: acknowledgements recorded
    before the rung rule must replay as they were accepted.
    """
    escalation = unacknowledged(escalations, ack, on)
    escalation.acknowledged_by = ack.actor.id
    escalation.acknowledged_at = workflow.now()
    return EscalationAcknowledged(
        escalation_id=ack.escalation_id, rank=ack.actor.rank, as_named_addressee=ack.as_named_addressee
    )


class EscalationLadder:
    """Watches one step: waits for it to be done, raising rungs as its deadline passes."""

    def __init__(self, policy: SlaPolicy) -> None:
        self.policy = policy
        self.raised: list[Escalation] = []
        self._revision = 0

    def nudge(self) -> None:
        """The deadline or an acknowledgement changed: re-evaluate the timers now."""
        self._revision += 1

    def reset(self) -> None:
        self.raised = []
        self.nudge()

    def rank(self, rung: int) -> Rank:
        return self.policy.escalation.ladder[rung]

    async def watch(
        self,
        done: Callable[[], bool],
        deadline: Callable[[], datetime | None],
        raise_rung: Callable[[int, datetime], Escalation],
    ) -> None:
        """Return once `done()`; meanwhile raise each rung when it falls due."""
        while not done():
            due_at = deadline()
            when = next_rung_at(due_at, self.raised, self.policy) if due_at is not None else None
            seen = self._revision
            woken = lambda: done() or self._revision != seen  # noqa: E731
            if when is None:
                await workflow.wait_condition(woken)
                continue
            wait = when - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(woken, timeout=wait)
                    continue
                except TimeoutError:
                    pass
            if not done():
                self.raised.append(raise_rung(len(self.raised), due_at))


class EscalationBook:
    """The escalations one workflow raises: numbered under its ID, each kept, recorded as a fact, then delivered.

    Every workflow type keeps one book. It says who an escalation is addressed to and why;
    the book does the rest the same way for all of them, including telling the records
    administrators when one of the workflow's facts could not be recorded.
    """

    def __init__(
        self,
        owner: str,
        alerts: AlertDispatch,
        record: Callable[[FactPayload, Actor, Escalation], None],
        escalations: list[Escalation] | None = None,
        on_raised: Callable[[], None] | None = None,
    ) -> None:
        """`record` adds a fact about an escalation, by an actor, to the workflow's outbox; `on_raised` runs
        after each escalation is sent (an agreed action tells its referral)."""
        self.owner = owner
        self.escalations = escalations if escalations is not None else []
        self._alerts = alerts
        self._record = record
        self._on_raised = on_raised

    def raise_escalation(
        self,
        *,
        reference: str,
        subject: str,
        rung: int,
        rank: Rank,
        addressed_to: str,
        due_at: datetime,
        policy: SlaPolicy,
        reason: EscalationReason = "overdue",
        agency: Agency = Agency.POLICE,
        team: str | None = None,
        staff_id: str | None = None,
    ) -> Escalation:
        """Raise one rung for a late (or inquorate) step, alerting `agency`'s `team` chain, or the person `staff_id` names."""
        escalation = Escalation(
            escalation_id=self._next_id(),
            reference=reference,
            subject=subject,
            rung=rung,
            rank=rank,
            addressed_to=addressed_to,
            due_at=due_at,
            raised_at=workflow.now(),
            reason=reason,
        )
        self._keep(escalation, EscalationAlert(escalation=escalation, agency=agency, team=team, staff_id=staff_id), policy)
        workflow.logger.info(
            "escalation_raised",
            extra={
                "reference": reference, "escalation_id": escalation.escalation_id, "owner": self.owner,
                "subject": subject, "rung": rung, "rank": rank.value, "reason": reason,
            },
        )
        return escalation

    def recording_failed(self, event: RecordedEvent, policy: SlaPolicy) -> None:
        """A fact was quarantined: the administrators are alerted (the reason stays in the quarantine)."""
        escalation = recording_failed(self._next_id(), event, policy)
        if escalation is not None:
            alert = EscalationAlert(escalation=escalation, agency=Agency.POLICE, team=ADMINISTRATORS)
            self._keep(escalation, alert, policy)

    def awaiting_acknowledgement(self, reference: str | None = None) -> list[Escalation]:
        """The open escalations a decision can settle; a quarantined fact's stays the administrators' to re-apply."""
        return [
            e
            for e in self.escalations
            if e.open and e.reason != "recording_failed" and (reference is None or e.reference == reference)
        ]

    def resolve(self, escalations: list[Escalation], resolution: EscalationResolution) -> None:
        """Settle escalations nobody needs to acknowledge any more (the step was done, or the case closed)."""
        for escalation in escalations:
            escalation.resolved_at = workflow.now()
            escalation.resolution = resolution
            self._record(
                EscalationResolved(escalation_id=escalation.escalation_id, resolution=resolution), SYSTEM_ACTOR, escalation
            )

    def check_acknowledgement(self, ack: EscalationAcknowledgement, on: str) -> None:
        """The validator's check: the escalation is open and the actor holds its rung's authority."""
        open_escalation(self.escalations, ack, on)

    def acknowledge(self, ack: EscalationAcknowledgement, on: str) -> Escalation:
        """Mark the acknowledgement and record it; the escalation it settled."""
        acknowledged = acknowledge(self.escalations, ack, on)
        escalation = next(e for e in self.escalations if e.escalation_id == ack.escalation_id)
        self._record(acknowledged, ack.actor, escalation)
        return escalation

    def _next_id(self) -> str:
        return escalation_id_for(self.owner, len(self.escalations) + 1)

    def _keep(self, escalation: Escalation, alert: EscalationAlert, policy: SlaPolicy) -> None:
        self.escalations.append(escalation)
        self._record(EscalationRaised(escalation=escalation), SYSTEM_ACTOR, escalation)
        self._alerts.send(alert, policy)
        if self._on_raised is not None:
            self._on_raised()
