"""A trigger plan's rules, in memory: who writes it and who adds to it, what a revision may fold in, no ending with an
action open, a new version's review date watched from the first rung (an ended plan's too), and a run carrying
state that is no continuation refused before it records anything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from starter.synthetic import CSC_PARTNER, HEALTH_PARTNER, OFFICER, SCREENER, synthetic_missing_report, synthetic_trigger_plan
from tests.helpers import STARTED, advance_to, eventually, finished, seeded, start_plan
from workflows.models import Agency
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import CarriedPlan, PlanEnding, PlanRevision, PoliceAddendum, StartTriggerPlan


def plan_of(handle):
    return lambda: handle.query(TriggerPlanWorkflow.state)


async def refusal(handle, update, decision) -> str:
    """The refusal's message, with the plan exactly as it was before the decision."""
    before = await handle.query(TriggerPlanWorkflow.state)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(update, decision)
    assert await handle.query(TriggerPlanWorkflow.state) == before
    return str(caught.value.cause.message)


async def a_plan(fast_env, fast_queue, sla_policy, seed: str, review_in: timedelta = timedelta(days=30)):
    child = synthetic_missing_report(rng=seeded(seed)).child
    now = await fast_env.get_current_time()
    handle = await start_plan(fast_env.client, fast_queue, sla_policy, child, synthetic_trigger_plan(now + review_in))
    await eventually(plan_of(handle), lambda s: s.current.version == 1)
    return handle


async def test_who_writes_and_adds_to_a_plan_and_what_a_revision_may_fold_in(fast_env, fast_queue, fakes, sla_policy):
    handle = await a_plan(fast_env, fast_queue, sla_policy, "plan-who")
    now = await fast_env.get_current_time()
    revision = PlanRevision(actor=OFFICER, plan=synthetic_trigger_plan(now + timedelta(days=10)))
    assert (await refusal(handle, TriggerPlanWorkflow.revise, revision)).startswith("actor.role:")
    # A screener of the police is not children's social care.
    police_screener = revision.model_copy(update={"actor": SCREENER})
    assert (await refusal(handle, TriggerPlanWorkflow.revise, police_screener)).startswith("actor.agency:")
    addendum = PoliceAddendum(actor=HEALTH_PARTNER, information="Synthetic.")
    assert (await refusal(handle, TriggerPlanWorkflow.add_police_addendum, addendum)).startswith("actor.role:")
    stale = revision.model_copy(update={"actor": CSC_PARTNER, "plan": synthetic_trigger_plan(now - timedelta(hours=1))})
    assert (await refusal(handle, TriggerPlanWorkflow.revise, stale)) == "plan.review_by: must be in the future"
    unknown = revision.model_copy(update={"actor": CSC_PARTNER, "folds_in": [1]})
    assert (await refusal(handle, TriggerPlanWorkflow.revise, unknown)).startswith("folds_in[0]:")

    added = await handle.execute_update(
        TriggerPlanWorkflow.add_police_addendum, PoliceAddendum(actor=OFFICER, information="Synthetic: a new place.")
    )
    (action,) = added.actions
    assert action.owner.agency is Agency.CHILDRENS_SOCIAL_CARE
    ending = PlanEnding(actor=CSC_PARTNER, reason="Synthetic: moved away.")
    assert (await refusal(handle, TriggerPlanWorkflow.end, ending)).startswith("plan_id: the plan has agreed actions")
    folded = await handle.execute_update(TriggerPlanWorkflow.revise, unknown)
    assert folded.addenda[0].folded_into == 2
    again = unknown.model_copy(update={"plan": synthetic_trigger_plan(now + timedelta(days=20))})
    assert (await refusal(handle, TriggerPlanWorkflow.revise, again)).startswith("folds_in[0]:")


async def test_a_plan_brought_back_after_it_ended_is_watched_from_the_first_rung(fast_env, fast_queue, fakes, sla_policy):
    handle = await a_plan(fast_env, fast_queue, sla_policy, "plan-back", review_in=timedelta(days=2))
    review_by = (await handle.query(TriggerPlanWorkflow.state)).current.plan.review_by
    await advance_to(fast_env, review_by + timedelta(minutes=1))
    state = await eventually(plan_of(handle), lambda s: len(s.escalations) == 1)
    assert state.escalations[0].rung == 0 and state.review_overdue

    ended = await handle.execute_update(TriggerPlanWorkflow.end, PlanEnding(actor=CSC_PARTNER, reason="Synthetic."))
    assert ended.ended_at is not None
    addendum = PoliceAddendum(actor=OFFICER, information="Synthetic.")
    assert (await refusal(handle, TriggerPlanWorkflow.add_police_addendum, addendum)).startswith("plan_id: the plan has ended")
    # Ended, no further rung climbs.
    await advance_to(fast_env, review_by + timedelta(hours=sla_policy.escalation.grace.hours * 2))
    assert len((await handle.query(TriggerPlanWorkflow.state)).escalations) == 1

    now = await fast_env.get_current_time()
    back = await handle.execute_update(
        TriggerPlanWorkflow.revise, PlanRevision(actor=CSC_PARTNER, plan=synthetic_trigger_plan(now + timedelta(days=1)))
    )
    assert (back.ended_at, back.current.version, back.review_overdue) == (None, 2, False)
    await advance_to(fast_env, back.current.plan.review_by + timedelta(minutes=1))
    state = await eventually(plan_of(handle), lambda s: len(s.escalations) == 2)
    assert [(e.rung, e.due_at) for e in state.escalations][-1] == (0, back.current.plan.review_by)


async def test_a_run_carrying_state_that_is_no_continuation_fails_before_recording_anything(
    fast_env, fast_queue, fakes, sla_policy
):
    handle = await a_plan(fast_env, fast_queue, sla_policy, "plan-carried")
    carried = CarriedPlan(state=await handle.query(TriggerPlanWorkflow.state), last_seq=1)
    child = synthetic_missing_report(rng=seeded("plan-carried-forged")).child
    now = await fast_env.get_current_time()
    forged = await fast_env.client.start_workflow(
        TriggerPlanWorkflow.run,
        StartTriggerPlan(child=child, plan=synthetic_trigger_plan(now + timedelta(days=5)), written_by=CSC_PARTNER,
                         sla_policy=sla_policy, carried=carried),
        id="PLAN-F0RGE-D0001",
        task_queue=fast_queue,
    )
    STARTED.append(forged)
    with pytest.raises(WorkflowFailureError) as failed:
        await finished(fast_env, forged)
    assert "carried: a plan carries its state only into its own next run" in str(failed.value.cause)
    assert fakes.records.facts_of("PLAN-F0RGE-D0001") == []
