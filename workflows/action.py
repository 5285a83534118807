"""AgreedActionWorkflow: one action agreed at a meeting, tracked until its owner marks it done.

Its owner is reminded before the deadline; after it, the owner's supervisor is alerted and
the escalation ladder climbs. The action can be reassigned (recorded, with a new ladder for
the new owner) and is completed with a note. The referral hears of every change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.changes import ACTIONS_STARTED_TOGETHER, COMPLETION_BY_RESULT_PATCH, patched
    from workflows.alerting import AlertDispatch
    from workflows.calendar import add_duration
    from workflows.escalation import EscalationBook, EscalationLadder
    from workflows.models import (
        SYSTEM_ACTOR,
        ActionCompletion,
        ActionReassignment,
        ActionStart,
        ActionState,
        Actor,
        AgreedActionSpec,
        Escalation,
        EscalationAcknowledgement,
        SlaPolicy,
        agreed_action_id,
    )
    from workflows.facts import (
        ActionAgreed,
        ActionCompleted,
        ActionReassigned,
        ActionReminded,
        RecordedEvent,
    )
    from workflows.authority import (
        COMPLETERS_OF_ANY_AGENCY,
        COMPLETERS_OF_OWN_AGENCY,
        REASSIGNERS,
        reject,
        require,
    )
    from workflows.recording import Outbox



@workflow.defn
class AgreedActionWorkflow:
    @workflow.init
    def __init__(self, start: ActionStart) -> None:
        self._policy = start.policy
        self._action = ActionState(
            action_id=start.action_id,
            reference=start.reference,
            description=start.spec.description,
            owner=start.spec.owner,
            deadline=start.spec.deadline,
        )
        self._ladder = EscalationLadder(start.policy)
        self._owner_token = 0
        self._outbox = Outbox(stream=start.action_id, reference=start.reference, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._escalations = EscalationBook(
            start.action_id,
            self._alerts,
            record=lambda payload, actor, _: self._outbox.add(payload, actor),
            escalations=self._action.escalations,
            on_raised=self._tell_referral,
        )
        spec = start.spec
        agreed = ActionAgreed(description=spec.description, owner=spec.owner, deadline=spec.deadline)
        self._outbox.add(agreed, start.agreed_by)

    @workflow.run
    async def run(self, start: ActionStart) -> ActionState:
        parent = workflow.info().parent
        if parent is None or parent.workflow_id != start.reference or workflow.info().workflow_id != start.action_id:
            # Nothing is recorded: the outbox has not started writing.
            raise reject("parent: an agreed action is started only by the referral that agreed it")
        writer = asyncio.create_task(self._outbox.drain_forever())
        while not self._done():
            token = self._owner_token
            if self._action.reminded_at is None and workflow.now() < self._action.deadline:
                reminder_at = self._action.deadline - self._reminder_lead()
                wait = reminder_at - workflow.now()
                if wait > timedelta(0):
                    try:
                        await workflow.wait_condition(
                            lambda: self._done() or self._owner_token != token, timeout=wait
                        )
                        continue
                    except TimeoutError:
                        pass
                self._remind()
                continue
            await self._ladder.watch(
                done=lambda: self._done() or self._owner_token != token,
                deadline=lambda: self._action.deadline,
                raise_rung=self._raise_escalation,
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        return self._action

    @workflow.query
    def state(self) -> ActionState:
        return self._action

    @workflow.update
    async def complete(self, completion: ActionCompletion) -> ActionState:
        self._action.completed_at = workflow.now()
        self._action.completed_by = completion.actor.id
        self._action.completion_note = completion.note
        self._outbox.add(ActionCompleted.of(completion), completion.actor)
        if patched(COMPLETION_BY_RESULT_PATCH):
            await self._outbox.recorded()
            return self._action
        return await self._changed()

    @complete.validator
    def _check_complete(self, completion: ActionCompletion) -> None:
        actor = completion.actor
        require(actor, COMPLETERS_OF_OWN_AGENCY, "complete an agreed action")
        if actor.role not in COMPLETERS_OF_ANY_AGENCY and actor.agency is not self._action.owner.agency:
            raise reject(
                f"actor.agency: {actor.agency.value} staff may not complete an action owned by "
                f"{self._action.owner.agency.value}"
            )
        self._check_open()

    @workflow.update
    async def reassign(self, reassignment: ActionReassignment) -> ActionState:
        previous = self._action.owner
        self._action.owner = reassignment.owner
        if reassignment.deadline is not None:
            self._action.deadline = reassignment.deadline
        self._action.reassignments += 1
        self._action.reminded_at = None
        self._owner_token += 1
        self._ladder.reset()
        self._outbox.add(ActionReassigned.of(reassignment, from_owner=previous), reassignment.actor)
        return await self._changed()

    @reassign.validator
    def _check_reassign(self, reassignment: ActionReassignment) -> None:
        require(reassignment.actor, REASSIGNERS, "reassign an agreed action")
        self._check_open()
        if reassignment.deadline is not None and reassignment.deadline <= workflow.now():
            raise reject("deadline: a new deadline must be in the future")
        # The same reassignment twice (a retry, a second click) changes nothing the second time.
        if reassignment.owner == self._action.owner and reassignment.deadline in (None, self._action.deadline):
            raise reject("owner: the action is already assigned to this owner with this deadline")

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> ActionState:
        self._escalations.acknowledge(ack, "action")
        self._ladder.nudge()
        return await self._changed()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "action")

    # --- the mechanics -------------------------------------------------------------

    def _done(self) -> bool:
        return self._action.completed_at is not None

    def _check_open(self) -> None:
        if self._done():
            raise reject("action_id: the action is already complete")

    def _reminder_lead(self) -> timedelta:
        reminder_at = add_duration(workflow.now(), self._policy.action_reminder_before, self._policy)
        return reminder_at - workflow.now()

    def _remind(self) -> None:
        self._action.reminded_at = workflow.now()
        self._outbox.add(ActionReminded(owner=self._action.owner), SYSTEM_ACTOR)
        self._tell_referral()

    def _raise_escalation(self, rung: int, due_at: datetime) -> Escalation:
        rank = self._ladder.rank(rung)
        owner = self._action.owner
        first = owner.supervisor or f"supervisor of {owner.owner}"
        # The owner's own agency hears of it: a partner's late action goes up that partner's chain.
        return self._escalations.raise_escalation(
            reference=self._action.reference,
            subject=self._action.action_id,
            rung=rung,
            rank=rank,
            addressed_to=f"{first} ({owner.agency.value})" if rung == 0 else f"{rank.value} ({owner.agency.value})",
            due_at=due_at,
            policy=self._policy,
            agency=owner.agency,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        self._escalations.recording_failed(event, self._policy)

    async def _changed(self) -> ActionState:
        self._tell_referral()
        await self._outbox.recorded()
        return self._action

    def _tell_referral(self) -> None:
        parent = workflow.info().parent
        if parent is not None:
            handle = workflow.get_external_workflow_handle(parent.workflow_id)
            # Fire and forget: the referral also receives the final state as this workflow's result.
            asyncio.create_task(self._signal(handle))

    async def _signal(self, handle: workflow.ExternalWorkflowHandle) -> None:
        try:
            await handle.signal("action_updated", self._action)
        except Exception:  # the referral may already be closed; it has the result then
            workflow.logger.info(
                "action_update_not_taken",
                extra={"reference": self._action.reference, "action_id": self._action.action_id},
            )


# --- what a case (a referral, a missing episode) does with the actions it agrees ---------------


def register_action(actions: dict[str, ActionState], reference: str, spec: AgreedActionSpec) -> tuple[str, AgreedActionSpec]:
    """Number the case's next action and hold its state at once, so a validator sees it before it starts."""
    action_id = agreed_action_id(reference, len(actions) + 1)
    actions[action_id] = ActionState(
        action_id=action_id, reference=reference, description=spec.description, owner=spec.owner, deadline=spec.deadline
    )
    return action_id, spec


