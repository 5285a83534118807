"""The check of a referral's start against the API's proof, run as an activity so its verdict is in the history."""

from __future__ import annotations

from temporalio import activity

from runtime.proofs import DecisionVerifier, start_message
from workflows.models import ProofVerdict, StartProofCheck


class StartProofs:
    def __init__(self, verifier: DecisionVerifier) -> None:
        self.verifier = verifier

    @activity.defn
    async def check_start_proof(self, check: StartProofCheck) -> ProofVerdict:
        refusal = self.verifier.refusal(
            check.workflow_id,
            start_message(check.workflow_type),
            check.workflow_id,
            check.start,
            check.start.proof,
        )
        return ProofVerdict(refusal=refusal)
