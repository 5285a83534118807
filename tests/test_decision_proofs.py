"""Every decision carries the API's proof of its actor: a client holding the encryption key but not the
signing key cannot decide as anyone, start a referral, or finish an agreed action."""

from __future__ import annotations

import random
from datetime import timedelta
import uuid

import asyncpg
import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from runtime.codec import Keyring, ensure_keyring_file
from runtime.keys import main as keys_command
from runtime.proofs import DecisionSigner, DecisionSigning, DecisionVerifier, update_message
from runtime.temporal import data_converter
from api.errors import rejected
from audit.history import local_activity_type, recorded_facts
from starter.synthetic import OFFICER, SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_vist
from tests.conftest import TEST_DECISION_KEYS, TEST_KEYRING, make_worker
from tests.helpers import STARTED, finished, screened_and_told, start_referral, state_when
from worker import WORKFLOWS
from workflows.action import AgreedActionWorkflow
from workflows.authority import REJECTION_TYPE
from workflows.models import (
    ActionCompletion,
    ActionStart,
    Actor,
    Agency,
    CloseReason,
    Role,
    RiskGrade,
    RiskRegrade,
    ScreeningOutcome,
    Stage,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

FORGED_SUPERVISOR = Actor(id="FORGED-9", role=Role.SUPERVISOR, agency=Agency.POLICE)


def unsigned(client: Client, *interceptors: DecisionSigning) -> Client:
    """A client with the right encryption keyring but not the API's signing key (or another one)."""
    return Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=list(interceptors),
    )


def signing_with(keyring: Keyring) -> DecisionSigning:
    return DecisionSigning(DecisionSigner(keyring))


async def accepted_updates(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in history.events)


async def referral_rows(pool: asyncpg.Pool, reference: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", reference)


async def at_review(time_env, time_queue, sla_policy, seed) -> WorkflowHandle:
    _, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=seed)
    await state_when(handle, lambda s: s.stage is Stage.SUPERVISOR_REVIEW)
    return handle


async def assert_refused(handle: WorkflowHandle, send, reason: str) -> None:
    """`send()` is rejected for `reason`, and the referral is exactly as it was."""
    before = await handle.query(ReferralWorkflow.state)
    accepted = await accepted_updates(handle)
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await send()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE
    assert cause.message.startswith("proof: ") and reason in cause.message
    assert await handle.query(ReferralWorkflow.state) == before
    assert await accepted_updates(handle) == accepted


async def test_a_decision_without_the_apis_proof_is_rejected(time_env, time_queue, sla_policy):
    handle = await at_review(time_env, time_queue, sla_policy, seed=1)
    outsider = unsigned(time_env.client).get_workflow_handle(handle.id)
    await assert_refused(handle, lambda: outsider.execute_update(ReferralWorkflow.review, approval()), "carries no proof")


@pytest.mark.parametrize(
    "keyring, reason",
    [
        pytest.param(Keyring.generate("intruder"), "key id 'intruder', which is not in the decision keyring", id="unknown key"),
        pytest.param(Keyring.generate(TEST_DECISION_KEYS.current), "does not match", id="another key under the ring's key id"),
    ],
)
async def test_a_decision_signed_by_a_key_not_in_the_ring_is_rejected(time_env, time_queue, sla_policy, keyring, reason):
    handle = await at_review(time_env, time_queue, sla_policy, seed=2)
    outsider = unsigned(time_env.client, signing_with(keyring)).get_workflow_handle(handle.id)
    await assert_refused(handle, lambda: outsider.execute_update(ReferralWorkflow.review, approval()), reason)


