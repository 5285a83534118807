"""A panel sitting's rules in memory: who makes each decision and when, each refusal leaving the sitting as it was, a
decision sent three times at once taken once, the absences it escalates, the grade forwarded once, the minutes."""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from datetime import date, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from starter.panels import PanelSittings
from starter.synthetic import AUDITOR, CSC_PARTNER, INSPECTOR, OFFICER, SCREENER
from tests.helpers import REFUSAL_WAIT, STARTED, eventually, finished, refused
from workflows.facts import FactKind
from workflows.action import AgreedActionWorkflow
from workflows.models import ActionCompletion, ActionOwner, Agency, AgreedActionSpec, NamedRole, panel_sitting_id
from workflows.panel import PanelSittingWorkflow
from workflows.panel_models import (
    AgendaAddition,
    AgendaCandidate,
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
    SittingClosure,
    SittingPhase,
    SittingStart,
)


def case_id(prefix: str = "MIS-") -> str:
    code = f"{uuid.uuid4().int % 10**10:010d}"
    return f"{prefix}{code[:5]}-{code[5:]}"


async def open_sitting(env, queue, policy, fakes, *cases: str, in_session: bool = False):
    """A sitting of a fresh panel whose agenda the fake builds from `cases` (a CSE concern each)."""
    fakes.panels.candidates[:] = [AgendaCandidate(case_id=c, reasons=[AgendaCriterion.CSE_CONCERN]) for c in cases]
    panel = Panel(panel_id="F" + "".join(random.choices(string.ascii_uppercase, k=7)), name="Synthetic panel",
                  area="Testshire", cadence=Cadence.MONTHLY, first_sitting=date(2026, 12, 8))
    day = (await env.get_current_time()).date()
    handle = await env.client.start_workflow(
        PanelSittingWorkflow.run, SittingStart(panel=panel, day=day, policy=policy),
        id=panel_sitting_id(panel.panel_id, day), task_queue=queue,
    )
    STARTED.append(handle)
    await eventually(lambda: handle.query(PanelSittingWorkflow.state), lambda s: s.agenda_built)
    if in_session:
        await handle.execute_update(PanelSittingWorkflow.open_meeting, MeetingStart(actor=INSPECTOR))
    return handle


@pytest.mark.parametrize(("update", "build", "actors", "phase"), [
    (PanelSittingWorkflow.edit_agenda,
     lambda a, case: AgendaEdit(actor=a, add=[AgendaAddition(case_id=case_id(), referred_by=Agency.HEALTH)], reason="S."),
     (OFFICER, CSC_PARTNER, AUDITOR), "agenda"),
    (PanelSittingWorkflow.open_meeting, lambda a, case: MeetingStart(actor=a), (SCREENER, OFFICER, CSC_PARTNER), "agenda"),
    (PanelSittingWorkflow.record_attendance,
     lambda a, case: AttendanceRecord(actor=a, attendees=[PanelAttendee(name="S", agency=Agency.HEALTH, role="Nurse")]),
     (OFFICER, CSC_PARTNER, AUDITOR), "in_session"),
    (PanelSittingWorkflow.record_outcome, lambda a, case: PanelCaseOutcome(actor=a, case_id=case, rationale="S."),
     (SCREENER, OFFICER, CSC_PARTNER), "in_session"),
    (PanelSittingWorkflow.close_meeting, lambda a, case: SittingClosure(actor=a), (SCREENER, OFFICER, AUDITOR), "in_session"),
], ids=["edit_agenda", "open_meeting", "record_attendance", "record_outcome", "close_meeting"])
async def test_each_decision_is_refused_to_other_roles_and_outside_its_phase_and_taken_once(
    update, build, actors, phase, fast_env, fast_queue, fakes, sla_policy
):
    case = case_id()
    handle = await open_sitting(fast_env, fast_queue, sla_policy, fakes, case, in_session=phase == "in_session")
    for actor in actors:
        await refused(handle, update, build(actor, case), "actor.role", query=PanelSittingWorkflow.state)
    maker = SCREENER if update in (PanelSittingWorkflow.edit_agenda, PanelSittingWorkflow.record_attendance) else INSPECTOR
    # Out of its phase: after the meeting opened (an agenda decision) or before it (a meeting decision).
    other = await open_sitting(fast_env, fast_queue, sla_policy, fakes, case, in_session=phase == "agenda")
    await refused(other, update, build(maker, case), "phase: the sitting is", query=PanelSittingWorkflow.state)
    decision = build(maker, case)
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(handle.execute_update(update, decision) for _ in range(3)), return_exceptions=True), REFUSAL_WAIT)
    taken = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(taken) == 1, outcomes
    assert all(isinstance(o, WorkflowUpdateFailedError) for o in outcomes if o not in taken)


