"""Building a day's domestic-abuse triage list from the read model, each referral with its family's history."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
from temporalio import activity

from activities.records import ReferralRecords
from workflows.models import PriorReferralQuery
from workflows.triage_models import TRIAGE_INCIDENT, TRIAGE_RISKS, FamilyHistory, TriageCandidate, TriageList, TriageListQuery


class TriageRecords:
    """Activities over the referral read model for the daily triage, holding the asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def triage_list(self, query: TriageListQuery) -> TriageList:
        """Domestic-abuse referrals graded standard or medium, with children present, received in [since, until)."""
        rows = await self.pool.fetch(
            """SELECT r.reference, r.submitted_at, r.risk, count(c.child_id) AS children
               FROM referrals r JOIN referral_children c USING (reference)
               WHERE r.incident_type = $1 AND r.risk = ANY($2::text[])
                 AND r.submitted_at >= $3 AND r.submitted_at < $4
               GROUP BY r.reference, r.submitted_at, r.risk
               HAVING count(c.child_id) > 0
               ORDER BY r.submitted_at, r.reference""",
            TRIAGE_INCIDENT.value,
            [risk.value for risk in TRIAGE_RISKS],
            query.since,
            query.until,
        )
        return TriageList(
            candidates=[
                TriageCandidate(
                    reference=row["reference"],
                    submitted_at=row["submitted_at"],
                    risk=row["risk"],
                    children=row["children"],
                    history=await self.family_history(row["reference"], row["submitted_at"], query.history_window_days),
                )
                for row in rows
            ]
        )

    async def family_history(self, reference: str, submitted_at: datetime, window_days: int) -> FamilyHistory:
        """What is known of the referral's children, adults and address before it: screening's own look-up
        (earlier referrals, missing episodes, live child protection plans, adults' earlier involvement)."""
        prior = await ReferralRecords(self.pool).find_prior_referrals(
            PriorReferralQuery(reference=reference, since=submitted_at - timedelta(days=window_days), policy_threshold=2)
        )
        return FamilyHistory(
            prior_referrals=prior.prior_referrals,
            missing_episodes=prior.missing_episodes,
            children_on_plans=prior.children_on_plans,
            adults=prior.adults,
        )
