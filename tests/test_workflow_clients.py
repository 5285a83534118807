"""The workflow clients of starter/: each owns its type's IDs, updates and refusals, as the workflows themselves make and take them."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow

from starter.acknowledgement import ESCALATION_ID, EXAMPLE_IDS, owner_workflows
from starter.actions import AgreedActions
from starter.referrals import Referrals, SubmissionConflict, reference_in
from starter.synthetic import HEALTH_PARTNER, OFFICER, approval, screening, strategy_discussion, synthetic_vist
from starter.workflow_client import DecisionRejected, NoSuchWorkflow, WorkflowClosed
from tests.helpers import STARTED, finished
from workflows.models import (
    ActionCompletion,
    RiskRegrade,
    RiskGrade,
    ScreeningOutcome,
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
    time_env, time_queue, sla_policy
):
    referrals = Referrals(time_env.client)
    actions = AgreedActions(time_env.client)
    submission = synthetic_vist(rng=random.Random("clients:1"))
    intake = await referrals.submit(
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy), time_queue
    )
    reference = intake.reference
    STARTED.append(time_env.client.get_workflow_handle(reference))
    assert intake.created and reference == Referrals.workflow_id(submission.form_id) and Referrals.matches(reference)
    # The answer, made from the start without waiting on a worker, is what the workflow itself holds.
    started = await referrals.state(reference)
    assert (intake.stage, intake.risk, intake.deadline) == (started.stage, started.risk, started.deadline)
    assert intake.deadline is not None
    assert not (await referrals.submit(
        StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=sla_policy), time_queue
    )).created
    altered = submission.model_copy(update={"station": "Othertown"})
    with pytest.raises(SubmissionConflict, match="^form_id: "):
        await referrals.submit(StartReferral(submission=altered, submitted_by=OFFICER, sla_policy=sla_policy), time_queue)

    await referrals.decide(reference, approval())
    await referrals.decide(reference, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    now = await time_env.get_current_time()
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
    await finished(time_env, time_env.client.get_workflow_handle(first.action_id))
    with pytest.raises(WorkflowClosed, match="^action_id: the action is already complete$"):
        await actions.decide(first.action_id, completion)
