"""Acknowledging an escalation from outside its workflow: whether the caller is the rung's named addressee.

The workflow cannot read the supervision directory, so the API and the dashboard resolve
it here, from where the rung's alert went, and say so in the acknowledgement decision. The
rung rule itself is `rung_refusal` (workflows/authority.py), the one the validators apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.directory import SupervisionDirectory
from readmodel.oversight import OversightReadModel
from workflows.action import AgreedActionWorkflow
from workflows.authority import ACKNOWLEDGERS, rung_refusal
from workflows.models import Actor, Agency, Escalation, EscalationAcknowledgement, Rank, escalation_owner
from workflows.referral import ReferralWorkflow


class AcknowledgementRefused(Exception):
    """The caller may not acknowledge this escalation (`missing`: there is no such escalation)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


@dataclass(frozen=True)
class Acknowledgement:
    """A checked acknowledgement: the decision, and the workflow and update that record it."""

    owner: str
    update: Callable[..., Any]
    decision: EscalationAcknowledgement


@dataclass(frozen=True)
class Acknowledgements:
    client: Client
    oversight: OversightReadModel
    directory: SupervisionDirectory

    def names(self, actor: Actor, addressing: Any) -> bool:
        """Whether the directory names `actor` as the addressee of a rung, given where its alert went
        (a read-model row with its rung, agency and team; none before the alert is delivered)."""
        if addressing is None or addressing["agency"] is None:
            return False
        addressee = self.directory.rung_addressee(Agency(addressing["agency"]), addressing["team"], addressing["rung"])
        return addressee.staff_id == actor.id

    def may_acknowledge(self, actor: Actor, row: Any) -> bool:
        """For a read-model row (rank, rung, agency, team): whether the dashboard offers Acknowledge."""
        return rung_refusal(actor, Rank(row["rank"]), self.names(actor, row)) is None

    async def prepare(self, actor: Actor, escalation_id: str) -> Acknowledgement:
        """The acknowledgement `actor` may make, or AcknowledgementRefused saying why not."""
        if actor.role not in ACKNOWLEDGERS and not self.directory.names(actor.id):
            # Neither a supervisor, an administrator nor anyone's named addressee: no rung is theirs.
            raise AcknowledgementRefused(rung_refusal(actor, Rank.SERGEANT, False) or "actor.role")
        owner = escalation_owner(escalation_id)
        if owner is None:
            raise AcknowledgementRefused("escalation_id: no such escalation", missing=True)
        escalation = await self._escalation(owner, escalation_id)
        named = self.names(actor, await self.oversight.alert_addressing(escalation_id))
        refusal = rung_refusal(actor, escalation.rank, named)
        if refusal is not None:
            raise AcknowledgementRefused(refusal)
        update = AgreedActionWorkflow.acknowledge_escalation if ".A" in owner else ReferralWorkflow.acknowledge_escalation
        decision = EscalationAcknowledgement(actor=actor, escalation_id=escalation_id, as_named_addressee=named)
        return Acknowledgement(owner, update, decision)

    async def _escalation(self, owner: str, escalation_id: str) -> Escalation:
        query = AgreedActionWorkflow.state if ".A" in owner else ReferralWorkflow.state
        try:
            state = await self.client.get_workflow_handle(owner).query(query)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise AcknowledgementRefused("escalation_id: no such escalation", missing=True) from None
            raise
        escalation = next((e for e in state.escalations if e.escalation_id == escalation_id), None)
        if escalation is None:
            raise AcknowledgementRefused("escalation_id: no such escalation", missing=True)
        return escalation
