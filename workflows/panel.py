"""PanelSittingWorkflow: one sitting of a multi-agency panel (a CSE/missing MARAC), from its agenda to its minutes and agreed actions.

The panel's cadence (a Temporal Schedule per panel) starts `PanelOpeningWorkflow`, which opens
the sitting `agenda_days_before` ahead; the sitting's ID is its panel's code and its date. Its
agenda is built from the read model by the panel's criteria (repeat missing, a CSE concern, a
trigger plan due for review) with the cases its last sitting did not reach, and is edited before
the meeting (a member agency's referral). At the meeting, attendance is recorded by named person,
agency and role; each case's required roles (the allocated social worker, the allocated officer,
the CSE team) not filled are flagged and escalated when the case is decided. A grade decided is
applied at once to the child's live referral or missing episode, as that case's own regrade (its
deadlines move there); the agreed actions, each with an owner and a deadline, run as child
`AgreedActionWorkflow`s. The minutes are read from the record; a case not reached is carried.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.panels import PanelRecords
    from workflows.action import register_action, reported_change, start_actions
    from workflows.alerting import AlertDispatch
    from workflows.authority import PANEL_CHAIRS, PANEL_COORDINATORS, reject, require
    from workflows.calendar import local_date, local_moment
    from workflows.escalation import EscalationBook
    from workflows.facts import (
        FactPayload,
        ListedCase,
        PanelAgendaEdited,
        PanelAttendanceRecorded,
        PanelCaseDecided,
        PanelGradeApplied,
        PanelMeetingOpened,
        PanelSittingClosed,
        PanelSittingOpened,
        RecordedEvent,
    )
    from workflows.models import (
        SYSTEM_ACTOR,
        ActionState,
        Actor,
        Agency,
        AgreedActionSpec,
        EscalationAcknowledgement,
        HistoryEntry,
        NamedRole,
        Role,
    )
    from workflows.panel_models import (
        AgendaCriterion,
        AgendaEdit,
        AgendaItem,
        AgendaQuery,
        AttendanceRecord,
        MeetingStart,
        Minutes,
        MinutesCase,
        PanelAbsence,
        PanelAttendee,
        PanelCaseOutcome,
        PanelOpening,
        SittingClosure,
        SittingOpened,
        SittingPhase,
        SittingStart,
        SittingState,
    )
    from workflows.recording import Outbox

ACTIVITY_TIMEOUT = timedelta(minutes=2)
# The agency whose chain hears that a required role was absent: the role's own.
ROLE_AGENCY = {
    NamedRole.ALLOCATED_SOCIAL_WORKER: Agency.CHILDRENS_SOCIAL_CARE,
    NamedRole.INVESTIGATING_OFFICER: Agency.POLICE,
    NamedRole.ALLOCATED_OFFICER: Agency.POLICE,
    NamedRole.CSE_TEAM: Agency.POLICE,
}


@workflow.defn
class PanelSittingWorkflow:
    @workflow.init
    def __init__(self, start: SittingStart) -> None:
        self._id = workflow.info().workflow_id
        self._panel = start.panel
        self._day = start.day
        self._policy = start.policy
        self._meets_at = local_moment(start.day, start.panel.meets_at, start.policy.timezone)
        self._phase = SittingPhase.AGENDA
        self._agenda_built = False
        self._agenda: dict[str, AgendaItem] = {}
        self._attendees: list[PanelAttendee] = []
        self._absences: list[PanelAbsence] = []
        self._held_at = None
        self._closed_at = None
        self._actions: dict[str, ActionState] = {}
        self._action_tasks: list[asyncio.Task[None]] = []
        self._history: list[HistoryEntry] = []
        self._outbox = Outbox(stream=self._id, reference=self._id, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._escalations = EscalationBook(self._id, self._alerts, record=lambda payload, actor, _: self._fact(payload, actor))

    @workflow.run
    async def run(self, start: SittingStart) -> SittingState:
        writer = asyncio.create_task(self._outbox.drain_forever())
        agenda = await workflow.execute_activity_method(
            PanelRecords.panel_agenda,
            AgendaQuery(
                panel_id=self._panel.panel_id,
                sitting_id=self._id,
                criteria=self._panel.criteria,
                since=workflow.now() - timedelta(days=self._panel.lookback_days),
                until=self._meets_at,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        for candidate in agenda.candidates:
            self._list(candidate.case_id, candidate.reasons, carried_from=candidate.carried_from)
        self._agenda_built = True
        self._fact(
            PanelSittingOpened(
                panel_id=self._panel.panel_id,
                panel_name=self._panel.name,
                day=self._day,
                meets_at=self._meets_at,
                agenda=[ListedCase(case_id=i.case_id, reasons=i.reasons, carried_from=i.carried_from)
                        for i in self._agenda.values()],
            ),
            SYSTEM_ACTOR,
        )
        await workflow.wait_condition(lambda: self._phase is SittingPhase.ACTIONS)
        # Every agreed action runs to completion; none is started after the minutes are made.
        await workflow.wait_condition(lambda: all(a.completed_at is not None for a in self._actions.values()))
        await asyncio.gather(*self._action_tasks)
        # The sitting is over: nobody can acknowledge its escalations any more.
        self._escalations.resolve(self._escalations.awaiting_acknowledgement(), "sitting_closed")
        self._phase = SittingPhase.CLOSED
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        return self.state()

    # --- queries ---------------------------------------------------------------------

    @workflow.query
    def state(self) -> SittingState:
        return SittingState(
            sitting_id=self._id,
            panel_id=self._panel.panel_id,
            panel_name=self._panel.name,
            day=self._day,
            meets_at=self._meets_at,
            phase=self._phase,
            agenda_built=self._agenda_built,
            agenda=list(self._agenda.values()),
            attendees=list(self._attendees),
            absences=list(self._absences),
            held_at=self._held_at,
            closed_at=self._closed_at,
            actions=list(self._actions.values()),
            escalations=list(self._escalations.escalations),
            history=list(self._history),
        )

    @workflow.query
    def minutes(self) -> Minutes:
        """The minutes, read from the record: nobody writes them, so nothing decided is left out."""
        return minutes_of(self.state())

    # --- before the meeting: the agenda ----------------------------------------------

    @workflow.update
    async def edit_agenda(self, edit: AgendaEdit) -> SittingState:
        for addition in edit.add:
            self._list(addition.case_id, [AgendaCriterion.MEMBER_REFERRAL], referred_by=addition.referred_by)
        for case_id in edit.remove:
            del self._agenda[case_id]
        self._fact(PanelAgendaEdited.of(edit), edit.actor)
        return await self._recorded_state()

    @edit_agenda.validator
    def _check_edit_agenda(self, edit: AgendaEdit) -> None:
        self._check(edit.actor, PANEL_COORDINATORS, "edit a panel's agenda", SittingPhase.AGENDA)
        for index, addition in enumerate(edit.add):
            if addition.case_id in self._agenda:
                raise reject(f"add[{index}].case_id: already on the agenda")
            if addition.referred_by not in self._panel.member_agencies:
                raise reject(f"add[{index}].referred_by: not a member agency of this panel")
            if edit.actor.role is Role.PARTNER and edit.actor.agency is not addition.referred_by:
                raise reject(f"add[{index}].referred_by: a partner refers cases for their own agency only")
        for index, case_id in enumerate(edit.remove):
            if case_id not in self._agenda:
                raise reject(f"remove[{index}]: not on the agenda")

    # --- the meeting -------------------------------------------------------------------

    @workflow.update
    async def open_meeting(self, start: MeetingStart) -> SittingState:
        self._phase = SittingPhase.IN_SESSION
        self._held_at = workflow.now()
        self._fact(PanelMeetingOpened(held_at=self._held_at), start.actor)
        return await self._recorded_state()

    @open_meeting.validator
    def _check_open_meeting(self, start: MeetingStart) -> None:
        self._check(start.actor, PANEL_CHAIRS, "open a panel's meeting", SittingPhase.AGENDA)

    @workflow.update
    async def record_attendance(self, record: AttendanceRecord) -> SittingState:
        self._attendees.extend(record.attendees)
        self._absences.extend(record.absences)
        self._fact(PanelAttendanceRecorded.of(record), record.actor)
        return await self._recorded_state()

    @record_attendance.validator
    def _check_record_attendance(self, record: AttendanceRecord) -> None:
        self._check(record.actor, PANEL_COORDINATORS, "record a panel's attendance", SittingPhase.IN_SESSION)
        for index, attendee in enumerate(record.attendees):
            # The same register sent again (a second click) adds no one twice.
            if attendee in self._attendees or attendee in record.attendees[:index]:
                raise reject(f"attendees[{index}]: already recorded at this sitting")
            for case_id in attendee.case_ids:
                if case_id not in self._agenda:
                    raise reject(f"attendees[{index}].case_ids: names a case not on the agenda")
        recorded = {(a.case_id, a.named_role) for a in self._absences}
        for index, absence in enumerate(record.absences):
            item = self._agenda.get(absence.case_id)
            if item is None:
                raise reject(f"absences[{index}].case_id: not on the agenda")
            if absence.named_role not in item.required_roles:
                raise reject(f"absences[{index}].named_role: not a role this case requires")
            if item.decided:
                raise reject(f"absences[{index}].case_id: already decided; its absences are recorded")
            if (absence.case_id, absence.named_role) in recorded:
                raise reject(f"absences[{index}].named_role: this absence is already recorded")
            if self._filled(absence.case_id, absence.named_role, record):
                raise reject(f"absences[{index}].named_role: an attendee fills this role")

    @workflow.update
    async def record_outcome(self, outcome: PanelCaseOutcome) -> SittingState:
        item = self._agenda[outcome.case_id]
        item.decided_at = workflow.now()
        item.decided_by = outcome.actor.id
        item.grade = outcome.grade
        item.absent_roles = [role for role in item.required_roles if not self._filled(item.case_id, role)]
        agreed = [register_action(self._actions, self._id, spec) for spec in outcome.agreed_actions]
        item.action_ids = [action_id for action_id, _ in agreed]
        self._fact(PanelCaseDecided.of(outcome, action_ids=item.action_ids, absent_roles=item.absent_roles),
                   outcome.actor)
        for role in item.absent_roles:
            self._raise_absence(item.case_id, role)
        if outcome.forwarded is not None and outcome.grade is not None:
            item.grade_applied = await workflow.execute_activity_method(
                PanelRecords.apply_grade, outcome.forwarded, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            self._fact(PanelGradeApplied(case_id=item.case_id, grade=outcome.grade, **item.grade_applied.model_dump()),
                       SYSTEM_ACTOR)
        await self._start_actions(outcome.actor, agreed)
        return await self._recorded_state()

    @record_outcome.validator
    def _check_record_outcome(self, outcome: PanelCaseOutcome) -> None:
        self._check(outcome.actor, PANEL_CHAIRS, "decide a case at a panel", SittingPhase.IN_SESSION)
        item = self._agenda.get(outcome.case_id)
        if item is None:
            raise reject("case_id: not on the agenda")
        if item.decided:
            raise reject("case_id: already decided at this sitting")
        for index, action in enumerate(outcome.agreed_actions):
            if action.deadline <= workflow.now():
                raise reject(f"agreed_actions[{index}].deadline: must be after the meeting")
        if outcome.grade is not None:
            forwarded = outcome.forwarded
            if forwarded is None:
                raise reject("grade: a panel's grade reaches the live case only through the API, which signs its regrade")
            decided = getattr(forwarded.decision, "risk", None) or getattr(forwarded.decision, "grade", None)
            if (forwarded.workflow_id != outcome.case_id or forwarded.decision.actor != outcome.actor
                    or decided is None or decided.value != outcome.grade.value):
                raise reject("forwarded: does not carry this outcome's grade to this case")

    @workflow.update
    async def close_meeting(self, closure: SittingClosure) -> SittingState:
        not_reached = [item for item in self._agenda.values() if not item.decided]
        for item in not_reached:
            item.not_reached = True
        self._phase = SittingPhase.ACTIONS
        self._closed_at = workflow.now()
        self._fact(
            PanelSittingClosed(
                decided=[i.case_id for i in self._agenda.values() if i.decided],
                not_reached=[i.case_id for i in not_reached],
            ),
            closure.actor,
        )
        return await self._recorded_state()

    @close_meeting.validator
    def _check_close_meeting(self, closure: SittingClosure) -> None:
        self._check(closure.actor, PANEL_CHAIRS, "close a panel's meeting", SittingPhase.IN_SESSION)

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> SittingState:
        self._escalations.acknowledge(ack, "panel sitting")
        return await self._recorded_state()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "panel sitting")

    @workflow.signal
    def action_updated(self, action: ActionState) -> None:
        """An agreed action reports a change (reminder, escalation, reassignment); never its completion (its result does)."""
        reported_change(self._actions, action)

    # --- the mechanics -------------------------------------------------------------

    def _check(self, actor: Actor, roles: frozenset[Role], action: str, phase: SittingPhase) -> None:
        require(actor, roles, action)
        if not self._agenda_built:
            raise reject("phase: the agenda is still being built; try again shortly")
        if self._phase is not phase:
            raise reject(f"phase: the sitting is {self._phase.value}; cannot {action} now")

    def _list(self, case_id: str, reasons: list[AgendaCriterion], **more: object) -> None:
        self._agenda[case_id] = AgendaItem(
            case_id=case_id, reasons=reasons, required_roles=list(self._panel.required_roles), **more
        )

    def _filled(self, case_id: str, role: NamedRole, more: AttendanceRecord | None = None) -> bool:
        """Whether an attendee fills `role` for the case (an attendee naming no cases attends for all)."""
        attendees = [*self._attendees, *(more.attendees if more else [])]
        return any(a.named_role is role and (not a.case_ids or case_id in a.case_ids) for a in attendees)

    def _fact(self, payload: FactPayload, actor: Actor) -> None:
        """Record a fact on the sitting; a decision (by the registry) joins its decision history."""
        fact = self._outbox.add(payload, actor)
        if fact.entry.decision:
            self._history.append(
                HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=actor.id, actor_role=actor.role)
            )

    def _raise_absence(self, case_id: str, role: NamedRole) -> None:
        """A required role no one filled: flagged on the case and escalated at once to the role's agency."""
        rank = self._policy.escalation.ladder[0]
        agency = ROLE_AGENCY[role]
        self._escalations.raise_escalation(
            reference=self._id,
            subject=f"{role.value} at {case_id}",
            rung=0,
            rank=rank,
            addressed_to=f"{rank.value} ({agency.value})",
            due_at=workflow.now(),
            policy=self._policy,
            reason="absent_attendee",
            agency=agency,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        self._escalations.recording_failed(event, self._policy)

    async def _start_actions(self, actor: Actor, agreed: list[tuple[str, AgreedActionSpec]]) -> None:
        if agreed:
            # The sitting's facts first: an action's first fact names the sitting, which must be recorded already.
            await self._outbox.recorded()
        await start_actions(self._id, agreed, actor, self._policy, self._following)

    def _following(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._action_tasks.append(asyncio.create_task(self._follow_action(action_id, handle)))

    async def _follow_action(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._actions[action_id] = await handle

    async def _recorded_state(self) -> SittingState:
        """Return to the caller only once the decision is in PostgreSQL."""
        await self._outbox.recorded()
        return self.state()


def minutes_of(state: SittingState) -> Minutes:
    """A sitting's minutes from its state: the register, then each case with its grade, attendance and actions."""
    actions = {a.action_id: a for a in state.actions}
    cases = []
    for item in state.agenda:
        present = [a for a in state.attendees if a.named_role and (not a.case_ids or item.case_id in a.case_ids)]
        cases.append(MinutesCase(
            case_id=item.case_id,
            reasons=item.reasons,
            carried_from=item.carried_from,
            grade=item.grade,
            grade_applied=item.grade_applied.result if item.grade_applied else None,
            attended_by=[f"{a.named_role.value}: {a.name} ({a.agency.value})" for a in present if a.named_role],
            absent_roles=item.absent_roles,
            absence_reasons={a.named_role.value: a.reason for a in state.absences if a.case_id == item.case_id},
            actions=[actions[action_id] for action_id in item.action_ids if action_id in actions],
            not_reached=item.not_reached,
        ))
    return Minutes(
        sitting_id=state.sitting_id,
        panel_name=state.panel_name,
        meets_at=state.meets_at,
        held_at=state.held_at,
        closed_at=state.closed_at,
        attendees=state.attendees,
        cases=cases,
    )


@workflow.defn
class PanelOpeningWorkflow:
    """Started by a panel's schedule: opens the sitting `agenda_days_before` from today (London date), once."""

    @workflow.run
    async def run(self, opening: PanelOpening) -> SittingOpened:
        today = local_date(workflow.now(), opening.policy.timezone)
        day = today + timedelta(days=opening.panel.agenda_days_before)
        return await workflow.execute_activity_method(
            PanelRecords.open_sitting,
            SittingStart(panel=opening.panel, day=day, policy=opening.policy),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )


if __name__ == "__main__":
    raise SystemExit("PanelSittingWorkflow runs inside a worker: start one with `python worker.py`")
