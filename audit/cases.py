"""Each kind of case the audit reads, by the shape of its ID: how its histories decode, read as a timeline, and fold
into its state at a moment.

The CLI and the API find a case's kind here and nowhere else, so a workflow type added to
`CASE_TYPES` (its decoder in audit/history.py `DECODERS`) is timelined, folded, reconciled,
exported and replayed through both without another change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from audit.as_of import episode_from_facts, sitting_from_facts, state_from_facts, triage_from_facts
from audit.history import (
    EPISODE_WORKFLOW,
    PANEL_WORKFLOW,
    PLAN_WORKFLOW,
    REFERRAL_WORKFLOW,
    TRIAGE_WORKFLOW,
    DecodedCase,
    ReferralHistories,
    fetch_referral,
)
from audit.timeline import build_episode_timeline, build_sitting_timeline, build_timeline, build_triage_timeline
from workflows.models import (
    CLOCK_SKEW,
    EPISODE_PATTERN,
    PLAN_PATTERN,
    REFERENCE_PATTERN,
    SITTING_ID_PATTERN,
    TRIAGE_ID_PATTERN,
)


@dataclass(frozen=True)
class CaseType:
    """One kind of case: its name, its workflow type, its ID's shape, its timeline and its state at a moment."""

    noun: str
    workflow: str
    pattern: re.Pattern[str]
    example: str
    # None: the audit reconciles, exports and replays the kind, but does not read it as a timeline or a state yet.
    timeline: Callable[..., BaseModel] | None  # (decoded case, at=None, now=None)
    state_at: Callable[[Any, datetime | None], BaseModel] | None  # (decoded case, moment)


CASE_TYPES: tuple[CaseType, ...] = (
    CaseType("referral", REFERRAL_WORKFLOW, re.compile(rf"^{REFERENCE_PATTERN}$"), "REF-4K7QX-9M2TB",
             build_timeline, state_from_facts),
    CaseType("missing episode", EPISODE_WORKFLOW, re.compile(rf"^{EPISODE_PATTERN}$"), "MIS-4K7QX-9M2TB",
             build_episode_timeline, episode_from_facts),
    CaseType("daily triage", TRIAGE_WORKFLOW, re.compile(rf"^{TRIAGE_ID_PATTERN}$"), "TRIAGE-2026-11-30",
             build_triage_timeline, triage_from_facts),
    CaseType("trigger plan", PLAN_WORKFLOW, re.compile(rf"^{PLAN_PATTERN}$"), "PLAN-4K7QX-9M2TB", None, None),
    CaseType("panel sitting", PANEL_WORKFLOW, re.compile(rf"^{SITTING_ID_PATTERN}$"), "PANEL-CSENORTH-2026-12-01",
             build_sitting_timeline, sitting_from_facts),
)
BY_WORKFLOW = {case_type.workflow: case_type for case_type in CASE_TYPES}
EXAMPLES = ", ".join(f"{t.example} ({t.noun})" for t in CASE_TYPES)


class MalformedReference(ValueError):
    """Not the ID of any kind of case: never sent to Temporal."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"{reference!r} is not a case reference (for example {EXAMPLES})")


class NotRead(LookupError):
    """A kind of case the audit does not read that way (as a timeline, as a state) yet."""

    def __init__(self, reference: str, view: str) -> None:
        super().__init__(f"{reference}: the audit does not read a {case_type(reference).noun}'s {view} yet "
                         "(it reconciles, exports and replays it)")


def view_of(case: DecodedCase, view: str) -> Callable[..., BaseModel]:
    """The case's kind's `timeline` or `state_at`; NotRead when its kind has none."""
    read = getattr(type_of(case), view)
    if read is None:
        raise NotRead(case.reference, "timeline" if view == "timeline" else "state at a moment")
    return read


class UnknownCase(LookupError):
    """A well-formed ID that names no case on the server (or in the export)."""

    def __init__(self, reference: str, where: str = "on the server") -> None:
        super().__init__(f"{reference}: no such {case_type(reference).noun} {where}")


def case_type(reference: str) -> CaseType:
    """The kind of case `reference` names, by its shape; MalformedReference when it names none."""
    for candidate in CASE_TYPES:
        if candidate.pattern.fullmatch(reference):
            return candidate
    raise MalformedReference(reference)


def in_the_future(case: DecodedCase, moment: datetime | None) -> bool:
    """A moment after now (give or take the clock skew) and after everything the case recorded: nothing is known
    of it yet. A case's own moments count, so a history recorded on a skipped clock is read at its own times."""
    if moment is None:
        return False
    recorded = [case.facts[-1].at] if case.facts else []
    latest = max([datetime.now(timezone.utc), *recorded, *([case.ended_at] if case.ended_at else [])])
    return moment > latest + CLOCK_SKEW


def type_of(case: DecodedCase | ReferralHistories) -> CaseType:
    return case_type(case.reference)


async def fetch_case(client: Client, reference: str) -> ReferralHistories:
    """The case's history and its agreed actions' from the server; UnknownCase when there is none."""
    case_type(reference)
    try:
        return await fetch_referral(client, reference)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise UnknownCase(reference) from None
        raise
