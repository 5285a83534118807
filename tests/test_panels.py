"""Panel sittings on the time-skipping server with PostgreSQL: the agenda its cadence builds, a case carried when
not reached, an absent required attendee escalated, a grade applied at once to the child's live case, and an
action without a deadline refused."""

from __future__ import annotations

import random
import string
import uuid
from datetime import date, datetime, time, timedelta

import pytest
from pydantic import ValidationError

from starter.panels import PanelSittings
from starter.synthetic import (
    INSPECTOR,
    OFFICER,
    SCREENER,
    SERGEANT,
    approval,
    synthetic_missing_report,
    synthetic_trigger_plan,
    synthetic_vist,
)
from tests.helpers import (
    LONDON,
    STARTED,
    advance_to,
    eventually,
    finished,
    refused,
    seeded,
    start_episode,
    start_plan,
    start_referral,
)
from workflows.action import AgreedActionWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import RiskIndicator
from workflows.models import (
    ActionCompletion,
    ActionOwner,
    Agency,
    AgreedActionSpec,
    EscalationAcknowledgement,
    IncidentType,
    MissingGrade,
    NamedRole,
    PriorPanelDecision,
    Rank,
    RiskGrade,
    panel_sitting_id,
)
from workflows.panel import PanelOpeningWorkflow, PanelSittingWorkflow
from workflows.panel_models import (
    AgendaAddition,
    AgendaCriterion,
    AgendaEdit,
    AttendanceRecord,
    Cadence,
    MeetingStart,
    Panel,
    PanelAbsence,
    PanelAttendee,
    PanelCaseOutcome,
    PanelGrade,
    PanelOpening,
    SittingClosure,
    SittingPhase,
    SittingState,
)
from workflows.referral import ReferralWorkflow

CHAIR = INSPECTOR
CSE_OFFICER = OFFICER.model_copy(update={"id": "PC-1777"})


def a_panel(**more) -> Panel:
    code = "T" + "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    fields = {"cadence": Cadence.FORTNIGHTLY, "first_sitting": date(2026, 12, 1)} | more
    return Panel(panel_id=code, name="CSE and missing MARAC (synthetic)", area="Testshire", **fields)


def sitting_of(env, sitting_id: str):
    handle = env.client.get_workflow_handle_for(PanelSittingWorkflow.run, sitting_id)
    STARTED.append(handle)
    return handle


async def built(handle) -> SittingState:
    return await eventually(lambda: handle.query(PanelSittingWorkflow.state), lambda s: s.agenda_built)


