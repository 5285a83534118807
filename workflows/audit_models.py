"""The audit's shared models: the monthly quality-assurance sample, its request and its worklist.

Imported by the sample workflow, the activity that draws it and the auditors' tools alike.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from workflows.models import Model

# YYYY-MM, from 1900 to 2999: a month any referral can have been recorded in.
MONTH_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$"
Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN)]
MAX_QUOTA = 500


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
    quotas: dict[SampleCategory, Annotated[int, Field(ge=0, le=MAX_QUOTA)]] = Field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    drawn_by: str = "system"
    redraw: bool = Field(default=False, description="draw again although the month is drawn: the earlier worklist "
                         "is kept, superseded, and who redrew it recorded")


class ItemStatus(StrEnum):
    TO_REVIEW = "to_review"
    REVIEWED = "reviewed"


class WorklistItem(Model):
    position: int
    category: SampleCategory
    reference: str
    # Worklists drawn before the states were named plainly said "open".
    status: Annotated[ItemStatus, BeforeValidator(lambda v: ItemStatus.TO_REVIEW if v == "open" else v)] = (
        ItemStatus.TO_REVIEW
    )


class Shortfall(Model):
    """Why a category has fewer cases than its quota: how many the month held, and how many of those
    were already drawn under another category (a case is drawn once)."""

    wanted: int
    drawn: int
    in_month: int
    drawn_under: dict[SampleCategory, int] = Field(default_factory=dict)

    def explained(self) -> str:
        short = f"{self.wanted - self.drawn} fewer than the quota of {self.wanted}"
        if self.in_month == 0:
            return f"{short}: none in the month"
        taken = ", ".join(f"{n} as {category.value}" for category, n in self.drawn_under.items())
        return f"{short}: {self.in_month} in the month" + (f", already drawn {taken}" if taken else "")


class AuditWorklist(Model):
    worklist_id: int
    month: Month
    seed: int
    quotas: dict[SampleCategory, int]
    shortfall: dict[SampleCategory, int] = Field(
        default_factory=dict, description="categories with fewer cases that month than the quota asked"
    )
    shortfall_reasons: dict[SampleCategory, Shortfall] = Field(
        default_factory=dict, description="why each category fell short (none for worklists drawn before the reasons)"
    )
    drawn_at: datetime
    drawn_by: str
    redraw_of: int | None = Field(default=None, description="the worklist this one was drawn again in place of")
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
