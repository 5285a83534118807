"""The workflows record what the fact registry declares: typed payloads, and the decisions it names as the decision history."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from audit.as_of import state_from_facts
from audit.history import decode_referral, fetch_referral
from starter.synthetic import SCREENER, SERGEANT, approval, screening, synthetic_vist
from tests.helpers import finished, start_referral
from workflows.facts import FACTS, FactKind
from workflows.models import (
    IncidentType,
    OverrideDecision,
    OverrideRequest,
    PriorReferral,
    ScreeningOutcome,
    ScreeningView,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def test_the_decision_history_is_the_registrys_decisions_and_as_of_folds_it_alike(
    fast_env, fast_queue, fakes, sla_policy
):
    # A repeat referral closed under a supervisor's override: the override's two decisions are in the history.
    submission = synthetic_vist(rng=random.Random("fast:registry"))
    reference = referral_reference(submission.form_id)
    fakes.records.screening_views[reference] = ScreeningView(
        prior_referrals=[PriorReferral(reference="REF-EARLIER", submitted_at=datetime(2026, 1, 5, tzinfo=timezone.utc),
                                       incident_type=IncidentType.NEGLECT, matched_on=["child"], child_ids=["C1"])],
        repeat_children=["C1"],
    )
    _, handle = await start_referral(fast_env.client, fast_queue, sla_policy, submission=submission)
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."))
    await handle.execute_update(ReferralWorkflow.decide_override,
                                OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic."))
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    final = await finished(fast_env, handle)

    facts = fakes.records.facts_of(handle.id)
    assert [(h.seq, h.kind) for h in final.history] == [(f.seq, f.kind) for f in facts if FACTS[f.kind].decision]
    assert [h.kind for h in final.history] == [
        FactKind.SUPERVISOR_REVIEWED, FactKind.REPEAT_OVERRIDE_REQUESTED, FactKind.REPEAT_OVERRIDE_DECIDED,
        FactKind.SCREENED, FactKind.CLOSED,
    ]
    # Each fact's payload is its kind's model, serialised as the registry's model serialises it.
    for fact in facts:
        assert type(fact.content) is FACTS[fact.kind].payload and fact.content.recorded() == fact.payload
    # The audit's fold reads the same decision set (and the override): the state it rebuilds is the workflow's own.
    decoded = await decode_referral(await fetch_referral(fast_env.client, handle.id), fast_env.client.data_converter)
    assert state_from_facts(decoded) == final