async def in_read_model(pool, table: str, column: str, value: str) -> None:
    await eventually(lambda: pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", value), lambda n: n == 1)


def police_action(deadline: datetime, owner: str = "DC Synthetic") -> AgreedActionSpec:
    return AgreedActionSpec(description="Synthetic: disruption visit.", owner=ActionOwner(agency=Agency.POLICE, owner=owner),
                            deadline=deadline)


async def test_the_cadence_opens_a_sitting_with_the_agenda_its_criteria_build_and_carries_a_case_not_reached(
    time_env, pool, time_queue, sla_policy
):
    # Beyond the criteria's window of every earlier test's cases: the agenda holds this test's alone.
    await advance_to(time_env, await time_env.get_current_time() + timedelta(days=120))
    repeat = synthetic_missing_report(rng=seeded("panel-repeat"))
    for number in range(3):
        report = repeat.model_copy(update={"report_id": uuid.uuid4()})
        _, repeat_episode = await start_episode(time_env.client, time_queue, sla_policy, report=report)
    _, cse_episode = await start_episode(
        time_env.client, time_queue, sla_policy,
        report=synthetic_missing_report(rng=seeded("panel-cse"), indicators=[RiskIndicator.CSE_CONCERN]),
    )
    _, quiet_episode = await start_episode(time_env.client, time_queue, sla_policy, seed="panel-quiet")
    # A child whose trigger plan falls due for review before the sitting meets.
    planned = synthetic_missing_report(rng=seeded("panel-plan"))
    plan = await start_plan(time_env.client, time_queue, sla_policy, planned.child,
                            synthetic_trigger_plan((await time_env.get_current_time()) + timedelta(days=3)))
    _, plan_episode = await start_episode(time_env.client, time_queue, sla_policy, report=planned)
    _, cse_referral = await start_referral(
        time_env.client, time_queue, sla_policy, submission=synthetic_vist(rng=seeded("panel-cse-vist"), incident_type=IncidentType.CSE)
    )
    _, other_referral = await start_referral(time_env.client, time_queue, sla_policy, seed="panel-other")
    for table, column, value in (
        ("missing_episodes", "episode_id", cse_episode.id), ("missing_episodes", "episode_id", quiet_episode.id),
        ("referrals", "reference", cse_referral.id), ("referrals", "reference", other_referral.id),
        ("trigger_plans", "plan_id", plan.id), ("missing_episodes", "episode_id", plan_episode.id),
    ):
        await in_read_model(pool, table, column, value)
    assert (await repeat_episode.query(MissingEpisodeWorkflow.state)).repeat_missing

    # What the panel's schedule starts (the schedule itself is run on the dev server below).
    panel = a_panel(agenda_days_before=5)
    opened = await time_env.client.execute_workflow(
        PanelOpeningWorkflow.run, PanelOpening(panel=panel, policy=sla_policy), id=f"panel-{panel.panel_id}-{uuid.uuid4().hex[:6]}",
        task_queue=time_queue,
    )
    today = (await time_env.get_current_time()).astimezone(LONDON).date()
    assert opened.created and opened.sitting_id == panel_sitting_id(panel.panel_id, today + timedelta(days=5))
    handle = sitting_of(time_env, opened.sitting_id)
    state = await built(handle)
    assert state.meets_at == datetime.combine(today + timedelta(days=5), time(10), tzinfo=LONDON)
    reasons = {item.case_id: item.reasons for item in state.agenda}
    assert reasons == {
        repeat_episode.id: [AgendaCriterion.REPEAT_MISSING],
        cse_episode.id: [AgendaCriterion.CSE_CONCERN],
        cse_referral.id: [AgendaCriterion.CSE_CONCERN],
        plan_episode.id: [AgendaCriterion.TRIGGER_PLAN_DUE],
    }
    assert all(item.required_roles == [NamedRole.ALLOCATED_SOCIAL_WORKER, NamedRole.ALLOCATED_OFFICER, NamedRole.CSE_TEAM]
               for item in state.agenda)
    # The same day opened again is found, not opened twice.
    again = await time_env.client.execute_workflow(
        PanelOpeningWorkflow.run, PanelOpening(panel=panel, policy=sla_policy), id=f"panel-{uuid.uuid4().hex[:6]}",
        task_queue=time_queue,
    )
    assert (again.sitting_id, again.created) == (opened.sitting_id, False)

    # Before the meeting, a member agency refers a case; a non-member cannot.
    health_only = AgendaEdit(actor=SCREENER, add=[AgendaAddition(case_id=other_referral.id, referred_by=Agency.HOUSING)],
                             reason="Synthetic referral.")
    await refused(handle, PanelSittingWorkflow.edit_agenda, health_only, "add[0].referred_by: not a member agency",
                  query=PanelSittingWorkflow.state)
    sittings = PanelSittings(time_env.client)
    await sittings.decide(opened.sitting_id, health_only.model_copy(
        update={"add": [AgendaAddition(case_id=other_referral.id, referred_by=Agency.EDUCATION)]}))
    rows = await eventually(
        lambda: pool.fetch("SELECT case_id, reasons, referred_by FROM panel_agenda_items WHERE sitting_id = $1 ORDER BY case_id",
                           opened.sitting_id),
        lambda r: len(r) == 5,
    )
    assert {r["case_id"]: (r["reasons"], r["referred_by"]) for r in rows}[other_referral.id] == (["member_referral"], "education")

    # The meeting reaches one case; the others are carried, flagged, to the next sitting.
    await sittings.decide(opened.sitting_id, MeetingStart(actor=CHAIR))
    await sittings.decide(opened.sitting_id, PanelCaseOutcome(actor=CHAIR, case_id=cse_referral.id, rationale="Synthetic."))
    closed = await sittings.decide(opened.sitting_id, SittingClosure(actor=CHAIR))
    assert closed.phase is SittingPhase.CLOSED or closed.phase is SittingPhase.ACTIONS
    not_reached = {item.case_id for item in closed.agenda if item.not_reached}
    assert not_reached == {repeat_episode.id, cse_episode.id, other_referral.id, plan_episode.id}
    await finished(time_env, handle)
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM panel_agenda_items WHERE sitting_id = $1 AND not_reached", opened.sitting_id),
        lambda n: n == 4,
    )

    await advance_to(time_env, await time_env.get_current_time() + timedelta(days=14))
    following = await time_env.client.execute_workflow(
        PanelOpeningWorkflow.run, PanelOpening(panel=panel, policy=sla_policy), id=f"panel-{uuid.uuid4().hex[:6]}",
        task_queue=time_queue,
    )
    next_state = await built(sitting_of(time_env, following.sitting_id))
    by_case = {item.case_id: item for item in next_state.agenda}
    assert {case for case, item in by_case.items() if item.carried_from == opened.sitting_id} == not_reached
    assert by_case[other_referral.id].reasons == [AgendaCriterion.CARRIED]
    assert by_case[repeat_episode.id].reasons == [AgendaCriterion.CARRIED, AgendaCriterion.REPEAT_MISSING]
    assert by_case[cse_referral.id].carried_from is None
    # Still due: carried, and due again.
    assert by_case[plan_episode.id].reasons == [AgendaCriterion.CARRIED, AgendaCriterion.TRIGGER_PLAN_DUE]
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM panel_agenda_items WHERE sitting_id = $1 AND carried_to = $2",
                              opened.sitting_id, following.sitting_id),
        lambda n: n == 4,
    )


