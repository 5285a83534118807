"""The agreed action workflow's client: its ID from its referral's, its decisions and its state (its referral starts it)."""

from __future__ import annotations

import re

from starter.referrals import Referrals
from starter.workflow_client import WorkflowClient
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ACTION_ID_PATTERN,
    ActionState,
    agreed_action_id,
)

ACTION_ID = re.compile(rf"^{ACTION_ID_PATTERN}$")


class AgreedActions(WorkflowClient[ActionState]):
    workflow = AgreedActionWorkflow
    field = "action_id"
    noun = "agreed action"
    closed = "action_id: the action is already complete"
    id_pattern = ACTION_ID
    example_id = agreed_action_id(Referrals.example_id, 1)
    state_type = ActionState

    @staticmethod
    def workflow_id(reference: str, number: int) -> str:
        """The `number`th agreed action (from 1) of the referral `reference`, as its referral names it."""
        return agreed_action_id(reference, number)
