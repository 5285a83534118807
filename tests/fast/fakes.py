"""In-memory stand-ins for the worker's activities: the same classes' method names, no PostgreSQL, no network.

Each fake keeps what the workflows gave it (facts in order, alerts delivered, proofs checked),
so a test asserts on what was recorded. A renamed activity no longer matches the workflow's
call, and the fast tier fails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

from temporalio import activity

from activities.policy import build_sla_policy
from activities.proofs import StartProofs
from runtime.proofs import DecisionVerifier
from workflows.audit_models import AuditWorklist, SampleRequest, WorklistItem
from workflows.facts import FactBatch, FactKind, RecordedBatch, RecordedEvent
from workflows.plan_models import TriggerPlanFound, TriggerPlanQuery
from workflows.missing_models import EpisodeCountQuery, OpenReferralQuery, OpenReferrals
from workflows.panel_models import Agenda, AgendaCandidate, AgendaQuery, ForwardedRegrade, GradeApplied
from workflows.triage_models import TriageCandidate, TriageList, TriageListQuery
from workflows.models import (
    AlertDelivery,
    EscalationAlert,
    PriorReferralQuery,
    ProofVerdict,
    RecordOutcome,
    ScreeningView,
    SlaPolicy,
    StartProofCheck,
)


class Holds:
    """Activity calls a test holds back, as a slow database would, keyed by (workflow ID, what is held).

    A held call waits until the test opens its gate, so the test sees the workflow mid-step:
    a referral closed but not yet recorded, a screening view still loading, a policy not loaded.
    """

    def __init__(self) -> None:
        self._gates: dict[tuple[str, str], asyncio.Event] = {}

    def hold(self, workflow_id: str, what: str) -> asyncio.Event:
        return self._gates.setdefault((workflow_id, what), asyncio.Event())

    async def passing(self, what: str) -> None:
        gate = self._gates.get((activity.info().workflow_id, what))
        if gate is not None:
            await gate.wait()

    def release_all(self) -> None:
        for gate in self._gates.values():
            gate.set()
        self._gates.clear()


class FakeReferralRecords:
    """`ReferralRecords` in memory: facts kept in arrival order, written once per (stream, seq).

    A fact is held by its kind, the prior-referral search as "find_prior_referrals".
    """

    def __init__(self, holds: Holds) -> None:
        self.holds = holds
        self.facts: list[RecordedEvent] = []
        self.quarantined: list[RecordedEvent] = []
        # Kinds of fact to refuse for good, as PostgreSQL refuses a value it cannot store.
        self.refused_kinds: set[FactKind] = set()
        self.screening_views: dict[str, ScreeningView] = {}
        self.prior_queries: list[PriorReferralQuery] = []
        # Episodes the read model already holds per episode's child: episode_id -> the count it answers.
        self.episode_counts: dict[str, int] = {}
        self.count_queries: list[EpisodeCountQuery] = []
        # The trigger plan the read model holds for an episode's child: episode_id -> what it answers.
        self.trigger_plans: dict[str, TriggerPlanFound] = {}
        # The open referrals about an episode's child: episode_id -> what the read model answers.
        self.open_referrals: dict[str, OpenReferrals] = {}
        # What checks a referral's start with its first facts (`FakeStartProofs`, given by the session).
        self.proofs: FakeStartProofs | None = None

    def facts_of(self, reference: str) -> list[RecordedEvent]:
        return [f for f in self.facts if f.reference == reference]

    def kinds_of(self, stream: str) -> list[FactKind]:
        return [f.kind for f in self.facts if f.stream == stream]

    @activity.defn
    async def record_events(self, events: list[RecordedEvent]) -> list[RecordOutcome]:
        return [await self.record_event(event) for event in events]

    @activity.defn
    async def record_facts(self, batch: FactBatch) -> RecordedBatch:
        """Every alert is left to `FakeEscalationAlerts`, as a worker without the dashboard channel leaves it; a
        screening view asked for is read after the facts, held as "find_prior_referrals" like the one read alone; a
        start to check is checked first by the product's own `StartProofs` (kept with its other checks)."""
        if batch.start_check is not None:
            assert self.proofs is not None, "the session's fakes give the records their start proofs"
            refusal = (await self.proofs.check_start_proof(batch.start_check)).refusal
            if refusal is not None:
                return RecordedBatch(outcomes=[], start_refusal=refusal)
        outcomes = await self.record_events(batch.events)
        for event, outcome in zip(batch.events, outcomes):
            if event.seq in batch.alerts:
                outcome.alert_left = True
        view = await self.find_prior_referrals(batch.then_read) if batch.then_read is not None else None
        return RecordedBatch(outcomes=outcomes, screening_view=view, written=batch.events if activity.info().is_local else None)

    @activity.defn
    async def record_event(self, event: RecordedEvent) -> RecordOutcome:
        await self.holds.passing(event.kind)
        if any((f.stream, f.seq) == (event.stream, event.seq) for f in self.facts + self.quarantined):
            return RecordOutcome(recorded=False)
        if event.kind in self.refused_kinds:
            self.quarantined.append(event)
            return RecordOutcome(recorded=False, quarantine_reason="refused by the fake read model")
        self.facts.append(event)
        return RecordOutcome(recorded=True)

    @activity.defn
    async def find_prior_referrals(self, query: PriorReferralQuery) -> ScreeningView:
        await self.holds.passing("find_prior_referrals")
        self.prior_queries.append(query)
        return self.screening_views.get(query.reference, ScreeningView())


    @activity.defn
    async def count_missing_episodes(self, query: EpisodeCountQuery) -> int:
        await self.holds.passing("count_missing_episodes")
        self.count_queries.append(query)
        return self.episode_counts.get(query.episode_id, 1)

    @activity.defn
    async def find_open_referrals(self, query: OpenReferralQuery) -> OpenReferrals:
        await self.holds.passing("find_open_referrals")
        return self.open_referrals.get(query.episode_id, OpenReferrals())

    @activity.defn
    async def find_trigger_plan(self, query: TriggerPlanQuery) -> TriggerPlanFound:
        await self.holds.passing("find_trigger_plan")
        return self.trigger_plans.get(query.episode_id, TriggerPlanFound())


