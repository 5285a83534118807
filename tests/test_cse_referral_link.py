"""A missing episode with a CSE concern and the referrals about its child, on the time-skipping server with PostgreSQL:
an open referral is linked, each side recording it; with none, the MASH is told at once, and a referral opened later
is linked at the next review, which settles the escalation."""

from __future__ import annotations

import uuid

from starter.synthetic import SERGEANT, synthetic_missing_report, synthetic_vist
from tests.helpers import eventually, seeded, start_episode, start_referral
from workflows.missing import MissingEpisodeWorkflow
from workflows.missing_models import EpisodeReview, MissingReport, RiskIndicator
from workflows.models import MissingChild, Rank, VistSubmission
from workflows.referral import ReferralWorkflow


def episode_of(submission: VistSubmission, seed: str, cse: bool = True) -> MissingReport:
    """A missing report about the referral's first child."""
    child = submission.children[0]
    indicators = [RiskIndicator.CSE_CONCERN] if cse else [RiskIndicator.FIRST_EPISODE]
    return synthetic_missing_report(rng=seeded(seed), indicators=indicators).model_copy(
        update={"child": MissingChild(name=child.name, date_of_birth=child.date_of_birth)}
    )


async def children_recorded(pool, reference: str) -> None:
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", reference),
                     lambda n: n >= 1)


async def test_a_cse_episode_links_the_open_referral_about_its_child_on_both_sides(time_env, pool, time_queue, sla_policy):
    submission, referral = await start_referral(time_env.client, time_queue, sla_policy,
                                                synthetic_vist(rng=seeded("cse-linked")))
    await children_recorded(pool, referral.id)
    report = episode_of(submission, "cse-linked-episode")
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, report)

    state = await eventually(lambda: episode.query(MissingEpisodeWorkflow.state), lambda s: s.linked_referrals)
    assert state.linked_referrals == [referral.id]
    assert not any(e.reason == "no_cse_referral" for e in state.escalations)
    linked = await eventually(lambda: referral.query(ReferralWorkflow.state), lambda s: s.linked_episodes)
    assert linked.linked_episodes == [episode.id]
    rows = await eventually(
        lambda: pool.fetch(
            """SELECT stream, reference, kind FROM referral_events
               WHERE kind IN ('cse_referral_linked', 'cse_episode_linked') AND (reference = $1 OR reference = $2)
               ORDER BY kind""",
            episode.id, referral.id,
        ),
        lambda r: len(r) == 2,
    )
    # Each side records the link in its own stream, under its own reference.
    assert [tuple(r) for r in rows] == [(referral.id, referral.id, "cse_episode_linked"),
                                        (episode.id, episode.id, "cse_referral_linked")]

    # The same child missing without a CSE concern links nothing.
    _, other = await start_episode(time_env.client, time_queue, sla_policy,
                                   episode_of(submission, "cse-linked-plain", cse=False))
    assert (await other.query(MissingEpisodeWorkflow.state)).linked_referrals == []


async def test_a_cse_episode_without_a_referral_tells_the_mash_and_a_later_referral_is_linked_at_the_next_review(
    time_env, pool, time_queue, sla_policy
):
    submission = synthetic_vist(rng=seeded("cse-unreferred"))
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, episode_of(submission, "cse-unreferred"))
    state = await eventually(lambda: episode.query(MissingEpisodeWorkflow.state),
                             lambda s: any(e.reason == "no_cse_referral" for e in s.escalations))
    (escalation,) = [e for e in state.escalations if e.reason == "no_cse_referral"]
    assert (escalation.subject, escalation.rung, escalation.rank, escalation.addressed_to) == (
        "cse_referral", 0, Rank.SERGEANT, "sergeant, MASH")
    assert state.linked_referrals == []

    _, referral = await start_referral(time_env.client, time_queue, sla_policy,
                                       submission.model_copy(update={"form_id": uuid.uuid4()}))
    await children_recorded(pool, referral.id)
    # A high-risk episode is reviewed by an inspector or above.
    reviewer = SERGEANT if state.grade.value != "high" else SERGEANT.model_copy(update={"rank": Rank.INSPECTOR})
    reviewed = await episode.execute_update(
        MissingEpisodeWorkflow.review,
        EpisodeReview(actor=reviewer, tracing_done="Synthetic: addresses visited.", next_steps="Synthetic: CCTV."),
    )
    assert reviewed.linked_referrals == [referral.id]
    (settled,) = [e for e in reviewed.escalations if e.reason == "no_cse_referral"]
    assert (settled.resolution, settled.resolved_at is not None) == ("referral_linked", True)
    row = await eventually(
        lambda: pool.fetchrow("SELECT resolution FROM escalations WHERE escalation_id = $1", escalation.escalation_id),
        lambda r: r is not None and r["resolution"] is not None,
    )
    assert row["resolution"] == "referral_linked"
    await eventually(lambda: referral.query(ReferralWorkflow.state), lambda s: s.linked_episodes == [episode.id])
