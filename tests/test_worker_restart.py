"""A worker killed mid-lifecycle: a new worker carries the same referral on, and every fact is recorded once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.client import WorkflowUpdateStage

from starter.synthetic import SCREENER, approval, screening, strategy_discussion
from tests.conftest import TEST_DECISION_KEYS, TEST_KEYRING
from tests.helpers import eventually, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.models import ActionCompletion, CloseReason, ScreeningOutcome, Stage
from workflows.referral import ReferralWorkflow

ROOT = Path(__file__).resolve().parent.parent


def start_worker_process(address: str, dsn: str, task_queue: str, log: Path) -> subprocess.Popen:
    env = os.environ | {
        "TEMPORAL_ADDRESS": address,
        "DATABASE_URL": dsn,
        "TASK_QUEUE": task_queue,
        "LOG_FORMAT": "json",
        "ENCRYPTION_KEYS": TEST_KEYRING.to_json(),
        "DECISION_KEYS": TEST_DECISION_KEYS.to_json(),
    }
    return subprocess.Popen(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def test_worker_killed_mid_lifecycle_and_replaced(dev_env, pool, postgres_dsn, sla_policy, tmp_path):
    address = dev_env.client.service_client.config.target_host
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = start_worker_process(address, postgres_dsn, queue, log)
    try:
        submission, handle = await start_referral(dev_env.client, queue, sla_policy, seed=70)
        await handle.execute_update(ReferralWorkflow.review, approval())
        await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
        held_at = (await handle.query(ReferralWorkflow.state)).stage_entered_at
        # The discussion is accepted; the worker dies while it is being recorded.
        pending = await handle.start_update(
            ReferralWorkflow.record_strategy_discussion,
            strategy_discussion(held_at, section_47=False, actions=2),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

        worker = start_worker_process(address, postgres_dsn, queue, log)
        state = await asyncio.wait_for(pending.result(), timeout=60)
        assert state.stage is Stage.ACTIONS
        for action in state.actions:
            await dev_env.client.get_workflow_handle(action.action_id).execute_update(
                AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic completion.")
            )
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert result.close_reason is CloseReason.NO_SECTION_47
        # Same referral, same run: the new worker continued it rather than starting again.
        assert (await handle.describe()).run_id == handle.result_run_id
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=40) == 0, log.read_text()[-2000:]

    # Every fact exactly once, numbered without gaps, in the referral and in each action.
    streams = [handle.id] + [a.action_id for a in result.actions]
    for stream in streams:
        seqs = await eventually(
            lambda: pool.fetch("SELECT seq FROM referral_events WHERE stream = $1 ORDER BY seq", stream),
            lambda rows: len(rows) > 0,
        )
        assert [r["seq"] for r in seqs] == list(range(1, len(seqs) + 1))
    counts = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM referrals WHERE reference = $1) AS referrals,
             (SELECT count(*) FROM submission_versions WHERE reference = $1) AS versions,
             (SELECT count(*) FROM stage_transitions WHERE reference = $1) AS transitions,
             (SELECT count(*) FROM referral_events WHERE stream = $1 AND kind = 'stage_changed') AS stage_facts,
             (SELECT count(*) FROM strategy_discussions WHERE reference = $1) AS discussions,
             (SELECT count(*) FROM strategy_attendees WHERE reference = $1) AS attendees,
             (SELECT count(*) FROM agreed_actions WHERE reference = $1) AS actions,
             (SELECT count(*) FROM agreed_actions WHERE reference = $1 AND completed_at IS NOT NULL) AS completed""",
        handle.id,
    )
    assert dict(counts) == {
        "referrals": 1, "versions": 1, "transitions": 5, "stage_facts": 5, "discussions": 1,
        "attendees": 4, "actions": 2, "completed": 2,
    }
    transitions = await pool.fetch("SELECT to_stage FROM stage_transitions WHERE reference = $1 ORDER BY seq", handle.id)
    assert [t["to_stage"] for t in transitions] == [
        "supervisor_review", "screening", "strategy_discussion", "actions", "closed",
    ]
    assert "worker_started" in log.read_text()
