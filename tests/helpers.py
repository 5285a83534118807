"""Driving referrals in tests: start one, decide, and wait for what the workflow reports."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter.synthetic import OFFICER, synthetic_vist
from workflows.models import ReferralState, SlaPolicy, StartReferral, VistSubmission, referral_reference
from workflows.referral import ReferralWorkflow

LONDON = ZoneInfo("Europe/London")

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
    submission = submission or synthetic_vist(rng=random.Random(seed))
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


async def advance_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the test server's clock forward to `moment`."""
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def next_local(env: WorkflowEnvironment, weekday: int, hour: int, minute: int = 0, after_days: int = 1) -> datetime:
    """The next London-local `weekday` (Mon=0) at hour:minute, at least `after_days` from the server's now."""
    now = (await env.get_current_time()).astimezone(LONDON) + timedelta(days=after_days)
    day = now.date()
    while day.weekday() != weekday:
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
    from temporalio.client import WorkflowExecutionStatus

    while STARTED:
        handle = STARTED.pop()
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="test finished")