async def a_sitting_in_session(env, pool, queue, policy, cases: list[str]):
    """A sitting opened by hand today for a panel taking member referrals only, `cases` referred, the meeting open."""
    panel = a_panel(criteria=[AgendaCriterion.MEMBER_REFERRAL])
    today = (await env.get_current_time()).astimezone(LONDON).date()
    sittings = PanelSittings(env.client)
    state, created = await sittings.open(panel, today, policy, queue)
    assert created
    handle = sitting_of(env, state.sitting_id)
    await built(handle)
    additions = [AgendaAddition(case_id=case, referred_by=Agency.CHILDRENS_SOCIAL_CARE) for case in cases]
    await sittings.decide(state.sitting_id, AgendaEdit(actor=SCREENER, add=additions, reason="Synthetic referrals."))
    await sittings.decide(state.sitting_id, MeetingStart(actor=CHAIR))
    return sittings, handle


async def test_a_grade_decided_at_a_panel_is_on_the_live_episode_at_once_and_an_absent_required_attendee_escalates(
    time_env, pool, time_queue, sla_policy
):
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="panel-grade")
    _, referral = await start_referral(time_env.client, time_queue, sla_policy, seed="panel-grade-vist")
    await in_read_model(pool, "referrals", "reference", referral.id)
    before = await episode.query(MissingEpisodeWorkflow.state)
    assert before.grade is MissingGrade.MEDIUM
    sittings, handle = await a_sitting_in_session(time_env, pool, time_queue, sla_policy, [episode.id, referral.id])

    # The social worker attends for the episode alone; the allocated officer for every case; no one from the CSE team.
    await sittings.decide(handle.id, AttendanceRecord(actor=SCREENER, attendees=[
        PanelAttendee(name="Social Worker Synthetic", agency=Agency.CHILDRENS_SOCIAL_CARE, role="Social worker",
                      named_role=NamedRole.ALLOCATED_SOCIAL_WORKER, case_ids=[episode.id]),
        PanelAttendee(name="PC Synthetic", agency=Agency.POLICE, role="Officer in case", named_role=NamedRole.ALLOCATED_OFFICER),
        PanelAttendee(name="Health Synthetic", agency=Agency.HEALTH, role="School nurse"),
    ], absences=[PanelAbsence(case_id=referral.id, named_role=NamedRole.ALLOCATED_SOCIAL_WORKER, reason="Synthetic: on leave.")]))

    soon = (await time_env.get_current_time()) + timedelta(days=7)
    state = await sittings.decide(handle.id, PanelCaseOutcome(
        actor=CHAIR, case_id=episode.id, grade=PanelGrade.HIGH, rationale="Synthetic: exploitation risk rising.",
        agreed_actions=[police_action(soon)],
    ))
    # The live episode took the grade as its own regrade when the decision returned, and its deadlines moved.
    after = await episode.query(MissingEpisodeWorkflow.state)
    assert (after.grade, after.review_due < before.review_due, after.tracing_due < before.tracing_due) == (MissingGrade.HIGH, True, True)
    assert after.history[-1].kind == "episode_regraded" and after.history[-1].actor_id == CHAIR.id
    item = next(i for i in state.agenda if i.case_id == episode.id)
    assert (item.grade, item.grade_applied.result, item.absent_roles) == (PanelGrade.HIGH, "applied", [NamedRole.CSE_TEAM])
    (escalation,) = state.escalations
    assert (escalation.reason, escalation.subject, escalation.rank, escalation.addressed_to) == (
        "absent_attendee", f"cse_team at {episode.id}", Rank.SERGEANT, "sergeant (police)")
    assert escalation.escalation_id == f"{handle.id}.E1"

    # The referral's social worker was absent (with a reason) as well as the CSE team; a grade it already has is unchanged.
    state = await sittings.decide(handle.id, PanelCaseOutcome(actor=CHAIR, case_id=referral.id, grade=PanelGrade.MEDIUM,
                                                              rationale="Synthetic."))
    item = next(i for i in state.agenda if i.case_id == referral.id)
    assert item.absent_roles == [NamedRole.ALLOCATED_SOCIAL_WORKER, NamedRole.CSE_TEAM]
    assert item.grade_applied.result == "unchanged"
    assert [e.subject for e in state.escalations[1:]] == [f"allocated_social_worker at {referral.id}", f"cse_team at {referral.id}"]
    rows = await eventually(
        lambda: pool.fetch("SELECT case_id, named_role, reason, escalated FROM panel_absences WHERE sitting_id = $1 ORDER BY case_id, named_role",
                           handle.id),
        lambda r: len(r) == 3,
    )
    assert {(r["case_id"], r["named_role"]): (r["reason"], r["escalated"]) for r in rows}[(referral.id, "allocated_social_worker")] == (
        "Synthetic: on leave.", True)
    escalated = await eventually(
        lambda: pool.fetch("SELECT reason, reference FROM escalations WHERE escalation_id LIKE $1 || '.E%'", handle.id),
        lambda r: len(r) == 3,
    )
    assert {(r["reason"], r["reference"]) for r in escalated} == {("absent_attendee", handle.id)}
    regrade = await eventually(
        lambda: pool.fetchrow("SELECT grade FROM missing_episodes WHERE episode_id = $1", episode.id),
        lambda r: r["grade"] == "high",
    )
    assert regrade["grade"] == "high"

    # An escalation is acknowledged; the meeting closes; the action's owner completes it; the sitting ends.
    await sittings.decide(handle.id, EscalationAcknowledgement(actor=SERGEANT, escalation_id=escalation.escalation_id))
    closed = await sittings.decide(handle.id, SittingClosure(actor=CHAIR))
    (action,) = closed.actions
    assert action.action_id == f"{handle.id}.A1"
    action_handle = time_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, action.action_id)
    await action_handle.execute_update(AgreedActionWorkflow.complete, ActionCompletion(actor=OFFICER, note="Synthetic: done."))
    result = await finished(time_env, handle)
    assert result.phase is SittingPhase.CLOSED and result.actions[0].completed_by == OFFICER.id
    assert [(e.acknowledged_by, e.resolution) for e in result.escalations] == [
        (SERGEANT.id, None), (None, "sitting_closed"), (None, "sitting_closed")]


