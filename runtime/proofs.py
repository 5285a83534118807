"""Proof of who made each decision: the API signs every decision for the actor its token named; workers verify.

The encryption keyring proves only that a payload came from someone holding it; a decision
also names its actor, and only the API, which checks a person's token, may vouch for that.
It signs with Ed25519 keys of its own (a decision keyring, apart from the encryption keys):
the signature covers the workflow ID, the update name and ID, and the decision with its
actor, so a captured decision cannot be moved to another referral, update or update ID (and
Temporal deduplicates a resend under the same update ID). The current key signs; every key
in the ring verifies, so the ring rotates like the encryption keyring. Workers and auditors
can hold the public keys only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from temporalio import client, worker, workflow

from runtime.codec import Keyring, KeyringError, ensure_keyring_file, load_key_provider
from runtime.settings import Settings
from workflows.authority import reject
from workflows.missing_models import StartMissingEpisode
from workflows.plan_models import StartTriggerPlan
from workflows.models import CLOCK_SKEW, Decision, DecisionProof, ForwardedDecision, Model, StartReferral

# Binds a signature to this system and this message layout.
DOMAIN = b"child-protection-referrals/decision-proof/v1\n"
REFERRAL_WORKFLOW = "ReferralWorkflow"
# The starts a caller makes, each checked by its workflow against this proof before anything is recorded.
SIGNED_STARTS = (StartReferral, StartMissingEpisode, StartTriggerPlan)


def proof_message(workflow_id: str, message: str, message_id: str, decision: Model) -> bytes:
    """What is signed: the target, the message and its ID, and the decision (its actor too) without its proof."""
    body = {
        "workflow_id": workflow_id,
        "message": message,
        "message_id": message_id,
        "decision": decision.model_dump(mode="json", exclude={"proof"}),
    }
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def update_message(update: str) -> str:
    return f"update {update}"


def start_message(workflow_type: str) -> str:
    return f"start {workflow_type}"


class DecisionSigner:
    """The API's side: signs with the ring's current key."""

    def __init__(self, keyring: Keyring) -> None:
        self.key_id = keyring.current
        self._key = Ed25519PrivateKey.from_private_bytes(keyring.keys[keyring.current])

    def sign(self, workflow_id: str, message: str, message_id: str, decision: Model) -> DecisionProof:
        signature = self._key.sign(proof_message(workflow_id, message, message_id, decision))
        return DecisionProof(key_id=self.key_id, signature=base64.b64encode(signature).decode())


@dataclasses.dataclass(frozen=True)
class DecisionVerifier:
    """The workers' and auditors' side: the public key of every key in the ring."""

    public_keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> DecisionVerifier:
        return cls(
            {key_id: Ed25519PrivateKey.from_private_bytes(seed).public_key() for key_id, seed in keyring.keys.items()}
        )

    @classmethod
    def from_json(cls, text: str) -> DecisionVerifier:
        """A full decision keyring, or its public half: {"public_keys": {ID: base64 32-byte key, ...}}."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise KeyringError("decision keys: not JSON") from None
        if not isinstance(data, dict) or "public_keys" not in data:
            return cls.from_keyring(Keyring.from_json(text))
        try:
            return cls(
                {
                    key_id: Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
                    for key_id, value in data["public_keys"].items()
                }
            )
        except (AttributeError, TypeError, ValueError, binascii.Error):
            raise KeyringError('decision keys: expected {"public_keys": {ID: base64 32-byte key, ...}}') from None

    def public_json(self) -> str:
        raw = {key_id: key.public_bytes(Encoding.Raw, PublicFormat.Raw) for key_id, key in self.public_keys.items()}
        return json.dumps({"public_keys": {k: base64.b64encode(v).decode() for k, v in raw.items()}}, indent=2)

    def refusal(
        self, workflow_id: str, message: str, message_id: str, decision: Model, proof: DecisionProof | None
    ) -> str | None:
        """Why the decision's proof does not hold, or None when it does."""
        if proof is None:
            return "proof: the decision carries no proof of its actor (decisions are made through the API)"
        key = self.public_keys.get(proof.key_id)
        if key is None:
            return f"proof: signed with key id {proof.key_id!r}, which is not in the decision keyring"
        try:
            key.verify(base64.b64decode(proof.signature, validate=True), proof_message(workflow_id, message, message_id, decision))
        except (InvalidSignature, ValueError, binascii.Error):
            return "proof: the signature does not match this decision, its actor, this referral or this update"
        return None


# --- the keys ---------------------------------------------------------------------------------


def decision_keys_text(settings: Settings) -> str | None:
    """The decision keys' JSON from the settings, or None when none are configured."""
    if settings.decision_keys is not None:
        return settings.decision_keys.get_secret_value()
    if settings.decision_keys_file is not None:
        if not settings.decision_keys_file.exists():
            raise KeyringError(f"decision_keys_file: {settings.decision_keys_file} does not exist")
        return settings.decision_keys_file.read_text()
    return None


