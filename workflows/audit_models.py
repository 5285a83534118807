"""The audit's shared models: the monthly quality-assurance sample, its request and its worklist.

Imported by the sample workflow, the activity that draws it and the auditors' tools alike.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from workflows.models import Model

# YYYY-MM, from 1900 to 2999: a month any referral can have been recorded in.
Month = Annotated[str, StringConstraints(pattern=r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$")]


class SampleCategory(StrEnum):
    MISSING = "missing"
    CSE = "cse"
    VIST = "vist"
    SECTION_47_VIST = "section_47_vist"
    SECTION_46 = "section_46"


# One force's framework: 3 missing-children cases, 2 CSE investigations, 10 VIST
# submissions, 2 section 47 VIST submissions and 1 section 46 incident a month.
DEFAULT_QUOTAS: dict[SampleCategory, int] = {
    SampleCategory.MISSING: 3,
    SampleCategory.CSE: 2,
    SampleCategory.VIST: 10,
    SampleCategory.SECTION_47_VIST: 2,
    SampleCategory.SECTION_46: 1,
}


class SampleRequest(Model):
    month: Month
    seed: int = 0
    quotas: dict[SampleCategory, Annotated[int, Field(ge=0, le=500)]] = Field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    drawn_by: str = "system"


class WorklistItem(Model):
    position: int
    category: SampleCategory
    reference: str
    status: str = "open"


class AuditWorklist(Model):
    worklist_id: int
    month: Month
    seed: int
    quotas: dict[SampleCategory, int]
    shortfall: dict[SampleCategory, int] = Field(
        default_factory=dict, description="categories with fewer cases that month than the quota asked"
    )
    drawn_at: datetime
    drawn_by: str
    items: list[WorklistItem]


class MonthlySampleStart(Model):
    """The scheduled run's input; bank holidays travel with it (they cannot be computed in the sandbox)."""

    bank_holidays: list[date] = Field(default_factory=list)
    timezone: str = "Europe/London"
    seed: int = 0
    quotas: dict[SampleCategory, int] = Field(default_factory=lambda: dict(DEFAULT_QUOTAS))


class MonthlySampleResult(Model):
    drawn: bool
    reason: str | None = None
    worklist: AuditWorklist | None = None
