"""ReferralWorkflow: one referral about children at risk, from the VIST submission to closure.

Every human decision is an update whose validator rejects, before anything is written to
history, a decision by the wrong role, at the wrong stage, or breaking a rule; a rejected
decision changes nothing. Every stage has a deadline (per risk grade, in hours or working
days) and lateness climbs the escalation ladder by itself. Every fact is recorded in
PostgreSQL through the outbox; the history stays the source of truth.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.changes import (
        ACTIONS_FINISH_FIRST, CLOSURE_RESOLVES_ESCALATIONS, CSC_NOTIFICATION_PATCH, DEADLINES_FROM_SUBMISSION,
        DECISION_PROOFS_PATCH, IDENTITY_FROM_TOKEN_PATCH, LONG_LOOK_BACK_PATCH, NAMED_ATTENDANCE_PATCH,
        PARTNER_REFERRALS_PATCH, PLAN_ALERTS_PATCH, SCREENING_VIEW_WITH_FACTS_PATCH, STAGE_BEFORE_ACTIONS,
        START_PROOF_WITH_FACTS_PATCH, patched,
    )
    from activities.policy import SlaPolicySource
    from activities.proofs import StartProofs
    from activities.records import ReferralRecords
    from workflows.action import register_action, reported_change, start_actions
    from workflows.alerting import AlertDispatch
    from workflows.authority import (
        CASE_DECIDERS,
        CSC_NOT_INFORMED_DECIDERS,
        OFFICERS,
        OVERRIDE_DECIDERS,
        OVERRIDE_REQUESTERS,
        PARTNER_REFERRERS,
        REVIEWERS,
        SCREENERS,
        SUBMITTERS,
        Duty,
        reject,
        require,
        require_separation,
    )
    from workflows.calendar import add_duration, add_working_days, subtract_working_days
    from workflows.escalation import EscalationBook, EscalationLadder
    from workflows.facts import (
        Closed,
        CseEpisodeLinked,
        ConferenceBooked,
        ConferenceHeld,
        CscNotInformedDecided,
        FactPayload,
        PartnerReferralReceived,
        RecordedEvent,
        RepeatOverrideDecided,
        RepeatOverrideRequested,
        RiskRegraded,
        Screened,
        StageChanged,
        StrategyDiscussionHeld,
        SupervisorReviewed,
        VistResubmitted,
        VistSubmitted,
    )
    from workflows.models import (
        OPEN_STAGES,
        SYSTEM_ACTOR,
        ActionOwner,
        ActionState,
        Actor,
        AgreedActionSpec,
        ChildOnPlan,
        CLOCK_SKEW,
        CloseReason,
        Closure,
        ConferenceBooking,
        ConferenceOutcome,
        CscNotInformed,
        CscNotInformedState,
        Duration,
        Escalation,
        EpisodeLink,
        EscalationAcknowledgement,
        EscalationReason,
        HistoryEntry,
        NamedRole,
        OverrideDecision,
        OverrideRequest,
        PartnerReferral,
        PoliceAttendance,
        PriorReferralQuery,
        ProofVerdict,
        ReferralForm,
        ReferralState,
        Resubmission,
        RiskGrade,
        RepeatReferralOverrideState,
        RiskRegrade,
        Role,
        Agency,
        ScreeningOutcome,
        Screening,
        ScreeningView,
        SlaPolicy,
        Stage,
        StartProofCheck,
        StartReferral,
        StrategyDiscussion,
        SupervisorReview,
        VistSubmission,
        future_time_in,
    )
    from workflows.recording import Outbox

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# How long before its start a form's receipt may be and still start its clock; a clock further off is not trusted.
RECEIPT_WINDOW = timedelta(minutes=10)


# Who is alerted when a stage is late (the first rung's team; later rungs go up the ranks).
STAGE_TEAMS = {
    Stage.SUPERVISOR_REVIEW: "station",
    Stage.RETURNED_TO_OFFICER: "station",
    Stage.SCREENING: "CRU",
    Stage.STRATEGY_DISCUSSION: "MASH",
    Stage.CONFERENCE: "MASH",
}

SCREENING_CLOSURES = {
    ScreeningOutcome.NO_FURTHER_ACTION: CloseReason.NO_FURTHER_ACTION,
    ScreeningOutcome.EARLY_HELP: CloseReason.EARLY_HELP,
    ScreeningOutcome.SINGLE_AGENCY: CloseReason.SINGLE_AGENCY,
}


@workflow.defn
class ReferralWorkflow:
    @workflow.init
    def __init__(self, start: StartReferral) -> None:
        self._reference = workflow.info().workflow_id
        self._submissions: list[ReferralForm] = [start.submission]
        self._policy: SlaPolicy | None = start.sla_policy
        self._ladder = EscalationLadder(start.sla_policy) if start.sla_policy else None
        # A partner agency's referral has no VIST to review: it opens at screening.
        self._partner = isinstance(start.submission, PartnerReferral) and patched(PARTNER_REFERRALS_PATCH)
        self._stage = Stage.SCREENING if self._partner else Stage.SUPERVISOR_REVIEW
        self._stage_token = 0
        self._risk = start.submission.initial_risk
        # Deadlines run from the start's acceptance, not from when a worker first got to the referral.
        from_start = patched(DEADLINES_FROM_SUBMISSION)
        self._submitted_at = submission_time(start, workflow.info().workflow_start_time) if from_start else workflow.now()
        self._stage_entered_at = self._submitted_at
        self._outbox = Outbox(stream=self._reference, reference=self._reference, on_quarantined=self._recording_failed)
        self._alerts = AlertDispatch(self._outbox)
        self._history: list[HistoryEntry] = []
        self._linked_episodes: list[str] = []
        self._escalations = EscalationBook(
            self._reference, self._alerts, record=lambda payload, actor, _: self._fact(payload, actor)
        )
        self._actions: dict[str, ActionState] = {}
        self._action_tasks: list[asyncio.Task[None]] = []
        self._screening_view: ScreeningView | None = None
        self._screening_outcome: ScreeningOutcome | None = None
        self._override: RepeatReferralOverrideState | None = None
        self._csc_not_informed: CscNotInformedState | None = None
        # Who performed each remembered duty, for the separation of duties.
        self._performed: dict[Duty, set[str]] = {Duty.SUBMIT_VIST: {start.submitted_by.id}}
        self._section_47: bool | None = None
        self._inquorate = False
        self._strategy_held_at: datetime | None = None
        self._conference_due_by: datetime | None = None
        self._conference: ConferenceBooking | None = None
        self._child_protection_plan: bool | None = None
        self._close_reason: CloseReason | None = None
        self._close_after_actions: CloseReason | None = None
        self._completion_from_results_only = True
        received = PartnerReferralReceived if self._partner else VistSubmitted
        self._fact(received(version=1, submission=start.submission, submitted_at=self._submitted_at), start.submitted_by)
        self._fact(
            StageChanged(from_stage=None, to_stage=self._stage, deadline=self._deadline(), entered_at=self._submitted_at),
            SYSTEM_ACTOR,
        )

    @workflow.run
    async def run(self, start: StartReferral) -> ReferralState:
        if patched(IDENTITY_FROM_TOKEN_PATCH):
            # Before any fact is written: a refused start leaves no record behind.
            own_form(start.submitted_by, start.submission)
        # Last of the start's patches, so that every patch marker precedes the check's activity.
        self._completion_from_results_only = patched(DECISION_PROOFS_PATCH)
        checked_with_facts = self._completion_from_results_only and patched(START_PROOF_WITH_FACTS_PATCH)
        if checked_with_facts:
            self._outbox.check_start_first(self._start_proof_check(start))
        elif self._completion_from_results_only:
            await self._check_start_proof(start)
        writer = asyncio.create_task(self._outbox.drain_forever())
        if checked_with_facts:
            await workflow.wait_condition(lambda: self._outbox.start_checked)
            if self._outbox.start_refusal is not None:
                raise reject(self._outbox.start_refusal)
        if self._policy is None:
            self._policy = await workflow.execute_activity_method(
                SlaPolicySource.load_sla_policy, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
            self._ladder = EscalationLadder(self._policy)
        assert self._ladder is not None
        if self._partner:
            # Screening starts at once: its view is read once the referral is in the read model.
            await self._load_screening_view()
        while self._stage is not Stage.CLOSED:
            token = self._stage_token
            if self._stage is Stage.ACTIONS:
                await workflow.wait_condition(lambda: self._stage_token != token or not self._open_actions())
                if self._stage is Stage.ACTIONS and not self._open_actions():
                    self._close(SYSTEM_ACTOR, self._close_after_actions or CloseReason.NO_SECTION_47, None)
                continue
            await self._ladder.watch(
                done=lambda: self._stage_token != token,
                deadline=self._deadline,
                raise_rung=self._raise_stage_escalation,
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if patched(ACTIONS_FINISH_FIRST):
            # An action's last decision may still be answering: closing now would terminate its workflow mid-answer.
            await workflow.wait_condition(lambda: all(task.done() for task in self._action_tasks))
        await self._alerts.delivered()
        await self._outbox.settled()
        writer.cancel()
        return self.state()

    async def _check_start_proof(self, start: StartReferral) -> None:
        """A start without the API's proof of its officer fails here, before any fact is written.

        An activity holds the keys; its verdict is in the history, so replays need none.
        Decisions accepted meanwhile carry proofs of their own, and wait for the outbox, which
        starts writing only after this check.
        """
        verdict: ProofVerdict = await workflow.execute_activity_method(
            StartProofs.check_start_proof, self._start_proof_check(start), start_to_close_timeout=ACTIVITY_TIMEOUT,
        )
        if verdict.refusal is not None:
            raise reject(verdict.refusal)

    def _start_proof_check(self, start: StartReferral) -> StartProofCheck:
        return StartProofCheck(workflow_id=self._reference, workflow_type=workflow.info().workflow_type, start=start)

    # --- queries ---------------------------------------------------------------------

    @workflow.query
    def state(self) -> ReferralState:
        submission = self._submissions[-1]
        return ReferralState(
            reference=self._reference,
            stage=self._stage,
            risk=self._risk,
            incident_type=submission.incident.type,
            submitted_at=self._submitted_at,
            stage_entered_at=self._stage_entered_at,
            deadline=self._deadline(),
            submission_versions=len(self._submissions),
            form_id=submission.form_id,
            form_digest=self._submissions[0].content_digest(),
            children=[c.child_id for c in submission.children],
            screening_view=self._screening_view,
            screening_outcome=self._screening_outcome,
            repeat_referral_override=self._override,
            csc_not_informed=self._csc_not_informed,
            referring_agency=submission.referring_agency if isinstance(submission, PartnerReferral) else Agency.POLICE,
            section_47=self._section_47,
            strategy_discussion_inquorate=self._inquorate,
            conference_due_by=self._conference_due_by,
            conference_at=self._conference.conference_at if self._conference else None,
            conference_late_reason=self._conference.late_reason if self._conference else None,
            police_attendance=self._conference.police_attendance if self._conference else None,
            child_protection_plan=self._child_protection_plan,
            close_reason=self._close_reason,
            actions=list(self._actions.values()),
            escalations=list(self._escalations.escalations),
            history=list(self._history),
            linked_episodes=list(self._linked_episodes),
        )

    # --- stage 2: supervisor review, and the officer's resubmission -----------------

    @workflow.update
    async def review(self, decision: SupervisorReview) -> ReferralState:
        self._perform(Duty.REVIEW_VIST, decision.actor)
        self._fact(SupervisorReviewed.of(decision), decision.actor)
        if decision.approved:
            self._enter(Stage.SCREENING, decision.actor, decision.made_at)
            await self._load_screening_view()
        else:
            self._enter(Stage.RETURNED_TO_OFFICER, decision.actor, decision.made_at)
        return await self._recorded_state()

    @review.validator
    def _check_review(self, decision: SupervisorReview) -> None:
        self._check(decision.actor, REVIEWERS, "review a VIST", {Stage.SUPERVISOR_REVIEW})
        require_separation(decision.actor, Duty.REVIEW_VIST, self._performed)

    @workflow.update
    async def resubmit(self, resubmission: Resubmission) -> ReferralState:
        self._submissions.append(resubmission.submission)
        self._perform(Duty.SUBMIT_VIST, resubmission.actor)
        self._fact(
            VistResubmitted(version=len(self._submissions), submission=resubmission.submission), resubmission.actor
        )
        self._enter(Stage.SUPERVISOR_REVIEW, resubmission.actor, resubmission.made_at)
        return await self._recorded_state()

    @resubmit.validator
    def _check_resubmit(self, resubmission: Resubmission) -> None:
        self._check(resubmission.actor, OFFICERS, "resubmit a VIST", {Stage.RETURNED_TO_OFFICER})
        if resubmission.submission.form_id != self._submissions[0].form_id:
            raise reject("submission.form_id: a resubmission must carry the returned form's ID")
        own_submission(resubmission.actor, resubmission.submission)
        problem = future_time_in(resubmission.submission, workflow.now())
        if problem is not None:
            raise reject(f"submission.{problem}")

    # --- stage 3: CRU/MASH screening -------------------------------------------------

    @workflow.update
    async def screen(self, screening: Screening) -> ReferralState:
        self._screening_outcome = screening.outcome
        self._fact(Screened.of(screening), screening.actor)
        self._regrade_if_changed(screening.actor, screening.risk, "graded at screening")
        if screening.outcome is ScreeningOutcome.STRATEGY_DISCUSSION:
            # Children's social care are party to the discussion, quorate only with them present.
            self._enter(Stage.STRATEGY_DISCUSSION, screening.actor, screening.made_at)
        elif Agency.CHILDRENS_SOCIAL_CARE in screening.agencies_informed and patched(CSC_NOTIFICATION_PATCH):
            # Telling them of a referral screening closes is the police's to do, tracked like any agreed action.
            reason = SCREENING_CLOSURES[screening.outcome]
            await self._agree_actions_then(
                screening.actor, [self._csc_notification(screening)], lambda: self._after_decision(screening.actor, reason)
            )
        else:
            self._close(screening.actor, SCREENING_CLOSURES[screening.outcome], screening.rationale)
        return await self._recorded_state()

    def _csc_notification(self, screening: Screening) -> AgreedActionSpec:
        """The police's notification of the referral and its screening to children's social care, the screener's."""
        assert self._policy is not None
        return AgreedActionSpec(
            description="Notify children's social care of the referral and its screening outcome",
            owner=ActionOwner(agency=Agency.POLICE, owner=screening.actor.id),
            deadline=add_duration(workflow.now(), self._policy.csc_notification, self._policy),
        )

    @screen.validator
    def _check_screen(self, screening: Screening) -> None:
        self._check(screening.actor, SCREENERS, "screen a referral", {Stage.SCREENING})
        if self._screening_view is None:
            raise reject("stage: the screening view (prior referrals) is still loading; try again shortly")
        children = [c.child_id for c in self._submissions[-1].children]
        decided = {d.child_id for d in screening.child_decisions}
        for child_id in children:
            if child_id not in decided:
                raise reject(f"child_decisions: no decision recorded for child {child_id}")
        for child_id in sorted(decided - set(children)):
            raise reject(f"child_decisions: child {child_id} is not in this referral")
        if screening.repeat_referral_override is not None:
            raise reject(
                "repeat_referral_override: a screening cannot name a supervisor; "
                "the supervisor grants the override under their own credentials"
            )
        if Agency.CHILDRENS_SOCIAL_CARE not in screening.agencies_informed and self._csc_not_informed is None:
            raise reject(
                "agencies_informed: children's social care must be informed, unless a supervisor has first decided, "
                "with a rationale, that they need not be"
            )
        granted = self._override is not None and self._override.granted is True
        needed = self._screening_view.override_needed
        if needed and screening.outcome is ScreeningOutcome.NO_FURTHER_ACTION and not granted:
            raise reject(
                f"repeat_referral_override: {needed} cannot close with no further action "
                "without a supervisor's granted override"
            )

    # --- stage 3: the repeat-referral override, asked for and decided --------------------

    @workflow.update
    async def request_override(self, request: OverrideRequest) -> ReferralState:
        self._override = RepeatReferralOverrideState(
            requested_by=request.actor.id, requested_at=workflow.now(), reason=request.reason
        )
        self._perform(Duty.REQUEST_OVERRIDE, request.actor)
        self._fact(RepeatOverrideRequested.of(request), request.actor)
        return await self._recorded_state()

    @request_override.validator
    def _check_request_override(self, request: OverrideRequest) -> None:
        self._check(request.actor, OVERRIDE_REQUESTERS, "ask for a repeat-referral override", {Stage.SCREENING})
        if self._screening_view is None:
            raise reject("stage: the screening view (prior referrals) is still loading; try again shortly")
        if self._screening_view.override_needed is None:
            raise reject("reason: this is not a repeat referral nor about a child on a plan; no override is needed")
        if self._override is not None and self._override.granted is not False:
            state = "granted" if self._override.granted else "waiting for a supervisor"
            raise reject(f"reason: an override was already asked for and is {state}")

    @workflow.update
    async def decide_override(self, decision: OverrideDecision) -> ReferralState:
        assert self._override is not None
        self._override.decided_by = decision.actor.id
        self._override.decided_at = workflow.now()
        self._override.granted = decision.granted
        self._override.rationale = decision.rationale
        self._perform(Duty.DECIDE_OVERRIDE, decision.actor)
        self._fact(RepeatOverrideDecided.of(decision, requested_by=self._override.requested_by), decision.actor)
        return await self._recorded_state()

    @decide_override.validator
    def _check_decide_override(self, decision: OverrideDecision) -> None:
        self._check(
            decision.actor, OVERRIDE_DECIDERS, "grant or refuse a repeat-referral override", {Stage.SCREENING}
        )
        if self._override is None or self._override.granted is not None:
            raise reject("granted: no override request is waiting for a decision")
        require_separation(decision.actor, Duty.DECIDE_OVERRIDE, self._performed)

    # --- stage 3: a supervisor's decision that children's social care need not be informed ------

    @workflow.update
    async def decide_csc_not_informed(self, decision: CscNotInformed) -> ReferralState:
        self._csc_not_informed = CscNotInformedState(
            decided_by=decision.actor.id, decided_at=workflow.now(), rationale=decision.rationale
        )
        self._fact(CscNotInformedDecided.of(decision), decision.actor)
        return await self._recorded_state()

    @decide_csc_not_informed.validator
    def _check_decide_csc_not_informed(self, decision: CscNotInformed) -> None:
        self._check(
            decision.actor, CSC_NOT_INFORMED_DECIDERS, "decide that children's social care need not be informed",
            {Stage.SCREENING},
        )
        if self._csc_not_informed is not None:
            raise reject("rationale: a supervisor has already decided that children's social care need not be informed")

    async def _load_screening_view(self) -> None:
        """Once every fact so far is recorded, the screening view: read in the same activity as the last of them
        where the outbox can, else on its own after them."""
        view = None
        if patched(SCREENING_VIEW_WITH_FACTS_PATCH):
            query = self._screening_query()
            view = await self._outbox.recorded_then_read(query)
        else:
            await self._outbox.recorded()
            query = self._screening_query()
        if view is None:
            view = await workflow.execute_activity_method(
                ReferralRecords.find_prior_referrals, query, start_to_close_timeout=ACTIVITY_TIMEOUT
            )
        self._screening_view = view
        if self._screening_view.children_on_plans and patched(PLAN_ALERTS_PATCH):
            self._alert_social_workers(self._screening_view.children_on_plans)

    def _screening_query(self) -> PriorReferralQuery:
        assert self._policy is not None
        look_back_since = None
        if patched(LONG_LOOK_BACK_PATCH):
            look_back_since = self._submitted_at - timedelta(days=self._policy.look_back_days)
        return PriorReferralQuery(
            reference=self._reference,
            since=self._submitted_at - timedelta(days=self._policy.repeat_referral_window_days),
            policy_threshold=self._policy.repeat_referral_threshold,
            look_back_since=look_back_since,
        )

    def _alert_social_workers(self, children: list[ChildOnPlan]) -> None:
        """Each plan's allocated social worker hears at once that a child on it is referred again."""
        assert self._ladder is not None
        plans = {child.plan_reference: child.social_worker for child in children}
        for plan_reference, worker in plans.items():
            self._escalations.raise_escalation(
                reference=self._reference,
                subject=plan_reference,
                rung=0,
                rank=self._ladder.rank(0),
                addressed_to=f"allocated social worker {worker.staff_id}" if worker else "children's social care",
                due_at=workflow.now(),
                policy=self._ladder.policy,
                reason="child_on_plan",
                agency=Agency.CHILDRENS_SOCIAL_CARE,
                staff_id=worker.staff_id if worker else None,
            )

    # --- stage 4: the strategy discussion -------------------------------------------

    @workflow.update
    async def record_strategy_discussion(self, discussion: StrategyDiscussion) -> ReferralState:
        quorate = discussion.quorate
        missing: list[NamedRole] = []
        if patched(NAMED_ATTENDANCE_PATCH):
            assert self._policy is not None
            missing = discussion.missing_roles(self._policy.strategy_required_roles)
            quorate = quorate and not missing
        self._section_47 = discussion.section_47
        self._inquorate = not quorate
        self._strategy_held_at = discussion.held_at
        self._fact(StrategyDiscussionHeld.of(discussion, quorate=quorate, missing_roles=missing), discussion.actor)
        self._regrade_if_changed(discussion.actor, discussion.risk, "graded at the strategy discussion")
        if not quorate:
            self._raise_inquorate_escalation()
        await self._agree_actions_then(
            discussion.actor, discussion.agreed_actions, lambda: self._after_discussion(discussion)
        )
        return await self._recorded_state()

    def _after_discussion(self, discussion: StrategyDiscussion) -> None:
        """Section 47 enquiries lead to the conference; otherwise the referral closes once its actions are done."""
        if discussion.section_47:
            assert self._policy is not None
            self._conference_due_by = add_working_days(
                discussion.held_at,
                self._policy.conference_working_days,
                frozenset(self._policy.bank_holidays),
                self._policy.timezone,
            )
            self._enter(Stage.CONFERENCE, discussion.actor, discussion.made_at)
        else:
            self._after_decision(discussion.actor, CloseReason.NO_SECTION_47)

    @record_strategy_discussion.validator
    def _check_strategy_discussion(self, discussion: StrategyDiscussion) -> None:
        self._check(discussion.actor, CASE_DECIDERS, "record a strategy discussion", {Stage.STRATEGY_DISCUSSION})
        if discussion.held_at > workflow.now() + CLOCK_SKEW:
            raise reject("held_at: a strategy discussion cannot be recorded before it is held")
        if discussion.held_at < self._submissions[-1].incident.occurred_at:
            raise reject("held_at: a strategy discussion cannot be held before the incident")
        if discussion.held_at < self._submitted_at - CLOCK_SKEW:
            raise reject("held_at: a strategy discussion cannot be held before the referral was submitted")
        self._check_action_deadlines(discussion.agreed_actions, discussion.held_at, "the discussion")

    # --- stage 6: the initial child protection conference ---------------------------

    @workflow.update
    async def book_conference(self, booking: ConferenceBooking) -> ReferralState:
        assert self._policy is not None
        self._conference = booking
        # The outcome is now due after the booked conference.
        self._fact(
            ConferenceBooked.of(booking, due_by=self._conference_due_by, deadline=self._deadline()), booking.actor
        )
        if booking.police_attendance is PoliceAttendance.REPORT_IN_LIEU:
            report_due = subtract_working_days(
                booking.conference_at,
                self._policy.conference_report_working_days_before,
                frozenset(self._policy.bank_holidays),
                self._policy.timezone,
            )
            report = AgreedActionSpec(
                description="Police report in lieu of attendance at the initial child protection conference",
                owner=ActionOwner(agency=Agency.POLICE, owner=booking.report_owner or booking.actor.id),
                deadline=report_due,
            )
            await self._agree_actions_then(booking.actor, [report], self._ladder_nudge)
        else:
            self._ladder_nudge()
        return await self._recorded_state()

    @book_conference.validator
    def _check_book_conference(self, booking: ConferenceBooking) -> None:
        self._check(booking.actor, CASE_DECIDERS, "book a conference", {Stage.CONFERENCE})
        if self._conference is not None:
            raise reject("conference_at: the conference is already booked")
        if booking.conference_at <= workflow.now():
            raise reject("conference_at: must be in the future")
        assert self._conference_due_by is not None and self._policy is not None
        if booking.police_attendance is PoliceAttendance.REPORT_IN_LIEU:
            report_due = subtract_working_days(
                booking.conference_at,
                self._policy.conference_report_working_days_before,
                frozenset(self._policy.bank_holidays),
                self._policy.timezone,
            )
            if report_due <= workflow.now():
                raise reject(
                    f"conference_at: too soon for a report in lieu, which is due "
                    f"{self._policy.conference_report_working_days_before} working days before the conference"
                )
        if booking.conference_at > self._conference_due_by and booking.late_reason is None:
            raise reject(
                f"late_reason: required for a conference later than "
                f"{self._policy.conference_working_days} working days "
                "after the strategy discussion"
            )

    @workflow.update
    async def record_conference_outcome(self, outcome: ConferenceOutcome) -> ReferralState:
        self._child_protection_plan = outcome.child_protection_plan
        self._fact(ConferenceHeld.of(outcome), outcome.actor)
        self._regrade_if_changed(outcome.actor, outcome.risk, "graded at the initial child protection conference")
        reason = CloseReason.CHILD_PROTECTION_PLAN if outcome.child_protection_plan else CloseReason.NO_CHILD_PROTECTION_PLAN
        await self._agree_actions_then(
            outcome.actor, outcome.agreed_actions, lambda: self._after_decision(outcome.actor, reason)
        )
        return await self._recorded_state()

    @record_conference_outcome.validator
    def _check_conference_outcome(self, outcome: ConferenceOutcome) -> None:
        self._check(outcome.actor, CASE_DECIDERS, "record a conference outcome", {Stage.CONFERENCE})
        if self._conference is None:
            raise reject("stage: the conference has not been booked")
        if outcome.held_at > workflow.now() + CLOCK_SKEW:
            raise reject("held_at: a conference outcome cannot be recorded before it is held")
        if outcome.held_at < self._conference.conference_at:
            raise reject("held_at: the conference cannot be held before the time it was booked for")
        if outcome.child_protection_plan and outcome.allocated_social_worker is None:
            raise reject("allocated_social_worker: required when the conference makes a child protection plan")
        self._check_action_deadlines(outcome.agreed_actions, outcome.held_at, "the conference")

    @staticmethod
    def _check_action_deadlines(actions: list[AgreedActionSpec], held_at: datetime, meeting: str) -> None:
        for index, action in enumerate(actions):
            if action.deadline <= held_at:
                raise reject(f"agreed_actions[{index}].deadline: must be after {meeting} was held")

    # --- at any stage: risk, closure, escalations ------------------------------------

    @workflow.update
    async def regrade_risk(self, regrade: RiskRegrade) -> ReferralState:
        self._regrade(regrade.actor, regrade.risk, regrade.reason)
        return await self._recorded_state()

    @regrade_risk.validator
    def _check_regrade(self, regrade: RiskRegrade) -> None:
        self._check(regrade.actor, CASE_DECIDERS, "regrade risk", OPEN_STAGES)
        if regrade.risk is self._risk:
            raise reject(f"risk: the referral is already graded {self._risk.value}")

    @workflow.update
    async def close(self, closure: Closure) -> ReferralState:
        self._close(closure.actor, closure.reason, closure.note)
        return await self._recorded_state()

    @close.validator
    def _check_close(self, closure: Closure) -> None:
        self._check(closure.actor, CASE_DECIDERS, "close a referral", OPEN_STAGES)
        if self._open_actions():
            raise reject(f"reason: {len(self._open_actions())} agreed actions are still open")

    @workflow.update
    async def acknowledge_escalation(self, ack: EscalationAcknowledgement) -> ReferralState:
        self._escalations.acknowledge(ack, "referral")
        self._ladder_nudge()
        return await self._recorded_state()

    @acknowledge_escalation.validator
    def _check_acknowledge(self, ack: EscalationAcknowledgement) -> None:
        self._escalations.check_acknowledgement(ack, "referral")

    @workflow.signal
    def action_updated(self, action: ActionState) -> None:
        """An agreed action reports a change (reassignment, reminder, escalation).

        A signal cannot prove its sender: it is taken only for an action this referral agreed
        and has not seen finish, and never completes one (the action's result does that).
        """
        if not self._completion_from_results_only:
            self._actions[action.action_id] = action
            return
        reported_change(self._actions, action)

    @workflow.signal
    def episode_linked(self, link: EpisodeLink) -> None:
        """A missing episode of a child of this referral, reported with a CSE concern, links itself here.

        A signal cannot prove its sender: it only records the link (an episode's ID, checked for its shape), once,
        while the referral is open; it changes no stage, deadline or decision.
        """
        if self._stage is Stage.CLOSED or link.episode_id in self._linked_episodes:
            return
        self._linked_episodes.append(link.episode_id)
        self._fact(CseEpisodeLinked(episode_id=link.episode_id), SYSTEM_ACTOR)

    # --- the mechanics -------------------------------------------------------------

    def _check(self, actor: Actor, roles: frozenset[Role], action: str, stages: frozenset[Stage] | set[Stage]) -> None:
        require(actor, roles, action)
        if self._policy is None:
            raise reject("stage: the referral is still being registered; try again shortly")
        if self._stage not in stages:
            raise reject(f"stage: the referral is at {self._stage.value}; cannot {action} now")

    def _perform(self, duty: Duty, actor: Actor) -> None:
        self._performed.setdefault(duty, set()).add(actor.id)

    def _fact(self, payload: FactPayload, actor: Actor) -> None:
        """Record a fact at the referral's stage and risk; a decision (by the registry) joins the decision history."""
        fact = self._outbox.add(payload, actor, stage=self._stage, risk=self._risk)
        if fact.entry.decision:
            self._history.append(
                HistoryEntry(seq=fact.seq, kind=fact.kind, at=fact.at, actor_id=actor.id, actor_role=actor.role)
            )

    def _enter(self, stage: Stage, actor: Actor, made_at: datetime | None = None) -> None:
        """Move to `stage`, its clock running from the decision that moved it (`made_at`), or from now."""
        previous = self._stage
        self._stage = stage
        self._stage_token += 1
        self._stage_entered_at = self._decision_time(made_at)
        if self._ladder is not None:
            self._ladder.reset()
        self._fact(
            StageChanged(from_stage=previous, to_stage=stage, deadline=self._deadline(), entered_at=self._stage_entered_at),
            actor,
        )

    def _decision_time(self, made_at: datetime | None) -> datetime:
        """When the API received a decision: never before the stage it ends began, never after now."""
        now = workflow.now()
        if made_at is None or not patched(DEADLINES_FROM_SUBMISSION):
            return now
        return min(max(made_at, self._stage_entered_at), now)

    def _after_decision(self, actor: Actor, reason: CloseReason) -> None:
        """Close now, or once the agreed actions are done."""
        if self._open_actions():
            self._close_after_actions = reason
            self._enter(Stage.ACTIONS, actor)
        else:
            self._close(actor, reason, None)

    def _close(self, actor: Actor, reason: CloseReason, note: str | None) -> None:
        self._close_reason = reason
        self._fact(Closed(reason=reason, note=note), actor)
        self._resolve_open_escalations()
        self._enter(Stage.CLOSED, actor)

    def _resolve_open_escalations(self) -> None:
        """A closed referral needs no more acknowledgements: its open escalations are resolved by the closure."""
        # A fact that could not be recorded stays the administrators' to re-apply, closed or not.
        still_open = self._escalations.awaiting_acknowledgement()
        # Histories recorded before closure resolved escalations left them open.
        if still_open and patched(CLOSURE_RESOLVES_ESCALATIONS):
            self._escalations.resolve(still_open, "referral_closed")

    def _regrade(self, actor: Actor, risk: RiskGrade, reason: str) -> None:
        previous = self._risk
        self._risk = risk
        self._fact(RiskRegraded(from_risk=previous, to_risk=risk, reason=reason, deadline=self._deadline()), actor)
        self._ladder_nudge()

    def _regrade_if_changed(self, actor: Actor, risk: RiskGrade | None, reason: str) -> None:
        """A grade agreed in a decision (screening, a meeting) takes effect at once, recorded like any regrade."""
        if risk is not None and risk is not self._risk:
            self._regrade(actor, risk, reason)

    def _ladder_nudge(self) -> None:
        if self._ladder is not None:
            self._ladder.nudge()

    def _deadline(self) -> datetime | None:
        """The current stage's deadline, from when it was entered and the risk grade now."""
        if self._policy is None:
            return None
        if self._stage is Stage.CONFERENCE:
            if self._conference is not None:
                # The outcome is due on the conference's next working day.
                return add_duration(self._conference.conference_at, Duration(working_days=1), self._policy)
            return self._conference_due_by
        return stage_deadline(self._policy, self._stage, self._stage_entered_at, self._risk, self._submissions[-1])

    def _new_escalation(self, subject: str, rung: int, due_at: datetime, reason: EscalationReason) -> Escalation:
        assert self._ladder is not None
        rank = self._ladder.rank(rung)
        team = STAGE_TEAMS.get(self._stage, "MASH")
        if team == "station":
            team = self._submissions[-1].station
        return self._escalations.raise_escalation(
            reference=self._reference,
            subject=subject,
            rung=rung,
            rank=rank,
            addressed_to=f"{rank.value}, {team}",
            due_at=due_at,
            policy=self._ladder.policy,
            reason=reason,
            team=team,
        )

    def _recording_failed(self, event: RecordedEvent) -> None:
        # The submission's fact may fail before the policy is loaded: the default ladder names the rank.
        self._escalations.recording_failed(event, self._policy or SlaPolicy())

    def _raise_stage_escalation(self, rung: int, due_at: datetime) -> Escalation:
        return self._new_escalation(self._stage.value, rung, due_at, "overdue")

    def _raise_inquorate_escalation(self) -> None:
        self._new_escalation(Stage.STRATEGY_DISCUSSION.value, 0, workflow.now(), "inquorate")

    async def _agree_actions_then(
        self, actor: Actor, specs: list[AgreedActionSpec], move_on: Callable[[], None]
    ) -> None:
        """Agree the actions and move the referral on; each action's workflow starts after the move.

        The actions and the new stage exist before the first await, so a second identical
        decision arriving meanwhile finds them and is rejected by its validator.
        """
        agreed = [self._register_action(spec) for spec in specs]
        if not agreed or patched(STAGE_BEFORE_ACTIONS):
            move_on()
            await self._start_actions(actor, agreed)
        else:  # histories recorded before: the stage moved once every action had started
            await self._start_actions(actor, agreed)
            move_on()

    def _register_action(self, spec: AgreedActionSpec) -> tuple[str, AgreedActionSpec]:
        return register_action(self._actions, self._reference, spec)

    async def _start_actions(self, actor: Actor, agreed: list[tuple[str, AgreedActionSpec]]) -> None:
        assert self._policy is not None
        await start_actions(self._reference, agreed, actor, self._policy, self._following)

    def _following(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._action_tasks.append(asyncio.create_task(self._follow_action(action_id, handle)))

    async def _follow_action(self, action_id: str, handle: workflow.ChildWorkflowHandle) -> None:
        self._actions[action_id] = await handle

    def _open_actions(self) -> list[ActionState]:
        return [a for a in self._actions.values() if a.completed_at is None]

    async def _recorded_state(self) -> ReferralState:
        """Return to the caller only once the decision is in PostgreSQL."""
        await self._outbox.recorded()
        return self.state()


def stage_deadline(
    policy: SlaPolicy, stage: Stage, entered_at: datetime, risk: RiskGrade, submission: ReferralForm
) -> datetime | None:
    """A stage's deadline under the policy, from when it was entered, at this risk (police protection's own when taken)."""
    deadlines = policy.deadlines_for(stage)
    if deadlines is None:
        return None
    return add_duration(entered_at, deadlines.for_risk(risk, submission.police_protection_used()), policy)


def opening_stage(form: ReferralForm) -> Stage:
    """Where a referral started now opens: a partner agency's at screening (it has no VIST to review)."""
    return Stage.SCREENING if isinstance(form, PartnerReferral) else Stage.SUPERVISOR_REVIEW


def submission_time(start: StartReferral, started_at: datetime) -> datetime:
    """When a referral's SLA clock starts: the API's receipt of its form, never later than Temporal's acceptance of
    the start (`started_at`) and at most `RECEIPT_WINDOW` before it; without a receipt, the acceptance itself."""
    received = start.received_at
    if received is None or received < started_at - RECEIPT_WINDOW:
        return started_at
    return min(received, started_at)


def first_deadline(start: StartReferral, submitted_at: datetime) -> datetime | None:
    """The opening stage's deadline a referral starts with, from its start's acceptance: what the workflow sets."""
    if start.sla_policy is None:
        return None
    form = start.submission
    return stage_deadline(start.sla_policy, opening_stage(form), submitted_at, form.initial_risk, form)


def own_form(actor: Actor, form: ReferralForm) -> None:
    """The form that opens a referral is its submitter's to make, naming them as their credentials do."""
    if isinstance(form, PartnerReferral):
        require(actor, PARTNER_REFERRERS, "refer a child as a partner agency")
        if form.referrer_id != actor.id:
            raise reject("submission.referrer_id: must be the referrer's own staff ID, from their credentials")
        if form.referring_agency is not actor.agency:
            raise reject("submission.referring_agency: must be the referrer's own agency, from their credentials")
        return
    assert isinstance(form, VistSubmission)
    require(actor, SUBMITTERS, "submit a VIST")
    own_submission(actor, form)


def own_submission(actor: Actor, submission: VistSubmission) -> None:
    """The VIST names its submitter: it must be the actor the credentials name."""
    if submission.officer_id != actor.id:
        raise reject("submission.officer_id: must be the submitter's own staff ID, from their credentials")


if __name__ == "__main__":
    raise SystemExit("ReferralWorkflow runs inside a worker: start one with `python worker.py`")
