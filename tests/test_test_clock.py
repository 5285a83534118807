"""The suite's own guard: what a test leaves open is terminated only when idle, and a held clock is named."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.helpers import STARTED, in_flight, terminate_open_referrals

BIN = Path(sys.executable).parent


async def test_a_workflow_terminated_mid_task_holds_the_clock_and_the_clean_up_names_it():
    # A server of its own: the session's clock must stay free for every other test.
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(BIN / "temporal-test-server"))
    try:
        # No worker polls this queue: the first workflow task stays scheduled.
        handle = await env.client.start_workflow("ReferralWorkflow", id="REF-CLOCK-HOLD1", task_queue="nobody-polls")
        assert await in_flight(handle)
        await handle.terminate(reason="terminated mid-task")
        assert not await in_flight(handle)
        with pytest.raises(AssertionError, match="left the test server's clock held"):
            await terminate_open_referrals(env, patience=timedelta(seconds=3))
    finally:
        STARTED.clear()
        await env.shutdown()
