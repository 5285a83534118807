"""Driving referrals in tests: start one, decide, and wait for what the workflow reports."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import EventType, PendingActivityState
import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from starter.synthetic import OFFICER, synthetic_vist
from workflows.action import AgreedActionWorkflow
from workflows.models import ReferralState, SlaPolicy, StartReferral, VistSubmission, referral_reference
from workflows.referral import ReferralWorkflow

LONDON = ZoneInfo("Europe/London")

# How long a refusal may take: it comes from the validator, before anything is written.
REFUSAL_WAIT = 15

# Referrals started by the current test; whatever is still open is terminated after it, so no
# workflow is left waiting on a task queue nobody polls (that would stop time skipping).
STARTED: list[WorkflowHandle] = []


async def start_referral(
    client: Client,
    task_queue: str,
    sla_policy: SlaPolicy,
    submission: VistSubmission | None = None,
    seed: int | None = None,
) -> tuple[VistSubmission, WorkflowHandle]:
    if submission is None:
        # Seeds are per test file, so two files' "seed 90" never make the same form (and reference).
        test_file = os.environ.get("PYTEST_CURRENT_TEST", "").split("::", 1)[0]
        submission = synthetic_vist(rng=random.Random(f"{test_file}:{seed}"))
    handle = await client.start_workflow(
        ReferralWorkflow.run,
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy),
        id=referral_reference(submission.form_id),
        task_queue=task_queue,
    )
    STARTED.append(handle)
    return submission, handle


async def eventually(probe: Callable, check: Callable, timeout: float = 10.0):
    """Poll `probe()` (sync or async) until `check(value)` holds; return the value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.1)


async def state_when(handle: WorkflowHandle, check: Callable[[ReferralState], bool], timeout: float = 10.0) -> ReferralState:
    return await eventually(lambda: handle.query(ReferralWorkflow.state), check, timeout)


async def refused(
    handle: WorkflowHandle, update: Callable, decision: object, expected: str, referral: WorkflowHandle | None = None
) -> None:
    """The update is refused with `expected` in its message, and the referral is exactly as it was.

    For an agreed action's update, `handle` is the action's and `referral` its referral's: both stay as they were.
    """

    async def states() -> tuple[object, ...]:
        if referral is None:
            return (await handle.query(ReferralWorkflow.state),)
        return await handle.query(AgreedActionWorkflow.state), await referral.query(ReferralWorkflow.state)

    before = await states()
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        # A decision taken instead of refused may leave the workflow stuck: the test fails rather than hangs.
        await asyncio.wait_for(handle.execute_update(update, decision), timeout=REFUSAL_WAIT)
    assert expected in str(caught.value.cause), str(caught.value.cause)
    assert await states() == before


async def advance_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to `moment`."""
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def next_local(
    env: WorkflowEnvironment,
    weekday: int,
    hour: int,
    minute: int = 0,
    after_days: int = 1,
    avoiding: Collection[date] = (),
) -> datetime:
    """The next London-local `weekday` (Mon=0) at hour:minute, at least `after_days` from the
    server's now, and at least four days clear of any date in `avoiding` (bank holidays)."""
    now = (await env.get_current_time()).astimezone(LONDON) + timedelta(days=after_days)
    day = now.date()
    while day.weekday() != weekday or any(abs((day - other).days) <= 4 for other in avoiding):
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


async def finished(env: WorkflowEnvironment, handle: WorkflowHandle) -> ReferralState:
    """The workflow's result, without letting the time-skipping server race the clock ahead.

    Awaiting a result normally unlocks time skipping, and the test server then jumps to its
    far-future timeouts while activities are still writing; the tests move time themselves.
    """
    with env.auto_time_skipping_disabled():
        return await handle.result()


async def terminate_open_referrals() -> None:
    """Terminate what the test left open, once no activity of it is mid-flight.

    Terminating a workflow while one of its activities (or a workflow task) runs leaves the
    time-skipping test server holding its clock for it, so every later time skip would hang.
    """
    while STARTED:
        handle = STARTED.pop()
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await eventually(lambda: activities_running(handle), lambda running: not running, timeout=15)
            try:
                await handle.terminate(reason="test finished")
            except RPCError:
                # Its last activity was what it waited for: it may have finished meanwhile.
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    raise


async def activities_running(handle: WorkflowHandle) -> bool:
    """Whether the workflow, or any of its agreed actions, has an activity or a workflow task running now."""
    description = (await handle.describe()).raw_description
    if any(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in description.pending_activities):
        return True
    # Terminated mid-task, a workflow leaves the time-skipping server holding its clock just the same
    # (that server's description has no pending workflow task: the history's last event tells).
    last = [event async for event in handle.fetch_history_events()][-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        return True
    for child in description.pending_children:
        if await activities_running(handle._client.get_workflow_handle(child.workflow_id)):
            return True
    return False