class FakeSlaPolicySource:
    """`SlaPolicySource` with the policy held in memory; its loading is held as "load_sla_policy"."""

    def __init__(self, holds: Holds) -> None:
        self.holds = holds
        self.policy = build_sla_policy()

    @activity.defn
    async def load_sla_policy(self) -> SlaPolicy:
        await self.holds.passing("load_sla_policy")
        return self.policy


class FakeEscalationAlerts:
    """`EscalationAlerts` delivering in-app only, once per escalation, keeping every alert."""

    def __init__(self) -> None:
        self.alerts: list[EscalationAlert] = []

    def alerts_of(self, reference: str) -> list[EscalationAlert]:
        return [a for a in self.alerts if a.escalation.reference == reference]

    @activity.defn
    async def deliver_escalation(self, alert: EscalationAlert) -> AlertDelivery:
        escalation_id = alert.escalation.escalation_id
        if any(a.escalation.escalation_id == escalation_id for a in self.alerts):
            return AlertDelivery(escalation_id=escalation_id, already_sent=["in_app"])
        self.alerts.append(alert)
        return AlertDelivery(escalation_id=escalation_id, sent=["in_app"])


class FakeAuditRecords:
    """`AuditRecords` drawing the month's sample from references given to it."""

    def __init__(self) -> None:
        self.candidates: list[str] = []
        self.requests: list[SampleRequest] = []

    @activity.defn
    async def draw_monthly_sample(self, request: SampleRequest) -> AuditWorklist:
        self.requests.append(request)
        category = next(iter(request.quotas))
        items = [
            WorklistItem(position=n, category=category, reference=reference)
            for n, reference in enumerate(self.candidates[: request.quotas[category]], start=1)
        ]
        return AuditWorklist(
            worklist_id=len(self.requests), month=request.month, seed=request.seed, quotas=request.quotas,
            drawn_at=datetime.now(timezone.utc), drawn_by=request.drawn_by, items=items,
        )


class FakeStartProofs(StartProofs):
    """`StartProofs` itself (the check is the product's, with the production keys), keeping every check."""

    def __init__(self, verifier: DecisionVerifier) -> None:
        super().__init__(verifier)
        self.checks: list[StartProofCheck] = []

    @activity.defn
    async def check_start_proof(self, check: StartProofCheck) -> ProofVerdict:
        self.checks.append(check)
        return await super().check_start_proof(check)


class FakeTriageRecords:
    """`TriageRecords` listing the referrals a test gives it, keeping each window it was asked for."""

    def __init__(self) -> None:
        self.candidates: list[TriageCandidate] = []
        self.queries: list[TriageListQuery] = []

    @activity.defn
    async def triage_list(self, query: TriageListQuery) -> TriageList:
        self.queries.append(query)
        return TriageList(candidates=[c for c in self.candidates if query.since <= c.submitted_at < query.until])


class FakePanelRecords:
    """`PanelRecords` building the agenda a test gives it, and applying grades in memory (each kept, in order)."""

    def __init__(self) -> None:
        self.candidates: list[AgendaCandidate] = []
        self.grades: list[ForwardedRegrade] = []

    @activity.defn
    async def panel_agenda(self, query: AgendaQuery) -> Agenda:
        return Agenda(candidates=list(self.candidates))

    @activity.defn
    async def apply_grade(self, forwarded: ForwardedRegrade) -> GradeApplied:
        self.grades.append(forwarded)
        return GradeApplied(result="applied")


@dataclass
class Fakes:
    """Every fake the fast tier's worker runs, and the holds they share."""

    records: FakeReferralRecords
    policy: FakeSlaPolicySource
    alerts: FakeEscalationAlerts
    audit: FakeAuditRecords
    proofs: FakeStartProofs
    holds: Holds
    triage: FakeTriageRecords
    panels: FakePanelRecords
