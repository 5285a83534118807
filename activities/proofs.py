"""The check of a case's start (a referral, a missing episode, a trigger plan) against the API's proof, run as an activity so its verdict is in the history."""

from __future__ import annotations

from temporalio import activity

from runtime.proofs import DecisionVerifier, start_message
from workflows.missing_models import EpisodeStartProofCheck
from workflows.models import ProofVerdict, StartProofCheck
from workflows.plan_models import PlanStartProofCheck


class StartProofs:
    def __init__(self, verifier: DecisionVerifier) -> None:
        self.verifier = verifier

    @activity.defn
    async def check_start_proof(self, check: StartProofCheck) -> ProofVerdict:
        return self.verdict(check)

    @activity.defn
    async def check_episode_start_proof(self, check: EpisodeStartProofCheck) -> ProofVerdict:
        return self.verdict(check)

    @activity.defn
    async def check_plan_start_proof(self, check: PlanStartProofCheck) -> ProofVerdict:
        return self.verdict(check)

    def verdict(self, check: StartProofCheck | EpisodeStartProofCheck | PlanStartProofCheck) -> ProofVerdict:
        start = check.start
        refusal = self.verifier.refusal(
            check.workflow_id, start_message(check.workflow_type), check.workflow_id, start, start.proof
        )
        return ProofVerdict(refusal=refusal)
