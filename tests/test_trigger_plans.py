"""Trigger plans on the time-skipping server with PostgreSQL: a child who must have a current plan and has none
escalates at report time, a report shows the current plan to the tracing officers at once, a plan past its review
date escalates to the social worker's manager, and a police addendum is recorded with its fold-in action tracked."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from starter.synthetic import (
    CSC_PARTNER,
    OFFICER,
    SOCIAL_WORKER,
    synthetic_missing_report,
    synthetic_trigger_plan,
)
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import STARTED, advance_to, eventually, refused, seeded, start_episode, start_plan
from workflows.action import AgreedActionWorkflow
from workflows.calendar import add_duration
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import MissingReport, RiskIndicator
from workflows.models import ActionCompletion, Agency, MissingGrade, Rank
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import PlanRevision, PoliceAddendum, TriggerPlanState


def plan_of(handle):
    return lambda: handle.query(TriggerPlanWorkflow.state)


async def plan_recorded(pool, plan_id: str, version: int = 1) -> None:
    """The plan's version is in the read model, where a missing report reads it."""
    await eventually(
        lambda: pool.fetchval("SELECT version FROM trigger_plans WHERE plan_id = $1", plan_id),
        lambda v: v == version,
    )


def named(answer) -> list[str]:
    """A 422's errors as "field: reason"."""
    return [".".join(str(p) for p in e["loc"][1:]) + ": " + e["msg"] for e in answer.json()["errors"]]


def again(report: MissingReport) -> MissingReport:
    """The same child reported missing again."""
    return report.model_copy(update={"report_id": uuid.uuid4()})


async def test_a_repeat_child_with_no_current_plan_raises_an_escalation(time_env, pool, time_queue, sla_policy):
    first = synthetic_missing_report(rng=seeded("repeat-no-plan"))
    states = []
    for report in (first, again(first), again(first)):
        _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
        states.append(await handle.query(MissingEpisodeWorkflow.state))
    assert [(s.repeat_missing, s.trigger_plan_required) for s in states] == [(False, False), (False, False), (True, True)]
    assert [s.escalations for s in states[:2]] == [[], []]
    third = states[-1]
    (escalation,) = third.escalations
    assert (escalation.reason, escalation.subject, escalation.rung, escalation.rank) == (
        "no_trigger_plan", "trigger_plan", 0, Rank.SERGEANT)
    assert escalation.addressed_to == f"sergeant, {first.station}" and third.trigger_plan is None
    row = await eventually(
        lambda: pool.fetchrow(
            """SELECT e.reason, m.trigger_plan_required, m.trigger_plan_id FROM escalations e
               JOIN missing_episodes m ON m.episode_id = e.reference WHERE e.escalation_id = $1""",
            escalation.escalation_id,
        ),
        lambda r: r is not None and r["trigger_plan_required"] is not None,
    )
    assert dict(row) == {"reason": "no_trigger_plan", "trigger_plan_required": True, "trigger_plan_id": None}


async def test_a_cse_child_with_no_plan_raises_one_and_with_a_current_plan_sees_it_at_once(
    time_env, pool, time_queue, sla_policy
):
    report = synthetic_missing_report(rng=seeded("cse-no-plan"), indicators=[RiskIndicator.CSE_CONCERN])
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, report)
    state = await handle.query(MissingEpisodeWorkflow.state)
    assert state.trigger_plan_required and state.trigger_plan is None
    # (No referral about the child either: the MASH is told of that apart.)
    assert [e.reason for e in state.escalations] == ["no_trigger_plan", "no_cse_referral"]

    # The child's plan is written, police add to it; the next report shows both at once and escalates nothing.
    now = await time_env.get_current_time()
    plan = await start_plan(time_env.client, time_queue, sla_policy, report.child, synthetic_trigger_plan(now + timedelta(days=30)))
    await plan.execute_update(
        TriggerPlanWorkflow.add_police_addendum,
        PoliceAddendum(actor=OFFICER, information="Synthetic: seen near the bus station.", fold_in=False),
    )
    await plan_recorded(pool, plan.id)
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM trigger_plan_addenda WHERE plan_id = $1", plan.id),
                     lambda n: n == 1)
    _, handle = await start_episode(time_env.client, time_queue, sla_policy, again(report))
    state = await handle.query(MissingEpisodeWorkflow.state)
    shown = state.trigger_plan
    assert shown is not None and (shown.plan_id, shown.version, shown.current) == (plan.id, 1, True)
    assert shown.police_activity.where_to_look_first == "Synthetic: the retail park by the station."
    assert shown.addenda == ["Synthetic: seen near the bus station."] and shown.owner == SOCIAL_WORKER
    assert state.trigger_plan_required and [e.reason for e in state.escalations] == ["no_cse_referral"]
    row = await eventually(
        lambda: pool.fetchrow("SELECT payload FROM referral_events WHERE reference = $1 AND kind = 'trigger_plan_read'",
                              handle.id),
        lambda r: r is not None,
    )
    assert json.loads(row["payload"])["plan"]["plan_id"] == plan.id