async def start_action(
    reference: str, action_id: str, spec: AgreedActionSpec, actor: Actor, policy: SlaPolicy
) -> workflow.ChildWorkflowHandle:
    """The action's own workflow, a child of its case's, under the case's policy."""
    start = ActionStart(
        action_id=action_id, reference=reference, spec=spec, agreed_by=actor, agreed_at=workflow.now(), policy=policy
    )
    return await workflow.start_child_workflow(AgreedActionWorkflow.run, start, id=action_id)


async def start_actions(
    reference: str,
    agreed: list[tuple[str, AgreedActionSpec]],
    actor: Actor,
    policy: SlaPolicy,
    follow: Callable[[str, workflow.ChildWorkflowHandle], None],
) -> None:
    """Start the actions a decision agreed, each handed to `follow` once started: all in one workflow task
    (a history from before this change started them one after another, a task each)."""
    if patched(ACTIONS_STARTED_TOGETHER):
        handles = await asyncio.gather(*(start_action(reference, action_id, spec, actor, policy) for action_id, spec in agreed))
        for (action_id, _), handle in zip(agreed, handles, strict=True):
            follow(action_id, handle)
        return
    for action_id, spec in agreed:
        follow(action_id, await start_action(reference, action_id, spec, actor, policy))


def reported_change(actions: dict[str, ActionState], action: ActionState) -> None:
    """Take an action's signalled change, for an action the case agreed and has not seen finish.

    A signal cannot prove its sender: it never completes an action (the action's result does that).
    """
    known = actions.get(action.action_id)
    if known is None or known.completed_at is not None:
        return
    actions[action.action_id] = action.model_copy(
        update={"reference": known.reference, "completed_at": None, "completed_by": None, "completion_note": None}
    )


if __name__ == "__main__":
    raise SystemExit("AgreedActionWorkflow runs inside a worker: start one with `python worker.py`")