def load_decision_keyring(settings: Settings) -> Keyring:
    """The signing keyring from a KMS hook, the environment or a file, in that order; the embedded
    stack keeps its own under the data directory, created on first use."""
    if settings.decision_key_provider:
        return load_key_provider(settings.decision_key_provider, "decision_key_provider")
    text = decision_keys_text(settings)
    if text is not None:
        return Keyring.from_json(text)
    if settings.temporal_address is None:
        return ensure_keyring_file(settings.embedded_decision_keys_file)
    raise KeyringError(
        "decision keys: set DECISION_KEYS_FILE, DECISION_KEYS or DECISION_KEY_PROVIDER "
        "(every decision carries the API's signature)"
    )


def load_decision_verifier(settings: Settings) -> DecisionVerifier:
    """The verification keys: the public half alone is enough for a worker or an auditor."""
    if not settings.decision_key_provider:
        text = decision_keys_text(settings)
        if text is not None:
            return DecisionVerifier.from_json(text)
    return DecisionVerifier.from_keyring(load_decision_keyring(settings))


# --- the client side: the API (and the demo) sign every decision they send -------------------


class DecisionSigning(client.Interceptor):
    """A client interceptor signing each decision update and each case's start (SIGNED_STARTS) it sends."""

    def __init__(self, signer: DecisionSigner) -> None:
        self.signer = signer

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _SigningOutbound(next, self.signer)


class _SigningOutbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, signer: DecisionSigner) -> None:
        super().__init__(next)
        self.signer = signer

    async def start_workflow(self, input: client.StartWorkflowInput) -> Any:
        if input.args and isinstance(input.args[0], SIGNED_STARTS):
            start = input.args[0]
            proof = self.signer.sign(input.id, start_message(input.workflow), input.id, start)
            input.args = [start.model_copy(update={"proof": proof}), *input.args[1:]]
        return await super().start_workflow(input)

    async def start_workflow_update(self, input: client.StartWorkflowUpdateInput) -> Any:
        if input.args and isinstance(input.args[0], Decision):
            # The update ID is signed too: a captured decision can only be resent under it, and Temporal
            # applies an update ID once.
            input.update_id = input.update_id or str(uuid.uuid4())
            # Stamped here, the one place every decision passes, and signed with it: the time cannot be forged.
            decision = self._forwards_signed(input.args[0].model_copy(update={"made_at": datetime.now(UTC)}))
            proof = self.signer.sign(input.id, update_message(input.update), input.update_id, decision)
            input.args = [decision.model_copy(update={"proof": proof}), *input.args[1:]]
        return await super().start_workflow_update(input)

    def _forwards_signed(self, decision: Decision) -> Decision:
        """The decision with each decision it forwards to another workflow stamped with its time and signed for that
        workflow's update."""
        signed = {}
        for name in type(decision).model_fields:
            forwarded = getattr(decision, name)
            if isinstance(forwarded, ForwardedDecision) and forwarded.decision.proof is None:
                inner = forwarded.decision.model_copy(update={"made_at": decision.made_at})
                proof = self.signer.sign(forwarded.workflow_id, update_message(forwarded.update), forwarded.update_id, inner)
                signed[name] = forwarded.model_copy(update={"decision": inner.model_copy(update={"proof": proof})})
        return decision.model_copy(update=signed) if signed else decision


# --- the worker side: every update's validator stage checks the proof ------------------------


class DecisionProofCheck(worker.Interceptor):
    """A worker interceptor refusing, before any validator and before history, an update whose
    decision does not carry a valid proof of its actor. Validators do not run on replay, so
    replaying needs no keys."""

    def __init__(self, verifier: DecisionVerifier) -> None:
        self.verifier = verifier

    def workflow_interceptor_class(
        self, input: worker.WorkflowInterceptorClassInput
    ) -> type[worker.WorkflowInboundInterceptor]:
        verifier = self.verifier

        class ProofCheckingInbound(worker.WorkflowInboundInterceptor):
            def handle_update_validator(self, input: worker.HandleUpdateInput) -> None:
                decision = input.args[0] if len(input.args) == 1 else None
                if not isinstance(decision, Decision):
                    raise reject("proof: this update carries no decision to prove")
                # OpenSSL's verification imports its exception class when a signature fails: let it
                # import outside the sandbox (the check is deterministic, and replays skip it).
                with workflow.unsafe.imports_passed_through():
                    reason = verifier.refusal(
                        workflow.info().workflow_id, update_message(input.update), input.id, decision, decision.proof
                    )
                if reason is not None:
                    raise reject(reason)
                if decision.made_at is not None and decision.made_at > workflow.now() + CLOCK_SKEW:
                    raise reject("made_at: is in the future")
                super().handle_update_validator(input)

        return ProofCheckingInbound
