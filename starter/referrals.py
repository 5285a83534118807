"""The referral workflow's client: its reference from the VIST form, starting it once per form, its decisions and its state."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from starter.workflow_client import WorkflowClient, WorkflowRefusal
from workflows.models import (
    REFERENCE_PATTERN,
    REFERENCE_PREFIX,
    ReferralState,
    RiskGrade,
    Stage,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow, first_deadline, opening_stage

REFERENCE = re.compile(rf"^{REFERENCE_PATTERN}$")
# Every ID of a referral's workflows and escalations opens with the referral's reference.
_LEADING_REFERENCE = re.compile(REFERENCE_PATTERN)


def reference_in(workflow_id: str) -> str | None:
    """The referral's reference at the start of its own ID, an agreed action's or an escalation's."""
    match = _LEADING_REFERENCE.match(workflow_id)
    return match.group() if match else None


class SubmissionConflict(WorkflowRefusal):
    """The form's ID already opened a referral, with other content."""


@dataclass(frozen=True)
class Intake:
    """A submitted form (a VIST, a partner's referral): its referral, where it stands, and whether this submission opened it."""

    reference: str
    stage: Stage
    risk: RiskGrade
    deadline: datetime | None
    created: bool


class Referrals(WorkflowClient[ReferralState]):
    workflow = ReferralWorkflow
    field = "reference"
    noun = "referral"
    closed = "stage: the referral is closed"
    id_pattern = REFERENCE
    example_id = f"{REFERENCE_PREFIX}XXXXX-XXXXX"
    state_type = ReferralState

    @staticmethod
    def workflow_id(form_id: uuid.UUID) -> str:
        """The referral's reference, made from its VIST form's ID alone: the same form finds the same referral."""
        return referral_reference(form_id)

    async def submit(self, start: StartReferral, task_queue: str) -> Intake:
        """Start the form's referral; the same form again finds it (created False).

        A finished referral's form cannot open a new one, and the form's ID with other
        content is SubmissionConflict.
        """
        submission = start.submission
        reference = self.workflow_id(submission.form_id)
        # The SLA clock runs from the form's receipt (the API's, or stamped here) signed with the start: the
        # answer's deadline is then known without asking Temporal when it accepted the start.
        if start.received_at is None:
            start = start.model_copy(update={"received_at": datetime.now(UTC)})
        try:
            handle = await self.client.start_workflow(
                ReferralWorkflow.run,
                start,
                id=reference,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            state = await self.state(reference)
            if state.form_id != submission.form_id or state.form_digest != submission.content_digest():
                raise SubmissionConflict("form_id: this form was already submitted with other content") from None
            return Intake(state.reference, state.stage, state.risk, state.deadline, created=False)
        # A new referral's answer is known from its start alone: it needs no worker and no second call to
        # Temporal, so a burst of forms is not answered behind one. (The workflow's clock is the receipt unless
        # this host's clock runs ahead of Temporal's; then it is the start's acceptance, a little earlier.)
        assert start.received_at is not None
        deadline = first_deadline(start, start.received_at)
        return Intake(handle.id, opening_stage(submission), submission.initial_risk, deadline, created=True)
