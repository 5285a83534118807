"""The trigger plan workflow's client: one plan per child (its ID a keyed digest of the child's identity key), its decisions and its state."""

from __future__ import annotations

import re

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from starter.workflow_client import WorkflowClient, WorkflowRefusal
from workflows.missing_models import MissingChild
from workflows.models import PLAN_PATTERN, PLAN_PREFIX, identity_key, trigger_plan_id
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import StartTriggerPlan, TriggerPlanState

PLAN_ID = re.compile(rf"^{PLAN_PATTERN}$")


class PlanExists(WorkflowRefusal):
    """The child already has a trigger plan: it is revised, never written twice."""

    def __init__(self, plan_id: str) -> None:
        super().__init__("child: this child already has a trigger plan; revise it")
        self.plan_id = plan_id


class TriggerPlans(WorkflowClient[TriggerPlanState]):
    workflow = TriggerPlanWorkflow
    field = "plan_id"
    noun = "trigger plan"
    closed = "plan_id: the plan's workflow has finished"
    id_pattern = PLAN_ID
    example_id = f"{PLAN_PREFIX}XXXXX-XXXXX"
    state_type = TriggerPlanState

    @staticmethod
    def workflow_id(child: MissingChild, secret: bytes) -> str:
        """The child's plan's ID: keyed by `secret`, so it cannot be matched against a guessed name and date of birth."""
        return trigger_plan_id(identity_key(child.name, child.date_of_birth), secret)

    async def write(self, start: StartTriggerPlan, task_queue: str, secret: bytes) -> TriggerPlanState:
        """Start the child's plan, its first version; a child who has one already is PlanExists (revise it)."""
        plan_id = self.workflow_id(start.child, secret)
        try:
            await self.client.start_workflow(
                TriggerPlanWorkflow.run,
                start,
                id=plan_id,
                task_queue=task_queue,
                # A start refused before it recorded anything may be made again; a running plan may not.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            raise PlanExists(plan_id) from None
        return await self.state(plan_id)
