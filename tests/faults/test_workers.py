"""Three workers on one task queue (`WORKERS=3 make run`): they share the load, and one killed mid-run stalls no referral."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timezone

import httpx
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus

from tests.faults.ledger import Ledger, Referrals
from tests.faults.running_stack import CONDITION_TIMEOUT, alive, running

REFERRALS = 6
WORKERS = ("worker", "worker-2", "worker-3")


def identity(pid: int) -> str:
    """The identity a worker process gives Temporal by default (the SDK's `pid@host`)."""
    return f"{pid}@{socket.gethostname()}"


def task_identity(event: HistoryEvent) -> str | None:
    """The worker that completed a workflow task or started an activity task, from its history event."""
    if event.HasField("workflow_task_completed_event_attributes"):
        return event.workflow_task_completed_event_attributes.identity
    if event.HasField("activity_task_started_event_attributes"):
        return event.activity_task_started_event_attributes.identity
    return None


async def completed(client: Client, reference: str) -> bool:
    return (await client.get_workflow_handle(reference).describe()).status is WorkflowExecutionStatus.COMPLETED


async def test_three_workers_share_the_load_and_a_killed_one_stalls_no_referral() -> None:
    with running({"WORKERS": "3"}) as stack:
        pids = {name: stack.pid(name) for name in WORKERS}
        assert len(set(pids.values())) == 3 and all(alive(pid) for pid in pids.values())
        assert "polled by 3 worker(s)" in stack.output()

        async with httpx.AsyncClient(base_url=stack.api_url, timeout=CONDITION_TIMEOUT) as http:
            api = Referrals(stack, http, Ledger(), seed="three-workers")
            references = [await api.submit() for _ in range(REFERRALS)]
            await asyncio.gather(*(api.review(reference) for reference in references))
            # Each referral is now cached on the worker that ran it last; one worker dies as the closing decisions go.
            closing = asyncio.gather(*(api.close(reference) for reference in references))
            while api.ledger.in_flight == 0:
                await asyncio.sleep(0)
            killed_at = datetime.now(timezone.utc)
            stack.kill("worker-2")
            closed = await asyncio.wait_for(closing, CONDITION_TIMEOUT)
        assert [state["stage"] for state in closed] == ["closed"] * REFERRALS

        # Histories' identities only: no payload is opened, so the plain client needs no key.
        client = await Client.connect(stack.temporal_address)
        deadline = asyncio.get_running_loop().time() + CONDITION_TIMEOUT
        while not all([await completed(client, reference) for reference in references]):
            assert asyncio.get_running_loop().time() < deadline, "a referral's workflow did not complete"
            await asyncio.sleep(0.5)

        events = [e for reference in references for e in (await client.get_workflow_handle(reference).fetch_history()).events]
        by_worker = {name: [e for e in events if task_identity(e) == identity(pid)] for name, pid in pids.items()}
        # The load was shared: each of the three workers ran some of these referrals' tasks.
        assert all(by_worker.values()), {name: len(tasks) for name, tasks in by_worker.items()}
        # The two that lived on carried the referrals on after the third died.
        survivors = {identity(pids["worker"]), identity(pids["worker-3"])}
        after_kill = [e for e in events if task_identity(e) in survivors and e.event_time.ToDatetime(timezone.utc) > killed_at]
        assert after_kill
