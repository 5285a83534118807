"""The workflow clients of starter/: each owns its type's IDs, updates and refusals, as the workflows themselves make and take them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client

from starter.acknowledgement import ESCALATION_ID, EXAMPLE_IDS, owner_workflows
from starter.actions import AgreedActions
from starter.referrals import Referrals, SubmissionConflict, reference_in
from starter.synthetic import HEALTH_PARTNER, OFFICER, approval, screening, strategy_discussion, synthetic_vist
from starter.workflow_client import DecisionRejected, NoSuchWorkflow, WorkflowClosed
from tests.conftest import make_worker
from tests.helpers import STARTED
from workflows.models import (
    ActionCompletion,
    RiskRegrade,
    RiskGrade,
    ScreeningOutcome,
    SlaPolicy,
    StartReferral,
    escalation_id_for,
    escalation_owner,
)

CLIENTS = [Referrals, AgreedActions]


@pytest.mark.parametrize("workflows", CLIENTS, ids=lambda c: c.__name__)
def test_each_client_sends_every_update_of_its_workflow_with_the_decision_it_takes(workflows):
    # The SDK's own reading of the workflow class: every update it defines, and the model each takes.
    definition = workflow._Definition.must_from_class(workflows.workflow)
    assert {update.__name__ for update in workflows.updates.values()} == set(definition.updates)
    for decision, update in workflows.updates.items():
        assert definition.updates[update.__name__].arg_types == [decision]
    assert "state" in definition.queries


def test_an_id_each_client_makes_matches_its_own_pattern_and_no_other():
    for n in range(200):
        reference = Referrals.workflow_id(uuid.UUID(int=random.Random(n).getrandbits(128)))
        assert Referrals.matches(reference) and not AgreedActions.matches(reference)
        action_id = AgreedActions.workflow_id(reference, n + 1)
        assert AgreedActions.matches(action_id) and not Referrals.matches(action_id)
        assert reference_in(action_id) == reference
        for owner in (reference, action_id):
            escalation = escalation_id_for(owner, n + 1)
            assert ESCALATION_ID.match(escalation) and escalation_owner(escalation) == owner
            assert owner_workflows(owner) is (AgreedActions if owner == action_id else Referrals)
            assert not Referrals.matches(escalation) and not AgreedActions.matches(escalation)
    # The examples the CLI's help shows have the shapes the clients make.
    assert Referrals.matches(Referrals.example_id.replace("X", "0"))
    assert AgreedActions.matches(AgreedActions.example_id.replace("X", "0"))
    assert all(ESCALATION_ID.match(example.replace("X", "0")) for example in EXAMPLE_IDS)


@pytest.mark.parametrize(
    "malformed",
    ["", "REF-00000-0000", "ref-00000-00000", "REF-00000-00000.A0", "REF-00000-00000.A1.E1", "REF-00000-00000/..",
     " REF-00000-00000", "REF-00000-00000\n", "REF-00000-00000.A1\n", "REF-ILOU0-00000"],
)
def test_a_malformed_id_is_no_workflow_of_either_type(malformed):
    assert not Referrals.matches(malformed) and not AgreedActions.matches(malformed)


async def test_the_workflows_make_the_ids_the_clients_check_and_refusals_come_back_typed(
    dev_env, pool, settings, task_queue, sla_policy
):
    async with make_worker(dev_env.client, pool, settings, task_queue):
        await the_clients_and_the_workflows_agree(dev_env.client, task_queue, sla_policy)


async def the_clients_and_the_workflows_agree(client: Client, queue: str, sla_policy: SlaPolicy) -> None:
    referrals = Referrals(client)
    actions = AgreedActions(client)
    submission = synthetic_vist(rng=random.Random("clients:1"))
    before = datetime.now(UTC)
    intake = await referrals.submit(StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy), queue)
    reference = intake.reference
    STARTED.append(client.get_workflow_handle(reference))
    assert intake.created and reference == Referrals.workflow_id(submission.form_id) and Referrals.matches(reference)
    # The answer, made from the start alone (no worker, no second call to Temporal), is what the workflow holds:
    # its clock runs from the form's receipt, stamped by the client before Temporal accepted the start.
    started = await referrals.state(reference)
    assert (intake.stage, intake.risk, intake.deadline) == (started.stage, started.risk, started.deadline)
    assert intake.deadline is not None
    accepted_at = (await client.get_workflow_handle(reference).describe()).start_time
    assert before <= started.submitted_at <= accepted_at
    assert not (await referrals.submit(
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy), queue
    )).created
    altered = submission.model_copy(update={"station": "Othertown"})
    with pytest.raises(SubmissionConflict, match="^form_id: "):
        await referrals.submit(StartReferral(submission=altered, submitted_by=OFFICER, sla_policy=sla_policy), queue)

    await referrals.decide(reference, approval())
    await referrals.decide(reference, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = datetime.now(UTC)
    inquorate = strategy_discussion(now - timedelta(minutes=5), section_47=True, actions=2)
    inquorate.attendees = inquorate.attendees[:1]
    state = await referrals.decide(reference, inquorate)

    assert [a.action_id for a in state.actions] == [AgreedActions.workflow_id(reference, n) for n in (1, 2)]
    assert [e.escalation_id for e in state.escalations] == [escalation_id_for(reference, 1)]
    assert all(ESCALATION_ID.match(e.escalation_id) for e in state.escalations)
    first = await actions.state(state.actions[0].action_id)
    assert AgreedActions.matches(first.action_id) and first.reference == reference

    # A refusal by the validator leaves the referral as it was.
    before = await referrals.state(reference)
    with pytest.raises(DecisionRejected) as refused:
        await referrals.decide(reference, RiskRegrade(actor=OFFICER, risk=RiskGrade.HIGH, reason="Synthetic."))
    assert refused.value.about_who_decides and refused.value.field == "actor.role"
    assert await referrals.state(reference) == before

    for unknown in ("REF-00000-00000", "REF-not-one", f"{reference}.A1"):
        with pytest.raises(NoSuchWorkflow, match="^reference: no such referral$"):
            await referrals.state(unknown)
    completion = ActionCompletion(actor=HEALTH_PARTNER, note="Synthetic: done.")
    with pytest.raises(NoSuchWorkflow, match="^action_id: no such agreed action$"):
        await actions.decide(AgreedActions.workflow_id(reference, 9), completion)

    done = await actions.decide(first.action_id, completion)
    assert done.completed_at is not None
    await client.get_workflow_handle(first.action_id).result()
    with pytest.raises(WorkflowClosed, match="^action_id: the action is already complete$"):
        await actions.decide(first.action_id, completion)
