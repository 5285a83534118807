"""The SLA policy as the worker is configured: timescales from a file or the defaults, bank holidays from `holidays`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import holidays
from temporalio import activity

from workflows.models import SlaPolicy


def england_and_wales_bank_holidays(years: range) -> list[date]:
    return sorted(holidays.country_holidays("GB", subdiv="ENG", years=years).keys())


def build_sla_policy(policy_file: Path | None = None, today: date | None = None) -> SlaPolicy:
    """The configured timescales with bank holidays for last year to three years ahead.

    A referral stays open for weeks or months; four years of dates cover any deadline it sets.
    """
    policy = SlaPolicy.model_validate_json(policy_file.read_text()) if policy_file else SlaPolicy()
    if not policy.bank_holidays:
        year = (today or date.today()).year
        policy = policy.model_copy(update={"bank_holidays": england_and_wales_bank_holidays(range(year - 1, year + 3))})
    return policy


class SlaPolicySource:
    def __init__(self, policy_file: Path | None = None) -> None:
        self.policy_file = policy_file

    @activity.defn
    async def load_sla_policy(self) -> SlaPolicy:
        return build_sla_policy(self.policy_file)