async def test_a_proof_holds_only_for_its_actor_referral_update_and_update_id(time_env, time_queue, sla_policy):
    handle = await at_review(time_env, time_queue, sla_policy, seed=3)
    other = await at_review(time_env, time_queue, sla_policy, seed=4)
    signer = DecisionSigner(TEST_DECISION_KEYS)
    outsider = unsigned(time_env.client)

    def signed(decision, workflow_id: str, update: str, update_id: str):
        return decision.model_copy(update={"proof": signer.sign(workflow_id, update_message(update), update_id, decision)})

    # The sergeant's signed approval, with another supervisor put in as its actor.
    genuine = signed(approval(), handle.id, "review", "u-1")
    forged = genuine.model_copy(update={"actor": FORGED_SUPERVISOR})
    target = outsider.get_workflow_handle(handle.id)
    await assert_refused(handle, lambda: target.execute_update(ReferralWorkflow.review, forged, id="u-1"), "does not match")
    # The genuine approval moved to another referral, or sent under another update ID.
    await assert_refused(
        other, lambda: outsider.get_workflow_handle(other.id).execute_update(ReferralWorkflow.review, genuine, id="u-1"),
        "does not match",
    )
    await assert_refused(handle, lambda: target.execute_update(ReferralWorkflow.review, genuine, id="u-2"), "does not match")
    # A decision signed for one update, sent as another.
    regrade = RiskRegrade(actor=SCREENER, risk=RiskGrade.HIGH, reason="Synthetic regrade.")
    moved = signed(regrade, handle.id, "close", "u-3")
    await assert_refused(handle, lambda: target.execute_update(ReferralWorkflow.regrade_risk, moved, id="u-3"), "does not match")

    # Sent as signed, it is the sergeant's; sent again under its update ID, Temporal applies it once.
    reviewed = await target.execute_update(ReferralWorkflow.review, genuine, id="u-1")
    again = await target.execute_update(ReferralWorkflow.review, genuine, id="u-1")
    assert reviewed.stage is Stage.SCREENING and again == reviewed
    assert [h.actor_id for h in reviewed.history] == [SERGEANT.id]
    assert await accepted_updates(handle) == 1


def test_the_api_answers_a_missing_proof_with_403():
    error = rejected("proof: the decision carries no proof of its actor (decisions are made through the API)")
    assert (error.status, error.field) == (403, "proof")


@pytest.mark.parametrize("signing", [None, signing_with(Keyring.generate("intruder"))], ids=["unsigned", "unknown key"])
async def test_a_start_without_the_apis_proof_fails_at_once_and_records_nothing(time_env, time_queue, sla_policy, pool, signing):
    submission = synthetic_vist(rng=random.Random(f"forged start {signing is None}"))
    outsider = unsigned(time_env.client, *([signing] if signing else []))
    started = await outsider.start_workflow(
        ReferralWorkflow.run,
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy),
        id=referral_reference(submission.form_id),
        task_queue=time_queue,
    )
    handle = time_env.client.get_workflow_handle(started.id)
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(time_env, handle)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == REJECTION_TYPE and cause.message.startswith("proof: ")
    history = await handle.fetch_history()
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in [e.event_type for e in history.events]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # The check, with the facts it refused to write, is the first batch's local write: not one recorded.
    assert scheduled == [] and [local_activity_type(e) for e in history.events if local_activity_type(e)] == ["record_facts"]
    assert await referral_rows(pool, started.id) == 0
    # The audit counts none of them as recorded: the reconciliation expects nothing of a refused start.
    assert await recorded_facts(history, time_env.client.data_converter) == []
    # The refusal is in the history (the recording activity's answer): it replays without keys.
    await Replayer(workflows=list(WORKFLOWS), data_converter=time_env.client.data_converter).replay_workflow(history)


async def start_changed_after_signing(time_env, time_queue, pool, start: StartReferral, change: dict) -> None:
    """Sign `start` as the API would, change it, start it from a client that does not sign: it fails, recording nothing."""
    reference = referral_reference(start.submission.form_id)
    proof = DecisionSigner(TEST_DECISION_KEYS).sign(reference, "start ReferralWorkflow", reference, start)
    forged = start.model_copy(update={"proof": proof, **change})
    await unsigned(time_env.client).start_workflow(ReferralWorkflow.run, forged, id=reference, task_queue=time_queue)
    handle = time_env.client.get_workflow_handle(reference)
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(time_env, handle)
    assert "does not match" in failed.value.cause.message
    assert await referral_rows(pool, reference) == 0


async def test_a_start_whose_officer_was_changed_after_signing_fails(time_env, time_queue, sla_policy, pool):
    submission = synthetic_vist(rng=random.Random("start with a swapped officer"))
    start = StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy)
    # Another officer, named consistently in the form too: only the proof can tell.
    other_officer = OFFICER.model_copy(update={"id": "PC-9999"})
    await start_changed_after_signing(time_env, time_queue, pool, start, {
        "submitted_by": other_officer,
        "submission": submission.model_copy(update={"officer_id": other_officer.id}),
    })


