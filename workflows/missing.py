"""MissingEpisodeWorkflow: a child reported missing, traced until found, then the return-home interview, then closed.

Started by the missing report itself (no VIST review in front of it). The grade sets the
timetable: a supervisor reviews the risk assessment, then reviews the episode again and again
(a high-risk episode under an inspector or above); no tracing activity for the grade's quiet
time climbs the escalation ladder, as does a missed review. A low grade the indicators make
implausible is treated at the fail-safe grade until another supervisor keeps it. Once found,
children's social care owes a return-home interview (an agreed action, late after 72 hours by
default); the episode closes when its outcome is recorded and that action is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.changes import CSE_LINK_PATCH, REPEAT_MISSING_PATCH, TRIGGER_PLAN_PATCH, patched
    from activities.policy import SlaPolicySource
    from activities.proofs import StartProofs
    from activities.records import ReferralRecords
    from workflows.action import register_action, reported_change, start_actions
    from workflows.alerting import AlertDispatch
    from workflows.authority import (
        EPISODE_REVIEWERS,
        FINDERS,
        INTERVIEW_RECORDERS,
        MISSING_REPORTERS,
        TRACERS,
        Duty,
        reject,
        require,
        require_separation,
    )
    from workflows.calendar import add_duration
    from workflows.escalation import EscalationBook, EscalationLadder
    from workflows.facts import (
        ChildFound,
        EpisodeClosed,
        EpisodeRegraded,
        EpisodeReviewed,
        EpisodeTimes,
        FactPayload,
        InterviewRecorded,
        LowGradeDecided,
        MissingReported,
        RecordedEvent,
        RepeatMissingFlagged,
        CseReferralLinked,
        TracingRecorded,
        TriggerPlanRead,
    )
    from workflows.missing_models import (
        FAIL_SAFE_GRADE,
        REVIEW,
        TRACING,
        TRIGGER_PLAN,
        CSE_REFERRAL,
        EpisodePhase,
        EpisodeRegrade,
        EpisodeReview,
        EpisodeCountQuery,
        OpenReferralQuery,
        OpenReferrals,
        EpisodeStartProofCheck,
        EpisodeState,
        Found,
        LowGradeDecision,
        ReturnHomeInterview,
        ReviewState,
        RiskAssessment,
        RiskIndicator,
        StartMissingEpisode,
        TracingRecord,
        not_in_future,
    )
    from workflows.models import (
        SYSTEM_ACTOR,
        ActionState,
        Actor,
        Agency,
        AgreedActionSpec,
        EpisodeLink,
        Escalation,
        EscalationAcknowledgement,
        EscalationReason,
        GradeTimes,
        HistoryEntry,
        MissingGrade,
        ProofVerdict,
        Role,
        SlaPolicy,
    )
    from workflows.plan_models import TriggerPlanFound, TriggerPlanQuery, TriggerPlanView
    from workflows.recording import Outbox

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Whom a child missing with a CSE concern and no open referral is escalated to: the MASH decides on a referral.
CSE_REFERRAL_TEAM = "MASH"


@workflow.defn
class MissingEpisodeWorkflow:
    @workflow.init
    def __init__(self, start: StartMissingEpisode) -> None:
        self._episode_id = workflow.info().workflow_id
        self._report = start.report
        self._reported_by = start.reported_by
        self._policy: SlaPolicy | None = start.sla_policy
        self._assessment = start.report.assessment.model_copy(deep=True)
        self._low_kept = False
        self._phase = EpisodePhase.MISSING
        self._reported_at = workflow.now()
        self._reviews: list[ReviewState] = []
        self._last_tracing_at: datetime | None = None
        # Each watched step's token moves when the step is done (a review, tracing), restarting its clock.
        self._tokens = {REVIEW: 0, TRACING: 0}
        self._ladders: dict[str, EscalationLadder] = self._ladders_for(start.sla_policy)
        self._outbox = Outbox(stream=self._episode_id, reference=self._episode_id, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._history: list[HistoryEntry] = []
        self._escalations = EscalationBook(
            self._episode_id, self._alerts, record=lambda payload, actor, _: self._fact(payload, actor)
        )
        self._actions: dict[str, ActionState] = {}
        self._action_tasks: list[asyncio.Task[None]] = []
        self._performed: dict[Duty, set[str]] = {}
        self._found: Found | None = None
        self._interview_action_id: str | None = None
        self._interview: ReturnHomeInterview | None = None
        self._episodes_in_window: int | None = None
        self._trigger_plan: TriggerPlanView | None = None
        self._linked_referrals: list[str] = []
        self._trigger_plan_required: bool | None = None
        if self._assessment.grade is MissingGrade.LOW:
            self._perform(Duty.GRADE_LOW, start.reported_by)
        self._fact(MissingReported(report=start.report, **self._times()), start.reported_by)

    @workflow.run
    async def run(self, start: StartMissingEpisode) -> EpisodeState:
        # Before any fact is written: a refused start leaves no record behind.
        require(start.reported_by, MISSING_REPORTERS, "report a child missing")
        problem = not_in_future(start.report.missing_since, workflow.now(), "report.missing_since")
        if problem is not None:
            raise reject(problem)
        await self._check_start_proof(start)
        writer = asyncio.create_task(self._outbox.drain_forever())
        if self._policy is None:
            self._policy = await workflow.execute_activity_method(
                SlaPolicySource.load_sla_policy, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            self._ladders = self._ladders_for(self._policy)
        # The count waits on the read model; the watches' clocks run meanwhile.
        counting = [self._child_history()] if patched(REPEAT_MISSING_PATCH) else []
        await asyncio.gather(*counting, self._watch(REVIEW, self._review_due), self._watch(TRACING, self._tracing_due))
        await workflow.wait_condition(lambda: self._interview is not None and self._interview_done())
        self._close()
        # Tracing actions still open end with the episode (their parent closes them); nothing else waits on them.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        return self.state()

    @staticmethod
    def _ladders_for(policy: SlaPolicy | None) -> dict[str, EscalationLadder]:
        return {REVIEW: EscalationLadder(policy), TRACING: EscalationLadder(policy)} if policy else {}

    async def _check_start_proof(self, start: StartMissingEpisode) -> None:
        """A start without the API's proof of its reporter fails here, before any fact is written."""
        verdict: ProofVerdict = await workflow.execute_activity_method(
            StartProofs.check_episode_start_proof,
            EpisodeStartProofCheck(
                workflow_id=self._episode_id, workflow_type=workflow.info().workflow_type, start=start
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        if verdict.refusal is not None:
            raise reject(verdict.refusal)

    async def _child_history(self) -> None:
        """The child's episodes counted, then their trigger plan read (a repeat makes a plan required)."""
        await self._count_episodes()
        if patched(TRIGGER_PLAN_PATCH):
            await self._read_trigger_plan()
        if self._cse_concern() and patched(CSE_LINK_PATCH):
            await self._link_referrals()

    def _cse_concern(self) -> bool:
        return RiskIndicator.CSE_CONCERN in self._assessment.indicators

    async def _link_referrals(self) -> None:
        """Link the open referrals about the child, each side recording it; with none, the MASH is told at once (once).

        Read again at each review while none is linked: a referral opened meanwhile is linked and the escalation settled.
        """
        found: OpenReferrals = await workflow.execute_activity_method(
            ReferralRecords.find_open_referrals,
            OpenReferralQuery(episode_id=self._episode_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        new = [reference for reference in found.references if reference not in self._linked_referrals]
        for reference in new:
            self._linked_referrals.append(reference)
            self._fact(CseReferralLinked(reference=reference), SYSTEM_ACTOR)
            await self._tell_referral(reference)
        waiting = [e for e in self._escalations.awaiting_acknowledgement() if e.reason == "no_cse_referral"]
        if self._linked_referrals:
            self._escalations.resolve(waiting, "referral_linked")
        elif not any(e.reason == "no_cse_referral" for e in self._escalations.escalations):
            self._raise_at_once(CSE_REFERRAL, "no_cse_referral", CSE_REFERRAL_TEAM)

    async def _tell_referral(self, reference: str) -> None:
        """The referral records the link on its side; one that has closed meanwhile keeps only the episode's record."""
        try:
            await workflow.get_external_workflow_handle(reference).signal("episode_linked", EpisodeLink(episode_id=self._episode_id))
        except Exception:  # the referral closed between the read and the signal
            workflow.logger.info("episode_link_not_taken", extra={"reference": reference, "episode_id": self._episode_id})

    async def _read_trigger_plan(self) -> None:
        """Show the tracing officers the child's plan at once; a child who must have a current one and has not escalates."""
        found: TriggerPlanFound = await workflow.execute_activity_method(
            ReferralRecords.find_trigger_plan,
            TriggerPlanQuery(episode_id=self._episode_id, at=self._reported_at),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        self._trigger_plan = found.plan
        required = self._repeat_missing() or RiskIndicator.CSE_CONCERN in self._assessment.indicators
        self._trigger_plan_required = required
        self._fact(TriggerPlanRead(plan=found.plan, required=required), SYSTEM_ACTOR)
        if required and (found.plan is None or not found.plan.current):
            self._raise_at_once(TRIGGER_PLAN, "no_trigger_plan", self._report.station)

    async def _count_episodes(self) -> None:
        """The child's episodes in the policy's window, from the read model once this report is in it; flag a repeat."""
        assert self._policy is not None
        timetable = self._policy.missing
        await self._outbox.recorded()
        self._episodes_in_window = await workflow.execute_activity_method(
            ReferralRecords.count_missing_episodes,
            EpisodeCountQuery(
                episode_id=self._episode_id,
                since=self._reported_at - timedelta(days=timetable.repeat_missing_days),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        if self._repeat_missing():
            self._fact(
                RepeatMissingFlagged(episodes=self._episodes_in_window, window_days=timetable.repeat_missing_days),
                SYSTEM_ACTOR,
            )

    def _repeat_missing(self) -> bool:
        return (
            self._policy is not None
            and self._episodes_in_window is not None
            and self._episodes_in_window >= self._policy.missing.repeat_missing_episodes
        )

    async def _watch(self, step: str, deadline: Callable[[], datetime | None]) -> None:
        """Climb `step`'s ladder whenever it is late, restarting each time it is done, until the child is found."""
        ladder = self._ladders[step]
        while self._phase is EpisodePhase.MISSING:
            token = self._tokens[step]
            await ladder.watch(
                done=lambda: self._tokens[step] != token or self._phase is not EpisodePhase.MISSING,
                deadline=deadline,
                raise_rung=lambda rung, due_at: self._raise_escalation(step, rung, due_at),
            )

    # --- queries ----------------------------------------------------------------------

    @workflow.query
    def state(self) -> EpisodeState:
        found = self._found
        action = self._actions.get(self._interview_action_id) if self._interview_action_id else None
        return EpisodeState(
            episode_id=self._episode_id,
            phase=self._phase,
            grade=self._grade(),
            assessed_grade=self._assessment.grade,
            indicators=list(self._assessment.indicators),
            low_grade_pending=self._low_pending(),
            reported_at=self._reported_at,
            reported_by=self._reported_by.id,
            missing_since=self._report.missing_since,
            repeat_missing=self._repeat_missing(),
            episodes_in_window=self._episodes_in_window,
            trigger_plan=self._trigger_plan,
            trigger_plan_required=self._trigger_plan_required,
            linked_referrals=list(self._linked_referrals),
            review_due=self._review_due(),
            tracing_due=self._tracing_due(),
            last_tracing_at=self._last_tracing_at,
            reviews=list(self._reviews),
            found_at=found.found_at if found else None,
            where_found=found.where if found else None,
            interview_action_id=self._interview_action_id,
            interview_due=action.deadline if action else None,
            interview_outcome=self._interview.outcome if self._interview else None,
            actions=list(self._actions.values()),
            escalations=list(self._escalations.escalations),
            history=list(self._history),
        )

    # --- the risk assessment: a low grade the indicators make implausible -----------------

    @workflow.update
    async def decide_low_grade(self, decision: LowGradeDecision) -> EpisodeState:
        self._perform(Duty.KEEP_LOW_GRADE, decision.actor)
        if decision.keep_low:
            self._low_kept = True
        else:
            self._assessment.grade = FAIL_SAFE_GRADE
        self._nudge()
        self._fact(LowGradeDecided.of(decision, **self._times()), decision.actor)
        return await self._recorded_state()

    @decide_low_grade.validator
    def _check_decide_low_grade(self, decision: LowGradeDecision) -> None:
        self._check(decision.actor, EPISODE_REVIEWERS, "keep or refuse a low grade", {EpisodePhase.MISSING})
        if not self._low_pending():
            raise reject("keep_low: no low grade awaits a supervisor's decision")
        require_separation(decision.actor, Duty.KEEP_LOW_GRADE, self._performed)

    @workflow.update
    async def regrade(self, regrade: EpisodeRegrade) -> EpisodeState:
        previous = self._grade()
        self._set_grade(regrade.grade, regrade.actor)
        self._fact(EpisodeRegraded.of(regrade, from_grade=previous, **self._times()), regrade.actor)
        return await self._recorded_state()

    @regrade.validator
    def _check_regrade(self, regrade: EpisodeRegrade) -> None:
        self._check(regrade.actor, EPISODE_REVIEWERS, "regrade a missing episode", {EpisodePhase.MISSING})
        if regrade.grade is self._assessment.grade:
            raise reject(f"grade: the episode is already graded {regrade.grade.value}")

    # --- while missing: reviews and tracing ----------------------------------------------

    @workflow.update
    async def review(self, review: EpisodeReview) -> EpisodeState:
        grade_before = self._grade()
        self._reviews.append(ReviewState(reviewed_at=workflow.now(), reviewed_by=review.actor.id, grade=grade_before))
        self._restart(REVIEW)
        if review.grade is not None and review.grade is not self._assessment.grade:
            self._set_grade(review.grade, review.actor)
        agreed = [self._register_action(spec) for spec in review.tracing_actions]
        rank = review.actor.rank.value if review.actor.rank else None
        self._fact(EpisodeReviewed.of(review, reviewer_rank=rank, **self._times()), review.actor)
        await self._start_actions(review.actor, agreed)
        if self._cse_concern() and not self._linked_referrals and patched(CSE_LINK_PATCH):
            await self._outbox.recorded()
            await self._link_referrals()
        return await self._recorded_state()

    @review.validator
    def _check_review(self, review: EpisodeReview) -> None:
        self._check(review.actor, EPISODE_REVIEWERS, "review a missing episode", {EpisodePhase.MISSING})
        assert self._policy is not None
        reviewer = self._policy.missing.high_risk_reviewer
        if self._grade() is MissingGrade.HIGH and (
            review.actor.rank is None or review.actor.rank.seniority < reviewer.seniority
        ):
            raise reject(f"actor.rank: a high-risk missing episode is reviewed by a {reviewer.value} or above")
        for index, action in enumerate(review.tracing_actions):
            if action.deadline <= workflow.now():
                raise reject(f"tracing_actions[{index}].deadline: must be in the future")

    @workflow.update
    async def record_tracing(self, record: TracingRecord) -> EpisodeState:
        self._traced()
        self._fact(TracingRecorded.of(record, **self._times()), record.actor)
        return await self._recorded_state()

    @record_tracing.validator
    def _check_record_tracing(self, record: TracingRecord) -> None:
        self._check(record.actor, TRACERS, "record tracing activity", {EpisodePhase.MISSING})

    # --- found, and after ----------------------------------------------------------------

    @workflow.update
    async def found(self, found: Found) -> EpisodeState:
        assert self._policy is not None
        self._found = found
        self._phase = EpisodePhase.RETURNED
        self._nudge()
        due = add_duration(found.found_at, self._policy.missing.return_home_interview, self._policy)
        spec = AgreedActionSpec(description="Return-home interview", owner=found.interviewer, deadline=due)
        agreed = self._register_action(spec)
        self._interview_action_id = agreed[0]
        self._fact(ChildFound.of(found, interview_due=due), found.actor)
        await self._start_actions(found.actor, [agreed])
        return await self._recorded_state()

    @found.validator
    def _check_found(self, found: Found) -> None:
        self._check(found.actor, FINDERS, "record a missing child found", {EpisodePhase.MISSING})
        for moment, field in ((found.found_at, "found_at"), (found.safe_and_well_at, "safe_and_well_at")):
            problem = not_in_future(moment, workflow.now(), field)
            if problem is not None:
                raise reject(problem)
        if found.found_at < self._report.missing_since:
            raise reject("found_at: is before the child went missing")

    @workflow.update
    async def record_interview(self, interview: ReturnHomeInterview) -> EpisodeState:
        self._interview = interview
        self._fact(InterviewRecorded.of(interview), interview.actor)
        return await self._recorded_state()

    @record_interview.validator
    def _check_record_interview(self, interview: ReturnHomeInterview) -> None:
        actor = interview.actor
        self._check(actor, INTERVIEW_RECORDERS, "record a return-home interview", {EpisodePhase.RETURNED})
        if actor.role is Role.PARTNER and actor.agency is not Agency.CHILDRENS_SOCIAL_CARE:
            raise reject(f"actor.agency: {actor.agency.value} staff may not record a return-home interview")
        if self._interview is not None:
            raise reject("outcome: the return-home interview's outcome is already recorded")
        assert self._found is not None
        if interview.held_at is not None:
            problem = not_in_future(interview.held_at, workflow.now(), "held_at")
            if problem is not None:
                raise reject(problem)
            if interview.held_at < self._found.found_at:
                raise reject("held_at: is before the child was found")

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> EpisodeState:
        self._escalations.acknowledge(ack, "missing episode")
        self._nudge()
        return await self._recorded_state()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "missing episode")

    @workflow.signal
    def action_updated(self, action: ActionState) -> None:
        """An agreed action reports a change (reminder, escalation, reassignment); never its completion (its result does)."""
        reported_change(self._actions, action)

    # --- the mechanics ----------------------------------------------------------------

    def _check(self, actor: Actor, roles: frozenset[Role], action: str, phases: set[EpisodePhase]) -> None:
        require(actor, roles, action)
        if self._policy is None:
            raise reject("phase: the episode is still being registered; try again shortly")
        if self._phase not in phases:
            raise reject(f"phase: the episode is {self._phase.value}; cannot {action} now")

    def _perform(self, duty: Duty, actor: Actor) -> None:
        self._performed.setdefault(duty, set()).add(actor.id)

    def _fact(self, payload: FactPayload, actor: Actor) -> None:
        """Record a fact; a decision (by the registry) joins the episode's decision history."""
        fact = self._outbox.add(payload, actor)
        if fact.entry.decision:
            self._history.append(
                HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=actor.id, actor_role=actor.role)
            )

    def _low_pending(self) -> bool:
        return self._assessment.low_needs_supervisor and not self._low_kept

    def _grade(self) -> MissingGrade:
        """The grade the episode is treated at: the fail-safe grade while a low grade awaits a supervisor."""
        return FAIL_SAFE_GRADE if self._low_pending() else self._assessment.grade

    def _set_grade(self, grade: MissingGrade, actor: Actor) -> None:
        """A new grade moves every deadline at once; a low one with implausible indicators awaits a supervisor again."""
        self._assessment = RiskAssessment(grade=grade, indicators=self._assessment.indicators)
        self._low_kept = False
        if grade is MissingGrade.LOW:
            self._perform(Duty.GRADE_LOW, actor)
        self._nudge()

    def _times(self) -> dict[str, object]:
        times = EpisodeTimes(
            grade=self._grade(),
            assessed_grade=self._assessment.grade,
            review_due=self._review_due(),
            tracing_due=self._tracing_due(),
        )
        return times.model_dump()

    def _due(self, since: datetime, times: GradeTimes) -> datetime | None:
        if self._policy is None or self._phase is not EpisodePhase.MISSING:
            return None
        return add_duration(since, times.for_grade(self._grade()), self._policy)

    def _review_due(self) -> datetime | None:
        """The risk assessment's first review, then each next one, at the grade now."""
        if self._policy is None:
            return None
        timetable = self._policy.missing
        if not self._reviews:
            return self._due(self._reported_at, timetable.risk_assessment_review)
        return self._due(self._reviews[-1].reviewed_at, timetable.review_every)

    def _tracing_due(self) -> datetime | None:
        if self._policy is None:
            return None
        return self._due(self._last_tracing_at or self._reported_at, self._policy.missing.tracing_quiet)

    def _restart(self, step: str) -> None:
        self._tokens[step] += 1
        if step in self._ladders:
            self._ladders[step].reset()

    def _traced(self) -> None:
        self._last_tracing_at = workflow.now()
        self._restart(TRACING)

    def _nudge(self) -> None:
        for ladder in self._ladders.values():
            ladder.nudge()

    def _interview_done(self) -> bool:
        assert self._interview_action_id is not None
        return self._actions[self._interview_action_id].completed_at is not None

    def _close(self) -> None:
        assert self._interview is not None
        self._escalations.resolve(self._escalations.awaiting_acknowledgement(), "episode_closed")
        self._phase = EpisodePhase.CLOSED
        self._fact(EpisodeClosed(interview_outcome=self._interview.outcome.value), SYSTEM_ACTOR)

    def _raise_escalation(self, step: str, rung: int, due_at: datetime) -> Escalation:
        ladder = self._ladders[step]
        rank = ladder.rank(rung)
        station = self._report.station
        return self._escalations.raise_escalation(
            reference=self._episode_id,
            subject=step,
            rung=rung,
            rank=rank,
            addressed_to=f"{rank.value}, {station}",
            due_at=due_at,
            policy=ladder.policy,
            team=station,
        )

    def _raise_at_once(self, subject: str, reason: EscalationReason, team: str) -> None:
        """Something the child must have is missing (a current trigger plan, a referral): `team`'s first rung is told now."""
        assert self._policy is not None
        rank = self._policy.escalation.ladder[0]
        self._escalations.raise_escalation(
            reference=self._episode_id,
            subject=subject,
            rung=0,
            rank=rank,
            addressed_to=f"{rank.value}, {team}",
            due_at=workflow.now(),
            policy=self._policy,
            reason=reason,
            team=team,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        self._escalations.recording_failed(event, self._policy or SlaPolicy())

    def _register_action(self, spec: AgreedActionSpec) -> tuple[str, AgreedActionSpec]:
        return register_action(self._actions, self._episode_id, spec)

    async def _start_actions(self, actor: Actor, agreed: list[tuple[str, AgreedActionSpec]]) -> None:
        assert self._policy is not None
        if agreed:
            # The episode's facts first: an action's first fact names the episode, which must be recorded already.
            await self._outbox.recorded()
        await start_actions(self._episode_id, agreed, actor, self._policy, self._following)

    def _following(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._action_tasks.append(asyncio.create_task(self._follow_action(action_id, handle)))

    async def _follow_action(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._actions[action_id] = await handle
        # A tracing action done is tracing done; the return-home interview's is not.
        if action_id != self._interview_action_id and self._phase is EpisodePhase.MISSING:
            self._traced()
            self._fact(
                TracingRecorded(activity="tracing_action_completed", action_id=action_id, **self._times()),
                SYSTEM_ACTOR,
            )

    async def _recorded_state(self) -> EpisodeState:
        """Return to the caller only once the decision is in PostgreSQL."""
        await self._outbox.recorded()
        return self.state()


if __name__ == "__main__":
    raise SystemExit("MissingEpisodeWorkflow runs inside a worker: start one with `python worker.py`")
