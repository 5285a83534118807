"""The SLA clock: a referral's deadlines run from its submission, and each stage from its decision's own time,
however late a busy or restarted worker gets to them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from runtime.proofs import DecisionSigner, update_message
from runtime.temporal import data_converter
from starter.synthetic import approval
from tests.conftest import TEST_DECISION_KEYS, TEST_KEYRING, make_worker
from tests.helpers import start_referral
from workflows.authority import REJECTION_TYPE
from workflows.calendar import add_duration
from workflows.models import Stage
from workflows.referral import ReferralWorkflow


def due(policy, stage: Stage, entered_at: datetime, risk) -> datetime:
    return add_duration(entered_at, policy.deadlines_for(stage).for_risk(risk), policy)


async def test_a_worker_that_starts_late_moves_no_deadline(dev_env, pool, settings, sla_policy, task_queue):
    # Submitted while no worker is running: the referral waits, its clock does not.
    _, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=1)
    accepted_at = (await handle.describe()).start_time
    await asyncio.sleep(2)
    worker_started = datetime.now(UTC)
    async with make_worker(dev_env.client, pool, settings, task_queue):
        state = await handle.query(ReferralWorkflow.state)
    assert state.submitted_at == accepted_at < worker_started
    assert state.deadline == due(sla_policy, Stage.SUPERVISOR_REVIEW, accepted_at, state.risk)

    # The sergeant approves while the worker is down: screening is due from the approval, not from its processing.
    sent = datetime.now(UTC)
    approving = asyncio.create_task(handle.execute_update(ReferralWorkflow.review, approval()))
    await asyncio.sleep(2)
    worker_started = datetime.now(UTC)
    async with make_worker(dev_env.client, pool, settings, task_queue):
        reviewed = await asyncio.wait_for(approving, timeout=60)
    assert reviewed.stage is Stage.SCREENING
    assert sent <= reviewed.stage_entered_at < worker_started
    assert reviewed.deadline == due(sla_policy, Stage.SCREENING, reviewed.stage_entered_at, reviewed.risk)


async def test_a_decision_dated_in_the_future_is_refused(time_env, time_queue, sla_policy):
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=2)
    # Signed with the API's own key, so only the time is wrong: a caller holding the key with a fast clock.
    plain = Client(time_env.client.service_client, namespace=time_env.client.namespace,
                   data_converter=data_converter(keyring=TEST_KEYRING))
    now = await time_env.get_current_time()
    early = approval().model_copy(update={"made_at": now + timedelta(hours=1)})
    proof = DecisionSigner(TEST_DECISION_KEYS).sign(handle.id, update_message("review"), "u-1", early)
    before = await handle.query(ReferralWorkflow.state)
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await plain.get_workflow_handle(handle.id).execute_update(
            ReferralWorkflow.review, early.model_copy(update={"proof": proof}), id="u-1"
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE
    assert cause.message == "made_at: is in the future"
    assert await handle.query(ReferralWorkflow.state) == before