async def test_a_plan_past_its_review_date_escalates_to_the_manager_until_a_new_version(
    time_env, pool, time_queue, sla_policy, api, auth
):
    report = synthetic_missing_report(rng=seeded("stale-plan"), indicators=[RiskIndicator.CSE_CONCERN])
    now = await time_env.get_current_time()
    review_by = now + timedelta(days=3)
    plan = await start_plan(time_env.client, time_queue, sla_policy, report.child, synthetic_trigger_plan(review_by))
    await plan_recorded(pool, plan.id)

    await advance_to(time_env, review_by - timedelta(minutes=5))
    assert (await plan.query(TriggerPlanWorkflow.state)).escalations == []
    await advance_to(time_env, review_by + timedelta(minutes=1))
    state = await eventually(plan_of(plan), lambda s: len(s.escalations) == 1)
    (escalation,) = state.escalations
    assert (escalation.subject, escalation.rung, escalation.due_at) == ("plan_review", 0, review_by)
    assert escalation.addressed_to == f"{SOCIAL_WORKER.supervisor} (childrens_social_care)" and state.review_overdue
    row = await eventually(
        lambda: pool.fetchrow("SELECT reference, subject FROM escalations WHERE escalation_id = $1", escalation.escalation_id),
        lambda r: r is not None,
    )
    assert dict(row) == {"reference": plan.id, "subject": "plan_review"}
    due = await api.get("/trigger-plans/due", params={"within_days": 0}, headers=auth("social-worker"))
    assert due.status_code == 200, due.text
    assert [(p["plan_id"], p["overdue"]) for p in due.json()["items"] if p["plan_id"] == plan.id] == [(plan.id, True)]

    # A stale plan is shown but is not current: a CSE report escalates for it.
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, report)
    shown = await episode.query(MissingEpisodeWorkflow.state)
    assert shown.trigger_plan is not None and not shown.trigger_plan.current
    assert [e.reason for e in shown.escalations] == ["no_trigger_plan", "no_cse_referral"]

    # A new version stops the ladder: no second rung after the grace period.
    now = await time_env.get_current_time()
    revised = await plan.execute_update(
        TriggerPlanWorkflow.revise, PlanRevision(actor=CSC_PARTNER, plan=synthetic_trigger_plan(now + timedelta(days=60)))
    )
    assert (revised.current.version, len(revised.versions), revised.review_overdue) == (2, 2, False)
    await advance_to(time_env, now + timedelta(hours=sla_policy.escalation.grace.hours * 2))
    assert len((await plan.query(TriggerPlanWorkflow.state)).escalations) == 1
    await plan_recorded(pool, plan.id, version=2)
    assert await pool.fetchval("SELECT count(*) FROM trigger_plan_versions WHERE plan_id = $1", plan.id) == 2


async def test_a_police_addendum_is_recorded_and_its_fold_in_action_tracked_with_its_deadline(
    time_env, pool, time_queue, sla_policy
):
    report = synthetic_missing_report(rng=seeded("addendum"))
    now = await time_env.get_current_time()
    plan = await start_plan(time_env.client, time_queue, sla_policy, report.child, synthetic_trigger_plan(now + timedelta(days=60)))
    added = await plan.execute_update(
        TriggerPlanWorkflow.add_police_addendum,
        PoliceAddendum(actor=OFFICER, information="Synthetic: a new associate's first name."),
    )
    (addendum,) = added.addenda
    (action,) = added.actions
    due = add_duration(addendum.added_at, sla_policy.missing.police_addendum_fold_in, sla_policy)
    assert (addendum.number, addendum.fold_in_action_id, addendum.folded_into) == (1, action.action_id, None)
    assert (action.owner, action.deadline, action.reference) == (SOCIAL_WORKER, due, plan.id)
    row = await eventually(
        lambda: pool.fetchrow("SELECT reference, agency, deadline FROM agreed_actions WHERE action_id = $1", action.action_id),
        lambda r: r is not None,
    )
    assert dict(row) == {"reference": plan.id, "agency": Agency.CHILDRENS_SOCIAL_CARE.value, "deadline": due}
    assert await pool.fetchval(
        "SELECT information FROM trigger_plan_addenda WHERE plan_id = $1 AND number = 1", plan.id
    ) == "Synthetic: a new associate's first name."

    # Late, it escalates to the social worker's manager like any agreed action.
    await advance_to(time_env, due + timedelta(minutes=1))
    fold_in = time_env.client.get_workflow_handle(action.action_id)
    late = await eventually(lambda: fold_in.query(AgreedActionWorkflow.state), lambda s: len(s.escalations) == 1)
    assert late.escalations[0].addressed_to == f"{SOCIAL_WORKER.supervisor} (childrens_social_care)"

    # Folded in by a new version, and the action completed by its owner.
    now = await time_env.get_current_time()
    await refused(plan, TriggerPlanWorkflow.revise,
                  PlanRevision(actor=CSC_PARTNER, plan=synthetic_trigger_plan(now + timedelta(days=30)), folds_in=[2]),
                  "folds_in[0]: no police addendum 2", query=TriggerPlanWorkflow.state)
    state = await plan.execute_update(
        TriggerPlanWorkflow.revise,
        PlanRevision(actor=CSC_PARTNER, plan=synthetic_trigger_plan(now + timedelta(days=30)), folds_in=[1]),
    )
    assert state.addenda[0].folded_into == 2
    await fold_in.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=CSC_PARTNER, note="Synthetic: folded in."))
    state = await eventually(plan_of(plan), lambda s: s.actions[0].completed_at is not None)
    assert await eventually(
        lambda: pool.fetchval("SELECT folded_into FROM trigger_plan_addenda WHERE plan_id = $1", plan.id),
        lambda v: v == 2,
    ) == 2


