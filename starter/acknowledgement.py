"""Acknowledging an escalation from outside its workflow: whether the caller is the rung's named addressee.

The workflow cannot read the supervision directory, so the API and the dashboard resolve
it here, from where the rung's alert went, and say so in the acknowledgement decision. The
rung rule itself is `rung_refusal` (workflows/authority.py), the one the validators apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client

from activities.directory import SupervisionDirectory
from readmodel.oversight import OversightReadModel
from starter.actions import AgreedActions
from starter.missing import MissingEpisodes
from starter.panels import PanelSittings
from starter.plans import TriggerPlans
from starter.referrals import Referrals
from starter.triage import Triages
from starter.workflow_client import NoSuchWorkflow, WorkflowClient
from workflows.authority import ACKNOWLEDGERS, rung_refusal
from workflows.models import (
    ESCALATION_ID,
    Actor,
    Agency,
    Escalation,
    EscalationAcknowledgement,
    Rank,
    escalation_id_for,
    escalation_owner,
)

__all__ = [
    "ESCALATION_ID", "EXAMPLE_IDS", "NO_SUCH_ESCALATION", "Acknowledgement", "AcknowledgementRefused", "Acknowledgements",
]

NO_SUCH_ESCALATION = "escalation_id: no such escalation"
# The workflow types that raise escalations, each with the client that reaches it.
ESCALATING: tuple[type[WorkflowClient[Any]], ...] = (
    AgreedActions, Triages, MissingEpisodes, TriggerPlans, PanelSittings, Referrals,
)
# What an escalation's ID looks like, raised by a case (a referral, a missing episode, a trigger plan, a panel's
# sitting), an agreed action, or a day's triage.
EXAMPLE_IDS = tuple(escalation_id_for(workflows.example_id, 1) for workflows in ESCALATING)


def owner_workflows(owner: str) -> type[WorkflowClient[Any]]:
    """The client of the workflow type whose ID `owner` is (an escalation's owner is always one of them)."""
    return next((workflows for workflows in ESCALATING if workflows.matches(owner)), Referrals)


class AcknowledgementRefused(Exception):
    """The caller may not acknowledge this escalation (`missing`: there is no such escalation)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


@dataclass(frozen=True)
class Acknowledgement:
    """A checked acknowledgement: the decision, and the workflow that records it."""

    owner: str
    workflows: WorkflowClient[Any]
    decision: EscalationAcknowledgement

    async def send(self, key: str | None = None) -> Any:
        """The acknowledgement as one decision on its owner, named by `key`; the owner's state after it."""
        return await self.workflows.decide(self.owner, self.decision, key)


@dataclass(frozen=True)
class Acknowledgements:
    client: Client
    oversight: OversightReadModel
    directory: SupervisionDirectory
    decision_timeout: float | None = None

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
            raise AcknowledgementRefused(NO_SUCH_ESCALATION, missing=True)
        escalation = await self._escalation(owner, escalation_id)
        named = self.names(actor, await self.oversight.alert_addressing(escalation_id))
        refusal = rung_refusal(actor, escalation.rank, named)
        if refusal is not None:
            raise AcknowledgementRefused(refusal)
        decision = EscalationAcknowledgement(actor=actor, escalation_id=escalation_id, as_named_addressee=named)
        return Acknowledgement(owner, self._workflows(owner), decision)

    def _workflows(self, owner: str) -> WorkflowClient[Any]:
        return owner_workflows(owner)(self.client, self.decision_timeout)

    async def _escalation(self, owner: str, escalation_id: str) -> Escalation:
        try:
            state = await self._workflows(owner).state(owner)
        except NoSuchWorkflow:
            raise AcknowledgementRefused(NO_SUCH_ESCALATION, missing=True) from None
        escalation = next((e for e in state.escalations if e.escalation_id == escalation_id), None)
        if escalation is None:
            raise AcknowledgementRefused(NO_SUCH_ESCALATION, missing=True)
        return escalation