async def test_a_panels_decisions_about_a_child_are_in_the_screening_view_of_their_next_referral(
    time_env, pool, time_queue, sla_policy
):
    missing_report, episode = await start_episode(time_env.client, time_queue, sla_policy, seed="panel-view-episode")
    _, undecided = await start_episode(time_env.client, time_queue, sla_policy, report=missing_report.model_copy(
        update={"report_id": uuid.uuid4()}))
    referred, referral = await start_referral(time_env.client, time_queue, sla_policy, seed="panel-view-vist")
    _, stranger = await start_referral(time_env.client, time_queue, sla_policy, seed="panel-view-stranger")
    for case in (referral, stranger):
        await in_read_model(pool, "referrals", "reference", case.id)
    sittings, handle = await a_sitting_in_session(time_env, pool, time_queue, sla_policy,
                                                  [episode.id, undecided.id, referral.id, stranger.id])
    soon = (await time_env.get_current_time()) + timedelta(days=7)
    for case, grade, actions in ((episode, PanelGrade.HIGH, [police_action(soon)]), (referral, PanelGrade.HIGH, []),
                                 (stranger, PanelGrade.HIGH, [])):
        await sittings.decide(handle.id, PanelCaseOutcome(actor=CHAIR, case_id=case.id, grade=grade,
                                                          rationale="Synthetic.", agreed_actions=actions))
    decided = await eventually(lambda: pool.fetch(
        "SELECT case_id, decided_at FROM panel_agenda_items WHERE sitting_id = $1 AND decided_at IS NOT NULL", handle.id),
        lambda rows: len(rows) == 3)
    decided_at = {row["case_id"]: row["decided_at"] for row in decided}

    # A new referral about the missing child (C1) and the first referral's child (C2).
    now = await time_env.get_current_time()
    again = synthetic_vist(rng=seeded("panel-view-again"), incident_type=IncidentType.NEGLECT,
                           occurred_at=now - timedelta(hours=1), children=2)
    missing_child = missing_report.child
    again.children = [again.children[0].model_copy(update={"name": missing_child.name, "date_of_birth": missing_child.date_of_birth}),
                      referred.children[0].model_copy(update={"child_id": "C2"})]
    _, handle_again = await start_referral(time_env.client, time_queue, sla_policy, submission=again)
    view = (await handle_again.execute_update(ReferralWorkflow.review, approval())).screening_view

    # Each decided case about the children once, newest first, with whom it is about; no undecided case, no stranger.
    assert view.panel_decisions == [
        PriorPanelDecision(sitting_id=handle.id, case_id=referral.id, decided_at=decided_at[referral.id], grade="high",
                           actions_agreed=0, matched_on=["child"], child_ids=["C2"]),
        PriorPanelDecision(sitting_id=handle.id, case_id=episode.id, decided_at=decided_at[episode.id], grade="high",
                           actions_agreed=1, matched_on=["child"], child_ids=["C1"]),
    ]


