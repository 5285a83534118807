"""Only payloads sealed by a key in the keyring are taken: plaintext, an unknown key or a bad tag is refused.

On the real dev server, through Temporal's own CLI, as someone who reaches the frontend
without the keyring would: a plaintext start fails at once and records nothing, a plaintext
update is rejected without a trace in the history, a plaintext signal changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import random

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from runtime.codec import UNSEALED_TYPE, EncryptionCodec, Keyring, refusal
from runtime.temporal import DATA_CONVERTER, data_converter
from audit.reconcile import reconcile
from starter.synthetic import OFFICER, SERGEANT, approval, synthetic_vist
from tests.conftest import BIN, SIGNING, TEST_KEYRING, make_worker
from tests.helpers import in_flight, eventually, start_referral
from workflows.models import StartReferral, Stage, referral_reference
from workflows.referral import ReferralWorkflow

TEMPORAL_CLI = BIN / "temporal"


def address(client: Client) -> str:
    return client.service_client.config.target_host


async def temporal_cli(client: Client, *args: str) -> tuple[int, str]:
    """Temporal's own CLI with no codec and no keyring (plaintext JSON payloads): its exit code and output.

    Run without blocking the event loop, where the tests' worker is serving the workflow.
    """
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL_CLI), *args, "--address", address(client), "--namespace", client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, output.decode()


async def rows_for(pool: asyncpg.Pool, reference: str) -> int:
    return await pool.fetchval(
        "SELECT (SELECT count(*) FROM referrals WHERE reference = $1)"
        " + (SELECT count(*) FROM referral_events WHERE reference = $1)",
        reference,
    )


async def event_types(handle: WorkflowHandle) -> list[int]:
    return [event.event_type for event in (await handle.fetch_history()).events]


async def settled(handle: WorkflowHandle, pool: asyncpg.Pool) -> list[int]:
    """The history once the referral is waiting for a person: its facts written, no activity running."""
    await eventually(lambda: rows_for(pool, handle.id), lambda rows: rows >= 3, timeout=30)
    await eventually(lambda: in_flight(handle), lambda running: not running, timeout=30)
    # No workflow task pending: the last task completed, with or without commands after it (its markers, the
    # ladder's timer).
    tasks = (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
             EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
             EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
    return await eventually(
        lambda: event_types(handle),
        lambda types: [t for t in types if t in tasks][-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    )


async def test_a_plaintext_start_fails_at_once_and_records_nothing(dev_env, pool, settings, task_queue):
    submission = synthetic_vist(rng=random.Random("plaintext start"))
    reference = referral_reference(submission.form_id)
    body = StartReferral(submission=submission, submitted_by=OFFICER).model_dump_json()
    async with make_worker(dev_env.client, pool, settings, task_queue):
        code, output = await temporal_cli(
            dev_env.client, "workflow", "start", "--type", "ReferralWorkflow", "--task-queue", task_queue,
            "--workflow-id", reference, "--input", body,
        )
        assert code == 0, output
        handle = dev_env.client.get_workflow_handle(reference)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == UNSEALED_TYPE and cause.non_retryable
    assert "the payload is not sealed (plaintext)" in cause.message
    assert submission.children[0].name not in cause.message
    # It failed in its first workflow task: no task failed and was retried.
    assert await event_types(handle) == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    ]
    assert await rows_for(pool, reference) == 0
    # The audit names it as refused, and the rest of the reconciliation goes on.
    report = await reconcile(dev_env.client, pool, references=[reference])
    assert report.refused == [reference] and report.passed


async def test_plaintext_updates_and_signals_leave_the_referral_as_it_was(dev_env, pool, settings, task_queue, sla_policy):
    async with make_worker(dev_env.client, pool, settings, task_queue):
        submission, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=1)
        before = await settled(handle, pool)
        rows = await rows_for(pool, handle.id)

        forged = {"actor": {"id": "FORGED-9", "role": "supervisor", "agency": "police"}, "approved": True}
        code, output = await temporal_cli(
            dev_env.client, "workflow", "update", "execute", "--workflow-id", handle.id, "--name", "review",
            "--input", json.dumps(forged),
        )
        assert code != 0, output
        assert await event_types(handle) == before  # rejected before history: not a single event

        completed = {"action_id": f"{handle.id}.A1", "reference": handle.id, "description": "forged",
                     "owner": {"agency": "police", "owner": "FORGED-9"}, "deadline": "2030-01-01T00:00:00Z",
                     "completed_at": "2030-01-01T00:00:00Z"}
        code, output = await temporal_cli(
            dev_env.client, "workflow", "signal", "--workflow-id", handle.id, "--name", "action_updated",
            "--input", json.dumps(completed),
        )
        assert code == 0, output
        # The signal is in the history (Temporal records every signal) but the worker drops it:
        # no workflow task fails, and the referral still waits for its supervisor.
        types = await eventually(
            lambda: event_types(handle), lambda t: t[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and len(t) > len(before)
        )
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types
        state = await handle.query(ReferralWorkflow.state)
        assert state.stage is Stage.SUPERVISOR_REVIEW and state.actions == [] and state.history == []
        assert await rows_for(pool, handle.id) == rows

        # A query answers, but sealed: without the keyring the CLI sees no stage and no name.
        code, output = await temporal_cli(dev_env.client, "workflow", "query", "--workflow-id", handle.id, "--name", "state")
        assert "supervisor_review" not in output and submission.children[0].name not in output
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in await event_types(handle)

        # The real supervisor's decision, through a client holding the keyring, still goes through.
        reviewed = await handle.execute_update(ReferralWorkflow.review, approval())
        assert reviewed.stage is Stage.SCREENING and reviewed.history[0].actor_id == SERGEANT.id


@pytest.mark.parametrize(
    "keyring",
    [
        pytest.param(Keyring.generate("intruder"), id="a key not in the ring"),
        # The ring's key ID with other key bytes: the payload names a known key but fails its tag.
        pytest.param(Keyring(keys={TEST_KEYRING.current: bytes(32)}, current=TEST_KEYRING.current), id="a bad tag"),
    ],
)
async def test_payloads_sealed_by_another_key_are_refused(dev_env, pool, settings, task_queue, sla_policy, keyring):
    outsider = Client(
        dev_env.client.service_client, namespace=dev_env.client.namespace,
        data_converter=data_converter(keyring=keyring), interceptors=[SIGNING],
    )
    async with make_worker(dev_env.client, pool, settings, task_queue):
        _, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=2)
        before = await settled(handle, pool)
        with pytest.raises(WorkflowUpdateFailedError):
            await outsider.get_workflow_handle(handle.id).execute_update(ReferralWorkflow.review, approval())
        assert await event_types(handle) == before
        assert (await handle.query(ReferralWorkflow.state)).stage is Stage.SUPERVISOR_REVIEW

        submission = synthetic_vist(rng=random.Random(f"sealed by {keyring.current}"))
        started = await outsider.start_workflow(
            ReferralWorkflow.run,
            StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy),
            id=referral_reference(submission.form_id),
            task_queue=task_queue,
        )
        trusted = dev_env.client.get_workflow_handle(started.id)
        with pytest.raises(WorkflowFailureError) as failed:
            await trusted.result()
    assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == UNSEALED_TYPE
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in await event_types(trusted)
    assert await rows_for(pool, started.id) == 0


async def test_the_codec_names_why_it_refuses_and_never_the_content():
    codec = EncryptionCodec(TEST_KEYRING)
    plain = DATA_CONVERTER.payload_converter.to_payload("Synthetic Childname")
    (refused,) = await codec.decode([plain])
    assert refusal(refused) == "the payload is not sealed (plaintext)" and refused.data == b""
    (sealed,) = await codec.encode([plain])
    assert refusal((await codec.decode([sealed]))[0]) is None
    with pytest.raises(ApplicationError, match="payload: refused, the payload is not sealed") as error:
        data_converter(keyring=TEST_KEYRING).payload_converter.from_payload(refused, str)
    assert "Childname" not in str(error.value) and error.value.non_retryable