async def test_absences_are_checked_and_escalated_and_a_grade_is_forwarded_once(fast_env, fast_queue, fakes, sla_policy):
    episode, referral = case_id(), case_id("REF-")
    handle = await open_sitting(fast_env, fast_queue, sla_policy, fakes, episode, referral, in_session=True)
    sittings = PanelSittings(fast_env.client)
    officer = PanelAttendee(name="S", agency=Agency.POLICE, role="Officer", named_role=NamedRole.ALLOCATED_OFFICER)
    await refused(handle, PanelSittingWorkflow.record_attendance,
                  AttendanceRecord(actor=SCREENER, attendees=[officer],
                                   absences=[PanelAbsence(case_id=episode, named_role=NamedRole.ALLOCATED_OFFICER, reason="S.")]),
                  "absences[0].named_role: an attendee fills this role", query=PanelSittingWorkflow.state)
    await refused(handle, PanelSittingWorkflow.record_attendance,
                  AttendanceRecord(actor=SCREENER, absences=[PanelAbsence(case_id=case_id(), named_role=NamedRole.CSE_TEAM, reason="S.")]),
                  "absences[0].case_id: not on the agenda", query=PanelSittingWorkflow.state)
    await sittings.decide(handle.id, AttendanceRecord(actor=SCREENER, attendees=[officer]))

    due = (await fast_env.get_current_time()) + timedelta(days=3)
    action = AgreedActionSpec(description="S.", owner=ActionOwner(agency=Agency.POLICE, owner="S"), deadline=due)
    state = await sittings.decide(handle.id, PanelCaseOutcome(actor=INSPECTOR, case_id=episode, grade=PanelGrade.HIGH,
                                                              rationale="S.", agreed_actions=[action]))
    (forwarded,) = fakes.panels.grades
    assert (forwarded.workflow_id, forwarded.update, forwarded.update_id) == (episode, "regrade", f"{handle.id}/{episode}/grade")
    assert forwarded.decision.proof is not None and forwarded.decision.actor == INSPECTOR
    assert [e.subject for e in state.escalations] == [f"allocated_social_worker at {episode}", f"cse_team at {episode}"]
    assert {a.agency for a in fakes.alerts.alerts_of(handle.id)} == {Agency.CHILDRENS_SOCIAL_CARE, Agency.POLICE}
    kinds = fakes.records.kinds_of(handle.id)
    assert kinds.count(FactKind.ESCALATION_RAISED) == 2 and FactKind.PANEL_GRADE_APPLIED in kinds
    # A referral is not graded low; an episode not standard.
    with pytest.raises(ValueError, match="grade: a referral is graded standard, medium or high"):
        PanelCaseOutcome(actor=INSPECTOR, case_id=referral, grade=PanelGrade.LOW, rationale="S.")
    with pytest.raises(ValueError, match="grade: a missing episode is graded low, medium or high"):
        PanelCaseOutcome(actor=INSPECTOR, case_id=episode, grade=PanelGrade.STANDARD, rationale="S.")

    closed = await sittings.decide(handle.id, SittingClosure(actor=INSPECTOR))
    assert [(i.case_id, i.not_reached) for i in closed.agenda] == [(episode, False), (referral, True)]
    minutes = await sittings.minutes(handle.id)
    assert [c.grade for c in minutes.cases] == [PanelGrade.HIGH, None]
    assert minutes.cases[0].attended_by == ["allocated_officer: S (police)"]
    assert [a.action_id for a in minutes.cases[0].actions] == [f"{handle.id}.A1"]
    await fast_env.client.get_workflow_handle_for(AgreedActionWorkflow.run, f"{handle.id}.A1").execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=OFFICER, note="S."))
    result = await finished(fast_env, handle)
    assert result.phase is SittingPhase.CLOSED
    assert [e.resolution for e in result.escalations] == ["sitting_closed", "sitting_closed"]