async def test_a_start_whose_receipt_was_moved_after_signing_fails(time_env, time_queue, sla_policy, pool):
    """The receipt time starts the SLA clock, so it is signed with the start: moved back to make the referral
    overdue sooner, or forward to buy time, the proof no longer holds."""
    submission = synthetic_vist(rng=random.Random("start with a moved receipt"))
    received_at = await time_env.get_current_time()
    start = StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy, received_at=received_at)
    await start_changed_after_signing(time_env, time_queue, pool, start, {"received_at": received_at - timedelta(minutes=5)})


async def test_an_agreed_action_started_by_anyone_but_its_referral_fails_at_once(time_env, time_queue, sla_policy, pool):
    held_at = await time_env.get_current_time()
    spec = strategy_discussion(held_at, section_47=False, actions=1).agreed_actions[0]
    reference = "REF-AAAAA-BBBBB"
    action_id = f"{reference}.A1"
    handle = await time_env.client.start_workflow(
        AgreedActionWorkflow.run,
        ActionStart(action_id=action_id, reference=reference, spec=spec, agreed_by=SCREENER, agreed_at=held_at, policy=sla_policy),
        id=action_id,
        task_queue=time_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(time_env, handle)
    assert failed.value.cause.message.startswith("parent: an agreed action is started only by the referral")
    assert await pool.fetchval("SELECT count(*) FROM agreed_actions WHERE action_id = $1", action_id) == 0
    assert await referral_rows(pool, reference) == 0


async def test_a_signal_cannot_complete_an_agreed_action(time_env, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=5)
    await state_when(handle, lambda s: s.stage is Stage.SUPERVISOR_REVIEW)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await state_when(handle, lambda s: s.screening_view is not None)
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    assert state.stage is Stage.ACTIONS
    action = state.actions[0]

    # Anyone holding the encryption key can signal; a forged "completed" report changes nothing.
    forged = action.model_copy(update={"completed_at": held_at, "completed_by": FORGED_SUPERVISOR.id})
    phantom = action.model_copy(update={"action_id": f"{handle.id}.A9"})
    await handle.signal(ReferralWorkflow.action_updated, forged)
    await handle.signal(ReferralWorkflow.action_updated, phantom)
    state = await handle.query(ReferralWorkflow.state)
    assert state.stage is Stage.ACTIONS
    assert [(a.action_id, a.completed_at) for a in state.actions] == [(action.action_id, None)]

    # The action's own completion, by its result, closes the referral.
    child = time_env.client.get_workflow_handle(action.action_id)
    await child.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic: done."))
    closed = await finished(time_env, handle)
    assert closed.stage is Stage.CLOSED and closed.actions[0].completed_by == SCREENER.id

    # The whole history replays with no decision keys at all, as an auditor replays it.
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=time_env.client.data_converter)
    for workflow_id in (handle.id, action.action_id):
        await replayer.replay_workflow(await time_env.client.get_workflow_handle(workflow_id).fetch_history())


async def test_rotation_keeps_old_proofs_valid_and_signs_with_the_new_key(time_env, pool, settings, sla_policy, time_queue):
    rotated = TEST_DECISION_KEYS.rotated("d2")
    # The worker holds only the public half of the rotated ring.
    public = DecisionVerifier.from_keyring(rotated).public_json()
    assert "keys" not in public.replace("public_keys", "")
    queue = f"rotation-{uuid.uuid4().hex[:8]}"
    new_signer = unsigned(time_env.client, signing_with(rotated))
    async with make_worker(time_env.client, pool, settings.model_copy(update={"decision_keys": SecretStr(public)}), queue):
        # Started and reviewed before the rotation: proofs by the old key still verify.
        submission, handle = await start_referral(time_env.client, queue, sla_policy, seed=6)
        await state_when(handle, lambda s: s.stage is Stage.SUPERVISOR_REVIEW)
        await handle.execute_update(ReferralWorkflow.review, approval())
        await state_when(handle, lambda s: s.screening_view is not None)
        # After it, the API signs with the new key.
        await screened_and_told(new_signer, new_signer.get_workflow_handle(handle.id),
                                screening(submission, ScreeningOutcome.EARLY_HELP))
        assert (await finished(time_env, handle)).close_reason is CloseReason.EARLY_HELP

    history = await handle.fetch_history()
    key_ids = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            args = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            (decision,) = await time_env.client.data_converter.decode(args.payloads)
            key_ids.append(decision["proof"]["key_id"])
    assert key_ids == ["d1", "d2"]

    # A worker not yet given the new key refuses its proofs (roll keys out before making one current).
    stale = await at_review(time_env, time_queue, sla_policy, seed=7)
    await assert_refused(
        stale,
        lambda: new_signer.get_workflow_handle(stale.id).execute_update(ReferralWorkflow.review, approval()),
        "key id 'd2', which is not in the decision keyring",
    )


