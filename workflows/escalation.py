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
    from workflows.authority import reject, require_rung_authority
    from workflows.calendar import add_duration
    from workflows.facts import EscalationAcknowledged
    from workflows.models import Escalation, EscalationAcknowledgement, Rank, SlaPolicy


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