async def test_an_action_without_a_deadline_or_due_before_the_meeting_is_refused_and_changes_nothing(
    time_env, pool, time_queue, sla_policy
):
    with pytest.raises(ValidationError, match=r"agreed_actions\[0\]\.deadline: every agreed action needs a deadline"):
        PanelCaseOutcome.model_validate({
            "actor": CHAIR.model_dump(), "case_id": "REF-00000-00000", "rationale": "Synthetic.",
            "agreed_actions": [{"description": "Synthetic.", "owner": {"agency": "police", "owner": "DC Synthetic"}}],
        })
    _, referral = await start_referral(time_env.client, time_queue, sla_policy, seed="panel-deadline")
    await in_read_model(pool, "referrals", "reference", referral.id)
    sittings, handle = await a_sitting_in_session(time_env, pool, time_queue, sla_policy, [referral.id])
    now = await time_env.get_current_time()
    late = PanelCaseOutcome(actor=CHAIR, case_id=referral.id, rationale="Synthetic.", agreed_actions=[police_action(now - timedelta(hours=1))])
    await refused(handle, PanelSittingWorkflow.record_outcome, late, "agreed_actions[0].deadline: must be after the meeting",
                  query=PanelSittingWorkflow.state)
    by_screener = late.model_copy(update={"actor": SCREENER, "agreed_actions": []})
    await refused(handle, PanelSittingWorkflow.record_outcome, by_screener, "actor.role: a screener may not decide a case at a panel",
                  query=PanelSittingWorkflow.state)
    # A grade sent straight to the workflow, not through the API's client, has no signed regrade to carry it.
    ungraded = late.model_copy(update={"agreed_actions": [], "grade": PanelGrade.HIGH})
    await refused(handle, PanelSittingWorkflow.record_outcome, ungraded, "grade: a panel's grade reaches the live case only through the API",
                  query=PanelSittingWorkflow.state)
    assert (await referral.query(ReferralWorkflow.state)).risk is RiskGrade.MEDIUM
    await sittings.decide(handle.id, SittingClosure(actor=CHAIR))
    result = await finished(time_env, handle)
    assert [item.not_reached for item in result.agenda] == [True]


