"""TriggerPlanWorkflow: one child's trigger plan, kept for as long as the child needs one, and never let go stale.

One workflow per child (its ID a keyed digest of the child's identity key), owned by a named
social worker. Each revision is a new version; the old ones are kept. Police add what they learn
at once (a police addendum) and may ask the social worker to fold it in: an agreed action owned by
children's social care, with a deadline, tracked like any other. Once the plan's review date
passes without a new version, the social worker's manager is alerted and the escalation ladder
climbs. A plan lives for years: when its history grows long it continues as new, carrying its state.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.policy import SlaPolicySource
    from activities.proofs import StartProofs
    from workflows.action import register_action, reported_change, start_actions
    from workflows.alerting import AlertDispatch
    from workflows.authority import (
        ADDENDUM_WRITERS,
        PLAN_WRITERS,
        reject,
        require,
        require_agency,
    )
    from workflows.calendar import add_duration
    from workflows.escalation import EscalationBook, EscalationLadder
    from workflows.facts import (
        FactPayload,
        PoliceAddendumAdded,
        RecordedEvent,
        TriggerPlanEnded,
        TriggerPlanWritten,
    )
    from workflows.models import (
        ActionState,
        Actor,
        Agency,
        AgreedActionSpec,
        Escalation,
        EscalationAcknowledgement,
        HistoryEntry,
        ProofVerdict,
        SlaPolicy,
    )
    from workflows.plan_models import (
        PLAN_REVIEW,
        AddendumState,
        CarriedPlan,
        PlanEnding,
        PlanRevision,
        PlanStartProofCheck,
        PlanVersion,
        PoliceAddendum,
        StartTriggerPlan,
        TriggerPlanState,
        review_date_problem,
    )
    from workflows.recording import Outbox

ACTIVITY_TIMEOUT = timedelta(seconds=30)
WRITE_PLAN = "write a trigger plan"


@workflow.defn
class TriggerPlanWorkflow:
    @workflow.init
    def __init__(self, start: StartTriggerPlan) -> None:
        self._plan_id = workflow.info().workflow_id
        self._policy: SlaPolicy | None = start.sla_policy
        self._outbox = Outbox(stream=self._plan_id, reference=self._plan_id, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._actions: dict[str, ActionState] = {}
        self._action_tasks: list[asyncio.Task[None]] = []
        escalations: list[Escalation]
        if start.carried is not None:
            carried = start.carried.state
            self._versions = list(carried.versions)
            self._addenda = list(carried.addenda)
            escalations = list(carried.escalations)
            self._history = list(carried.history)
            self._actions = {a.action_id: a for a in carried.actions}
            self._ended_at = carried.ended_at
            self._outbox.last_seq = self._outbox.recorded_seq = start.carried.last_seq
        else:
            self._versions = [PlanVersion(version=1, plan=start.plan, written_by=start.written_by.id,
                                          written_at=workflow.now())]
            self._addenda: list[AddendumState] = []
            escalations = []
            self._history: list[HistoryEntry] = []
            self._ended_at: datetime | None = None
        self._escalations = EscalationBook(
            self._plan_id, self._alerts, record=lambda payload, actor, _: self._fact(payload, actor), escalations=escalations
        )
        if start.carried is None:
            self._fact(TriggerPlanWritten(version=1, plan=start.plan, child=start.child), start.written_by)
        self._ladder = self._ladder_for(start.sla_policy)

    @workflow.run
    async def run(self, start: StartTriggerPlan) -> None:
        """Runs for as long as the child is known (an ended plan waits to be brought back), continuing as new."""
        if start.carried is None:
            # Before any fact is written: a refused start leaves no record behind.
            self._check_writer(start.written_by)
            await self._check_start_proof(start)
        elif workflow.info().continued_run_id is None:
            raise reject("carried: a plan carries its state only into its own next run")
        if self._policy is None:
            self._policy = await workflow.execute_activity_method(
                SlaPolicySource.load_sla_policy, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            self._ladder = self._ladder_for(self._policy)
        if start.carried is None:
            problem = review_date_problem(start.plan, workflow.now(), self._policy)
            if problem is not None:
                raise reject(problem)  # the writer has not started: nothing is recorded
        writer = asyncio.create_task(self._outbox.drain_forever())
        assert self._ladder is not None
        watched = self._current.version
        while True:
            while not self._long():
                if self._current.version != watched:
                    # A new version has its own review date: its ladder starts from the first rung.
                    watched = self._current.version
                    self._ladder.reset()
                if self._ended_at is not None:
                    # An ended plan is not reviewed; a new version brings it back.
                    await workflow.wait_condition(lambda: self._ended_at is None or self._long())
                    continue
                await self._ladder.watch(
                    done=lambda: self._current.version != watched or self._ended_at is not None or self._long(),
                    deadline=lambda: self._current.plan.review_by,
                    raise_rung=self._raise_escalation,
                )
            await workflow.wait_condition(workflow.all_handlers_finished)
            # A decision taken meanwhile may have agreed an action: the plan goes on until it is done.
            if self._long():
                break
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        carried = CarriedPlan(state=self.state(), last_seq=self._outbox.last_seq)
        workflow.continue_as_new(start.model_copy(update={"carried": carried}))

    def _ladder_for(self, policy: SlaPolicy | None) -> EscalationLadder | None:
        """The review's ladder, with the rungs already raised for the current version (a carried plan's too)."""
        if policy is None:
            return None
        ladder = EscalationLadder(policy)
        written = self._current.written_at
        ladder.raised = [e for e in self._escalations.escalations if e.subject == PLAN_REVIEW and e.raised_at >= written]
        return ladder

    def _long(self) -> bool:
        """Time to continue as new: a long history, with no agreed action or decision of this run still open."""
        return (
            workflow.info().is_continue_as_new_suggested()
            and all(a.completed_at is not None for a in self._actions.values())
            and self._outbox.drained
        )

    async def _check_start_proof(self, start: StartTriggerPlan) -> None:
        """A start without the API's proof of its writer fails here, before any fact is written."""
        verdict: ProofVerdict = await workflow.execute_activity_method(
            StartProofs.check_plan_start_proof,
            PlanStartProofCheck(workflow_id=self._plan_id, workflow_type=workflow.info().workflow_type, start=start),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        if verdict.refusal is not None:
            raise reject(verdict.refusal)

    @property
    def _current(self) -> PlanVersion:
        return self._versions[-1]

    # --- queries ----------------------------------------------------------------------

    @workflow.query
    def state(self) -> TriggerPlanState:
        return TriggerPlanState(
            plan_id=self._plan_id,
            current=self._current,
            versions=list(self._versions),
            addenda=list(self._addenda),
            review_overdue=bool(self._ladder and self._ladder.raised),
            ended_at=self._ended_at,
            actions=list(self._actions.values()),
            escalations=list(self._escalations.escalations),
            history=list(self._history),
        )

    # --- decisions --------------------------------------------------------------------

    @workflow.update
    async def revise(self, revision: PlanRevision) -> TriggerPlanState:
        version = PlanVersion(
            version=self._current.version + 1, plan=revision.plan, written_by=revision.actor.id,
            written_at=workflow.now(),
        )
        self._versions.append(version)
        self._ended_at = None
        for addendum in self._addenda:
            if addendum.number in revision.folds_in:
                addendum.folded_into = version.version
        self._fact(TriggerPlanWritten(version=version.version, plan=revision.plan, folds_in=revision.folds_in),
                   revision.actor)
        return await self._recorded_state()

    @revise.validator
    def _check_revise(self, revision: PlanRevision) -> None:
        self._check_registered()
        self._check_writer(revision.actor)
        assert self._policy is not None
        problem = review_date_problem(revision.plan, workflow.now(), self._policy)
        if problem is not None:
            raise reject(problem)
        waiting = {a.number for a in self._addenda if a.folded_into is None}
        for index, number in enumerate(revision.folds_in):
            if number not in waiting:
                raise reject(f"folds_in[{index}]: no police addendum {number} waits to be folded in")

    @workflow.update
    async def add_police_addendum(self, addendum: PoliceAddendum) -> TriggerPlanState:
        assert self._policy is not None
        number = len(self._addenda) + 1
        agreed: list[tuple[str, AgreedActionSpec]] = []
        if addendum.fold_in:
            due = add_duration(workflow.now(), self._policy.missing.police_addendum_fold_in, self._policy)
            spec = AgreedActionSpec(
                description=f"Fold police addendum {number} into the trigger plan",
                owner=self._current.plan.owner,
                deadline=due,
            )
            agreed.append(self._register_action(spec))
        action_id = agreed[0][0] if agreed else None
        self._addenda.append(AddendumState(number=number, information=addendum.information,
                                           added_by=addendum.actor.id, added_at=workflow.now(),
                                           fold_in_action_id=action_id))
        self._fact(PoliceAddendumAdded(number=number, information=addendum.information, fold_in_action_id=action_id),
                   addendum.actor)
        await self._start_actions(addendum.actor, agreed)
        return await self._recorded_state()

    @add_police_addendum.validator
    def _check_add_police_addendum(self, addendum: PoliceAddendum) -> None:
        self._check_open()
        require(addendum.actor, ADDENDUM_WRITERS, "add a police addendum to a trigger plan")
        require_agency(addendum.actor, Agency.POLICE, "add a police addendum to a trigger plan")

    @workflow.update
    async def end(self, ending: PlanEnding) -> TriggerPlanState:
        self._ended_at = workflow.now()
        self._fact(TriggerPlanEnded(reason=ending.reason), ending.actor)
        return await self._recorded_state()

    @end.validator
    def _check_end(self, ending: PlanEnding) -> None:
        self._check_open()
        self._check_writer(ending.actor)
        if any(a.completed_at is None for a in self._actions.values()):
            raise reject("plan_id: the plan has agreed actions still open; they are completed first")

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> TriggerPlanState:
        self._escalations.acknowledge(ack, "trigger plan")
        if self._ladder is not None:
            self._ladder.nudge()
        return await self._recorded_state()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "trigger plan")

    @workflow.signal
    def action_updated(self, action: ActionState) -> None:
        """A fold-in action reports a change (reminder, escalation, reassignment); never its completion (its result does)."""
        reported_change(self._actions, action)

    # --- the mechanics ----------------------------------------------------------------

    def _check_registered(self) -> None:
        if self._policy is None:
            raise reject("plan_id: the plan is still being registered; try again shortly")

    def _check_open(self) -> None:
        self._check_registered()
        if self._ended_at is not None:
            raise reject("plan_id: the plan has ended; a new version brings it back")

    @staticmethod
    def _check_writer(actor: Actor) -> None:
        require(actor, PLAN_WRITERS, WRITE_PLAN)
        require_agency(actor, Agency.CHILDRENS_SOCIAL_CARE, WRITE_PLAN)

    def _fact(self, payload: FactPayload, actor: Actor) -> None:
        """Record a fact; a decision (by the registry) joins the plan's decision history."""
        fact = self._outbox.add(payload, actor)
        if fact.entry.decision:
            self._history.append(
                HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=actor.id, actor_role=actor.role)
            )

    def _raise_escalation(self, rung: int, due_at: datetime) -> Escalation:
        """The review is late: the social worker's manager first, then the ladder's ranks, in children's social care."""
        assert self._ladder is not None
        rank = self._ladder.rank(rung)
        owner = self._current.plan.owner
        return self._escalations.raise_escalation(
            reference=self._plan_id,
            subject=PLAN_REVIEW,
            rung=rung,
            rank=rank,
            addressed_to=f"{owner.supervisor} ({owner.agency.value})" if rung == 0 else f"{rank.value} ({owner.agency.value})",
            due_at=due_at,
            policy=self._ladder.policy,
            agency=owner.agency,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        self._escalations.recording_failed(event, self._policy or SlaPolicy())

    def _register_action(self, spec: AgreedActionSpec) -> tuple[str, AgreedActionSpec]:
        return register_action(self._actions, self._plan_id, spec)

    async def _start_actions(self, actor: Actor, agreed: list[tuple[str, AgreedActionSpec]]) -> None:
        assert self._policy is not None
        if agreed:
            # The plan's facts first: an action's first fact names the plan, which must be recorded already.
            await self._outbox.recorded()
        await start_actions(self._plan_id, agreed, actor, self._policy, self._following)

    def _following(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._action_tasks.append(asyncio.create_task(self._follow(action_id, handle)))

    async def _follow(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._actions[action_id] = await handle

    async def _recorded_state(self) -> TriggerPlanState:
        """Return to the caller only once the decision is in PostgreSQL."""
        await self._outbox.recorded()
        return self.state()


if __name__ == "__main__":
    raise SystemExit("TriggerPlanWorkflow runs inside a worker: start one with `python worker.py`")
