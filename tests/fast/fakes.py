"""In-memory stand-ins for the worker's activities: the same classes' method names, no PostgreSQL, no network.

Each fake keeps what the workflows gave it (facts in order, alerts delivered, proofs checked),
so a test asserts on what was recorded. A renamed activity no longer matches the workflow's
call, and the fast tier fails.
"""

from __future__ import annotations

from datetime import datetime, timezone

from temporalio import activity

from activities.policy import build_sla_policy
from activities.proofs import StartProofs
from runtime.proofs import DecisionVerifier
from workflows.audit_models import AuditWorklist, SampleRequest, WorklistItem
from workflows.facts import FactKind, RecordedEvent
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


class FakeReferralRecords:
    """`ReferralRecords` in memory: facts kept in arrival order, written once per (stream, seq)."""

    def __init__(self) -> None:
        self.facts: list[RecordedEvent] = []
        self.quarantined: list[RecordedEvent] = []
        # Kinds of fact to refuse for good, as PostgreSQL refuses a value it cannot store.
        self.refused_kinds: set[FactKind] = set()
        self.screening_views: dict[str, ScreeningView] = {}
        self.prior_queries: list[PriorReferralQuery] = []

    def facts_of(self, reference: str) -> list[RecordedEvent]:
        return [f for f in self.facts if f.reference == reference]

    def kinds_of(self, stream: str) -> list[FactKind]:
        return [f.kind for f in self.facts if f.stream == stream]

    @activity.defn
    async def record_event(self, event: RecordedEvent) -> RecordOutcome:
        if any((f.stream, f.seq) == (event.stream, event.seq) for f in self.facts + self.quarantined):
            return RecordOutcome(recorded=False)
        if event.kind in self.refused_kinds:
            self.quarantined.append(event)
            return RecordOutcome(recorded=False, quarantine_reason="refused by the fake read model")
        self.facts.append(event)
        return RecordOutcome(recorded=True)

    @activity.defn
    async def find_prior_referrals(self, query: PriorReferralQuery) -> ScreeningView:
        self.prior_queries.append(query)
        return self.screening_views.get(query.reference, ScreeningView())


class FakeSlaPolicySource:
    """`SlaPolicySource` with the policy held in memory."""

    def __init__(self, policy: SlaPolicy | None = None) -> None:
        self.policy = policy or build_sla_policy()

    @activity.defn
    async def load_sla_policy(self) -> SlaPolicy:
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