async def test_who_writes_and_adds_to_a_plan_and_bad_input_names_the_field(
    time_env, pool, time_queue, sla_policy, api, auth
):
    report = synthetic_missing_report(rng=seeded("plan-api"), grade=MissingGrade.HIGH)
    now = await time_env.get_current_time()
    plan = synthetic_trigger_plan(now + timedelta(days=30)).model_dump(mode="json")
    body = {"child": report.child.model_dump(mode="json"), "plan": plan}

    past = body | {"plan": plan | {"review_by": (now - timedelta(hours=1)).isoformat()}}
    answer = await api.post("/trigger-plans", json=past, headers=auth("social-worker"))
    assert answer.status_code == 422 and named(answer) == ["plan.review_by: must be in the future"]
    assert report.child.name not in answer.text
    too_far = body | {"plan": plan | {"review_by": (now + timedelta(days=400)).isoformat()}}
    answer = await api.post("/trigger-plans", json=too_far, headers=auth("social-worker"))
    assert answer.status_code == 422 and named(answer) == [
        f"plan.review_by: must be within {sla_policy.missing.trigger_plan_review_within_days} days"]
    police_owned = body | {"plan": plan | {"owner": {"agency": "police", "owner": "PC Synthetic", "supervisor": "PS"}}}
    answer = await api.post("/trigger-plans", json=police_owned, headers=auth("social-worker"))
    assert answer.status_code == 422 and named(answer) == ["plan.owner.agency: a trigger plan is owned by children's social care"]
    for user in ("officer", "health-partner"):
        answer = await api.post("/trigger-plans", json=body, headers=auth(user))
        assert answer.status_code == 403, (user, answer.text)

    written = await api.post("/trigger-plans", json=body, headers=auth("social-worker"))
    assert written.status_code == 201, written.text
    state = TriggerPlanState.model_validate(written.json())
    STARTED.append(time_env.client.get_workflow_handle(state.plan_id))
    assert state.plan_id.startswith("PLAN-") and report.child.name not in state.plan_id
    again_ = await api.post("/trigger-plans", json=body, headers=auth("social-worker"))
    assert again_.status_code == 409 and again_.json()["plan_id"] == state.plan_id

    # Police add to it at once; a social worker cannot add a police addendum, nor an officer revise.
    added = await api.post(f"/trigger-plans/{state.plan_id}/police-addendum",
                           json={"information": "Synthetic: seen at the shops.", "fold_in": False}, headers=auth("officer"))
    assert added.status_code == 200, added.text
    assert [a["information"] for a in added.json()["addenda"]] == ["Synthetic: seen at the shops."]
    answer = await api.post(f"/trigger-plans/{state.plan_id}/police-addendum",
                            json={"information": "Synthetic."}, headers=auth("social-worker"))
    assert answer.status_code == 403
    answer = await api.post(f"/trigger-plans/{state.plan_id}/revision", json={"plan": plan}, headers=auth("officer"))
    assert answer.status_code == 403
    shown = await api.get(f"/trigger-plans/{state.plan_id}", headers=auth("health-partner"))
    assert shown.status_code == 403 and "actor.agency" in shown.text
    shown = await api.get(f"/trigger-plans/{state.plan_id}", headers=auth("sergeant"))
    assert shown.status_code == 200 and shown.json()["current"]["version"] == 1