async def test_a_panels_schedule_opens_its_sitting_with_its_agenda_built(dev_env, pool, task_queue, settings, sla_policy):
    """On the dev server (real time): the panel's schedule as the API creates it, triggered now, opens the sitting
    `agenda_days_before` ahead, named by the panel and that date, its agenda built; a second run finds it."""
    from datetime import timezone

    from starter.panels import ensure_panel_schedule, panels, schedule_id
    from tests.conftest import make_worker

    today = datetime.now(timezone.utc).astimezone(LONDON).date()
    monthly = a_panel(cadence=Cadence.MONTHLY, first_sitting=date(2026, 12, 15), agenda_days_before=7)
    async with make_worker(dev_env.client, pool, settings, task_queue):
        created = await ensure_panel_schedule(dev_env.client, monthly, sla_policy, task_queue)
        assert created == schedule_id(monthly.panel_id)
        schedule = dev_env.client.get_schedule_handle(created)
        try:
            calendar = (await schedule.describe()).schedule.spec.calendars[0]
            assert [(r.start, r.end) for r in calendar.day_of_month] == [(8, 8)]
            assert [r.start for r in calendar.hour] == [7]
            listed = {panel.panel_id: (panel, times) for panel, times in await panels(dev_env.client)}
            assert listed[monthly.panel_id][0] == monthly and listed[monthly.panel_id][1][0].day == 8
            await schedule.trigger()
            sitting_id = panel_sitting_id(monthly.panel_id, today + timedelta(days=7))
            handle = sitting_of(dev_env, sitting_id)
            state = await eventually(lambda: _built_or_none(handle), lambda s: s is not None and s.agenda_built, timeout=30)
        finally:
            await schedule.delete()
        assert state.phase is SittingPhase.AGENDA and state.panel_id == monthly.panel_id
        await eventually(lambda: pool.fetchval("SELECT phase FROM panel_sittings WHERE sitting_id = $1", sitting_id),
                         lambda phase: phase == "agenda")
        again = await dev_env.client.execute_workflow(
            PanelOpeningWorkflow.run, PanelOpening(panel=monthly, policy=sla_policy), id=f"opening-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        assert (again.sitting_id, again.created) == (sitting_id, False)


async def _built_or_none(handle) -> SittingState | None:
    from temporalio.service import RPCError

    try:
        return await handle.query(PanelSittingWorkflow.state)
    except RPCError:
        return None
