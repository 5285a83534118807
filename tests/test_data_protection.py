"""Children's personal data never reaches the Temporal server or a log in the clear."""

from __future__ import annotations

import random
import uuid
from datetime import date

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from runtime.codec import ENCODING, KEY_ID, EncryptionCodec, Keyring, KeyringError, refusal
from runtime.temporal import DATA_CONVERTER, data_converter
from starter.synthetic import OFFICER, SCREENER, approval, screening, strategy_discussion, synthetic_vist
from tests.conftest import SIGNING, TEST_KEYRING, make_worker
from tests.helpers import screened_and_told, start_referral
from workflows.action import AgreedActionWorkflow
from workflows.models import ActionCompletion, AdultInvolved, AdultRole, ScreeningOutcome, SupervisorReview
from workflows.referral import ReferralWorkflow

CHILD_NAME = "Zephyrine Quuxley-Synthetic"
CHILD_DOB = date(2019, 2, 3)
HOME_ADDRESS = "77 Ciphertext Crescent, Testtown TT9999"
ACCOUNT = "Synthetic account: whispered about the blue door"
# An adult around the child (a suspect) is as personal: matched across referrals by a key, never seen by name.
SUSPECT_NAME = "Orrinwald Vexbury-Synthetic"
SUSPECT_DOB = date(1984, 7, 19)


def identifiable_submission():
    submission = synthetic_vist(rng=random.Random(80), address=HOME_ADDRESS)
    child = submission.children[0]
    child.name = CHILD_NAME
    child.date_of_birth = CHILD_DOB
    child.voice_of_the_child = ACCOUNT
    submission.adults = [AdultInvolved(name=SUSPECT_NAME, role=AdultRole.SUSPECT, date_of_birth=SUSPECT_DOB)]
    return submission


def secrets_in(text: str) -> list[str]:
    needles = [CHILD_NAME, "Quuxley", CHILD_DOB.isoformat(), "Ciphertext Crescent", "blue door",
               SUSPECT_NAME, "Vexbury", SUSPECT_DOB.isoformat()]
    return [n for n in needles if n in text]


def plain_client(client: Client) -> Client:
    """The same server seen without the keyring: what a Temporal operator sees."""
    return Client(client.service_client, namespace=client.namespace, data_converter=DATA_CONVERTER)


async def test_histories_and_logs_hold_no_personal_data(dev_env, pool, settings, sla_policy, capfd):
    queue = f"personal-data-{uuid.uuid4().hex[:8]}"
    async with make_worker(dev_env.client, pool, settings, queue):
        workflow_ids = await run_identifiable_referral(dev_env, queue, sla_policy)
    await check_no_personal_data(dev_env, workflow_ids, capfd)


async def run_identifiable_referral(env, queue, sla_policy) -> list[str]:
    """A whole referral about a synthetic child with a name, birthday and address; its workflow IDs."""
    submission, handle = await start_referral(env.client, queue, sla_policy, submission=identifiable_submission())
    # A rejected decision too: its failure message and stack trace are sealed as well.
    with pytest.raises(Exception):
        await handle.execute_update(ReferralWorkflow.review, SupervisorReview(actor=OFFICER, approved=True))
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = (await handle.query(ReferralWorkflow.state)).stage_entered_at
    state = await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    action = env.client.get_workflow_handle(state.actions[0].action_id)
    await action.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note=ACCOUNT))
    await handle.result()
    return [handle.id, action.id]