def test_every_update_has_a_validator_so_every_decision_is_checked_for_its_proof():
    for workflow_class in WORKFLOWS:
        definition = workflow._Definition.must_from_class(workflow_class)
        for name, update in definition.updates.items():
            assert update.validator is not None, f"{definition.name}.{name} has no validator"


def test_the_keys_command_rotates_a_keyring_file_and_prints_its_public_half(tmp_path, capsys):
    path = tmp_path / "decision-keys.json"
    first = ensure_keyring_file(path)
    # Added first (every worker learns the key), then promoted (the API signs with it).
    assert keys_command(["add", str(path), "--key-id", "2027-a"]) == 0
    assert Keyring.from_json(path.read_text()).current == first.current
    assert keys_command(["promote", str(path), "2027-a"]) == 0
    rotated = Keyring.from_json(path.read_text())
    assert rotated.current == "2027-a" and rotated.keys[first.current] == first.keys[first.current]
    assert path.stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert keys_command(["public", str(path)]) == 0
    verifier = DecisionVerifier.from_json(capsys.readouterr().out)
    assert set(verifier.public_keys) == {first.current, "2027-a"}
    assert keys_command(["rotate", str(path), "--key-id", "2027-a"]) == 1  # an ID already in the ring
    assert keys_command(["promote", str(path), "2028-z"]) == 1  # a key never added
    assert keys_command(["rotate", str(path)]) == 0
    assert Keyring.from_json(path.read_text()).current == "k3"


def test_the_keys_command_writes_a_deployments_first_keyring_and_never_replaces_one(tmp_path, capsys):
    path = tmp_path / "secrets" / "encryption-keys.json"
    path.parent.mkdir()
    assert keys_command(["new", str(path), "--key-id", "2026-a"]) == 0
    made = Keyring.from_json(path.read_text())
    assert made.current == "2026-a" and list(made.keys) == ["2026-a"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys_command(["new", str(path)]) == 1  # the keys that sealed the histories are never overwritten
    assert "exists" in capsys.readouterr().err
    assert Keyring.from_json(path.read_text()) == made


async def test_a_referral_started_with_a_proof_replays_without_keys_on_the_dev_server(dev_env, pool, settings, task_queue, sla_policy):
    # The dev server runs the start's check inside the first workflow task, as a production cluster does.
    async with make_worker(dev_env.client, pool, settings, task_queue):
        submission, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=8)
        await handle.execute_update(ReferralWorkflow.review, approval())
        await state_when(handle, lambda s: s.screening_view is not None)
        await screened_and_told(dev_env.client, handle, screening(submission, ScreeningOutcome.EARLY_HELP))
        await handle.result()
    history = await handle.fetch_history()
    markers = [e.marker_recorded_event_attributes.marker_name for e in history.events if e.HasField("marker_recorded_event_attributes")]
    # The run's generation is its first marker and its only patch marker, asked before the first batch; every
    # other marker is a batch of facts written locally (the first with the start's check).
    assert markers[0] == "core_patch" and set(markers[1:]) == {"core_local_activity"}
    assert {local_activity_type(e) for e in history.events if local_activity_type(e)} == {"record_facts"}
    await Replayer(workflows=list(WORKFLOWS), data_converter=dev_env.client.data_converter).replay_workflow(history)
