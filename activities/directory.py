"""The supervision directory: who receives each rung of an escalation, per agency and team.

Read from a JSON or TOML file (`ALERT_DIRECTORY_FILE`), for example:

    [[chains]]
    agency = "police"
    team = "Testtown"
    rungs = [
      { role = "sergeant", name = "Duty sergeant, Testtown", email = "sergeants.testtown@police.example" },
      { role = "inspector", staff_id = "INSP-2501", email = "inspector.testtown@police.example" },
      { role = "superintendent", email = "superintendents@police.example", webhook = "https://chat.example/hooks/xyz" },
    ]

    [default]
    rungs = [{ role = "duty supervisor", email = "duty@police.example" }]

    [administrators]
    rungs = [{ role = "records administrator", email = "records-admin@police.example" }]

    [[people]]
    role = "allocated social worker"
    staff_id = "SW-6001"
    email = "sw6001@childrens-services.example"

A chain for the agency and team wins over one for the agency alone, which wins over the
default chain. Rung n of the ladder goes to the chain's n-th addressee, and rungs past
its end to its last. Without a file, every alert is shown in the dashboard only. An
addressee with a `staff_id` is a named person: they may acknowledge the rungs addressed to
them whatever their rank. A fact that could not be recorded ("recording failed") goes to
the `administrators` chain. An alert for a named person (a child protection plan's allocated
social worker, when the child is referred again) goes to the addressee in `people` with their
staff ID, or else to the first rung of their agency's chain.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from workflows.models import Agency, EscalationAlert, StaffId


class Addressee(BaseModel):
    """Who receives one rung: a role (and a name) in the dashboard, plus an email address and a webhook."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    staff_id: StaffId | None = Field(default=None, description="the named person, who may acknowledge this rung")
    email: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    webhook: HttpUrl | None = None


class EscalationChain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: Agency | None = Field(default=None, description="unset: the default chain")
    team: str | None = Field(default=None, description="unset: every team of the agency")
    rungs: list[Addressee] = Field(min_length=1)


# The built-in default: the ranks of the ladder, in the dashboard only.
DEFAULT_CHAIN = EscalationChain(
    rungs=[Addressee(role="sergeant"), Addressee(role="inspector"), Addressee(role="superintendent")]
)
DEFAULT_ADMINISTRATORS = EscalationChain(rungs=[Addressee(role="records administrator")])


class SupervisionDirectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chains: list[EscalationChain] = Field(default_factory=list)
    default: EscalationChain = DEFAULT_CHAIN
    administrators: EscalationChain = Field(
        default=DEFAULT_ADMINISTRATORS, description="who hears that a fact could not be recorded"
    )
    people: list[Addressee] = Field(
        default_factory=list, description="named people an alert may be for, each found by their staff_id"
    )

    @model_validator(mode="after")
    def _chains_name_an_agency(self) -> "SupervisionDirectory":
        for index, chain in enumerate(self.chains):
            if chain.agency is None:
                raise ValueError(f"chains[{index}].agency: required (the chain without one is `default`)")
        return self

    @classmethod
    def load(cls, path: Path | None) -> "SupervisionDirectory":
        if path is None:
            return cls()
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.model_validate(data)

    def chain_for(self, agency: Agency, team: str | None) -> EscalationChain:
        team_chains = [c for c in self.chains if c.agency is agency and team is not None and c.team == team]
        agency_chains = [c for c in self.chains if c.agency is agency and c.team is None]
        return (team_chains or agency_chains or [self.default])[0]

    def addressee(self, alert: EscalationAlert) -> Addressee:
        if alert.escalation.reason == "recording_failed":
            return self.administrators.rungs[0]
        if alert.staff_id is not None:
            named = [person for person in self.people if person.staff_id == alert.staff_id]
            return named[0] if named else self.rung_addressee(alert.agency, None, 0)
        return self.rung_addressee(alert.agency, alert.team, alert.escalation.rung)

    def rung_addressee(self, agency: Agency, team: str | None, rung: int) -> Addressee:
        rungs = self.chain_for(agency, team).rungs
        return rungs[min(rung, len(rungs) - 1)]

    def names(self, staff_id: str) -> bool:
        """Whether any rung of any chain names this person."""
        addressees = [*self.people, *(a for chain in [*self.chains, self.default] for a in chain.rungs)]
        return any(a.staff_id == staff_id for a in addressees)

    @property
    def has_webhooks(self) -> bool:
        chains = [*self.chains, self.default, self.administrators]
        return any(a.webhook is not None for a in [*self.people, *(a for chain in chains for a in chain.rungs)])