async def check_no_personal_data(env, workflow_ids: list[str], capfd) -> None:
    raw = plain_client(env.client)
    for workflow_id in workflow_ids:
        history = await raw.get_workflow_handle(workflow_id).fetch_history()
        # The raw protobuf bytes of every event: payload data appears here as it is stored.
        stored = b"".join(event.SerializeToString() for event in history.events).decode("utf-8", "replace")
        assert secrets_in(stored) == [], f"personal data in the raw history of {workflow_id}"
        started = history.events[0].workflow_execution_started_event_attributes
        assert started.input.payloads[0].metadata["encoding"] == ENCODING
        description = await raw.get_workflow_handle(workflow_id).describe()
        assert secrets_in(workflow_id + str(description.memo) + str(description.search_attributes)) == []

    # With the keyring, the same history opens: the data is there, only sealed.
    history = await env.client.get_workflow_handle(workflow_ids[0]).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    opened = await env.client.data_converter.payload_codec.decode(started.input.payloads)
    assert CHILD_NAME in opened[0].data.decode() and HOME_ADDRESS in opened[0].data.decode()
    assert SUSPECT_NAME in opened[0].data.decode()

    captured = capfd.readouterr()
    assert "fact_recorded" in captured.out + captured.err  # the logs were captured
    assert secrets_in(captured.out + captured.err) == []


async def test_rotated_keyring_reads_old_histories_and_seals_with_the_new_key(dev_env, pool, settings, sla_policy):
    old = Keyring.generate("2026-a")
    rotated = old.rotated("2026-b")
    service = dev_env.client.service_client
    namespace = dev_env.client.namespace
    old_client = Client(service, namespace=namespace, data_converter=data_converter(keyring=old), interceptors=[SIGNING])
    new_client = Client(
        service, namespace=namespace, data_converter=data_converter(keyring=rotated), interceptors=[SIGNING]
    )
    queue = f"rotation-{uuid.uuid4().hex[:8]}"

    async with make_worker(old_client, pool, settings, queue):
        submission, handle = await start_referral(old_client, queue, sla_policy, seed=81)
        await handle.execute_update(ReferralWorkflow.review, approval())
    # The new key becomes current; workers and clients now hold both.
    async with make_worker(new_client, pool, settings, queue):
        new_handle = new_client.get_workflow_handle_for(ReferralWorkflow.run, handle.id)
        await screened_and_told(new_client, new_handle, screening(submission, ScreeningOutcome.EARLY_HELP))
        result = await new_handle.result()
    assert result.close_reason.value == "early_help"

    history = await new_handle.fetch_history()
    key_ids = set()
    for event in history.events:
        for field in ("workflow_execution_started_event_attributes", "activity_task_scheduled_event_attributes"):
            if event.HasField(field):
                attributes = getattr(event, field)
                key_ids |= {p.metadata[KEY_ID].decode() for p in attributes.input.payloads}
    assert key_ids == {"2026-a", "2026-b"}  # written under both keys

    replayed = await Replayer(
        workflows=[ReferralWorkflow, AgreedActionWorkflow], data_converter=data_converter(keyring=rotated)
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None

    # Without the old key the history cannot be read: keys are retired only with their histories.
    (unopened,) = await EncryptionCodec(Keyring.generate("2026-b")).decode(
        history.events[0].workflow_execution_started_event_attributes.input.payloads
    )
    assert refusal(unopened) == "the payload is sealed with key id '2026-a', which is not in the keyring"
    assert unopened.data == b""


def test_keyring_rejects_bad_configuration():
    with pytest.raises(KeyringError, match="current: key id 'k9' is not in the keyring"):
        Keyring(keys=TEST_KEYRING.keys, current="k9")
    with pytest.raises(KeyringError, match="must be 32 bytes"):
        Keyring(keys={"short": b"0" * 16}, current="short")
    with pytest.raises(KeyringError, match="keyring: expected"):
        Keyring.from_json('{"keys": {}}')
    assert Keyring.from_json(TEST_KEYRING.to_json()) == TEST_KEYRING


async def test_tampered_payload_is_refused():
    codec = EncryptionCodec(TEST_KEYRING)
    (sealed,) = await codec.encode([DATA_CONVERTER.payload_converter.to_payload("synthetic")])
    assert (await codec.decode([sealed]))[0].data == b'"synthetic"'  # the untampered payload opens
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    (refused,) = await codec.decode([sealed])
    assert refusal(refused) == "the payload does not open with key 'test-k1' (bad tag)"
    assert refused.data == b""
