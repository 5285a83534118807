"""Screening sees what is known about a child years back, on a time-skipping server of its own (its clock runs years ahead)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_adult,
    synthetic_missing_report,
    synthetic_vist,
)
from audit.history import screening_views
from tests.conftest import make_worker, time_skipping_server
from tests.helpers import eventually, finished, refused, screened_and_told, seeded, skip, start_episode, start_referral
from tests.local_servers import MailServer
from readmodel.database import apply_migrations
from workflows.missing_models import MissingChild
from workflows.models import (
    AdultHistory,
    AdultInvolved,
    AdultInvolvement,
    AdultRole,
    ChildOnPlan,
    ChildPresent,
    CloseReason,
    ConferenceBooking,
    ConferenceOutcome,
    IncidentType,
    OverrideDecision,
    OverrideRequest,
    PoliceAttendance,
    PriorConference,
    ReferralState,
    ScreeningOutcome,
    VistSubmission,
)
from workflows.referral import ReferralWorkflow

YEAR = timedelta(days=365)
SOCIAL_WORKER_EMAIL = "sw6001@childrens-services.example"


@pytest.fixture(scope="module")
async def years_env() -> AsyncIterator[WorkflowEnvironment]:
    """A clock of this module's own: the session's stays near today, where the other tests' bank holidays are."""
    env = await time_skipping_server()
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def years_pool(pool, postgres_dsn) -> AsyncIterator[asyncpg.Pool]:
    """A read model of this module's own (a schema): its referrals, years ahead of the session's clock, stay out of
    other tests' lists."""
    schema = f"screening_years_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE SCHEMA {schema}")
    own = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=5, server_settings={"search_path": schema})
    await apply_migrations(own)
    yield own
    await own.close()
    await pool.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def years_queue(years_env, years_pool, settings, mail, tmp_path_factory) -> AsyncIterator[str]:
    """A worker whose alerts reach the plan's social worker by email, as the supervision directory names them."""
    directory = tmp_path_factory.mktemp("directory") / "directory.json"
    directory.write_text(json.dumps({"people": [
        {"role": "allocated social worker", "staff_id": ALLOCATED_SOCIAL_WORKER.staff_id, "email": SOCIAL_WORKER_EMAIL},
    ]}))
    alerting = settings.model_copy(update={
        "alert_directory_file": directory, "smtp_host": "127.0.0.1", "smtp_port": mail.port, "smtp_security": "none",
        "smtp_timeout_seconds": 2.0,
    })
    queue = "screening-history-years"
    async with make_worker(years_env.client, years_pool, alerting, queue):
        yield queue


async def about(env: WorkflowEnvironment, child: ChildPresent, seed: str, address: str | None = None) -> VistSubmission:
    """A neglect referral (never on a domestic-abuse triage list) about `child`, an hour ago by the server's clock."""
    now = await env.get_current_time()
    submission = synthetic_vist(
        rng=seeded(seed), incident_type=IncidentType.NEGLECT, occurred_at=now - timedelta(hours=1), address=address
    )
    submission.children[0] = child.model_copy(update={"home_address": address or child.home_address})
    return submission


async def at_its_conference(
    env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission, after: timedelta = timedelta(days=7)
) -> None:
    """Approved, screened to a strategy discussion that starts section 47 enquiries, its conference booked `after`
    it, and the clock past the conference's time: its outcome may be recorded."""
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=True, actions=0)
    )
    await handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=held_at + after, police_attendance=PoliceAttendance.ATTEND),
    )
    await skip(env, after + timedelta(minutes=5))


async def closed_with_a_plan(
    env: WorkflowEnvironment, handle: WorkflowHandle, submission: VistSubmission, plan: bool = True
) -> ReferralState:
    """Screened to a strategy discussion, section 47, a conference a week later that makes a plan (or, not)."""
    await at_its_conference(env, handle, submission)
    await handle.execute_update(
        ReferralWorkflow.record_conference_outcome,
        ConferenceOutcome(
            actor=SCREENER, held_at=await env.get_current_time(), child_protection_plan=plan, police_attended=True,
            allocated_social_worker=ALLOCATED_SOCIAL_WORKER if plan else None, rationale="Synthetic conference rationale.",
        ),
    )
    state = await finished(env, handle)
    assert state.close_reason is (CloseReason.CHILD_PROTECTION_PLAN if plan else CloseReason.NO_CHILD_PROTECTION_PLAN)
    return state


async def test_a_child_referred_again_four_years_later_is_shown_the_referral_its_conference_and_episodes(
    years_env, years_pool, years_queue, sla_policy
):
    env, queue, pool = years_env, years_queue, years_pool
    # Six years before the new referral: beyond the five-year look-back.
    first = await about(env, synthetic_vist(rng=seeded("look-back-child")).children[0], "look-back-first")
    child = first.children[0]
    _, oldest = await start_referral(env.client, queue, sla_policy, submission=first)
    await oldest.execute_update(ReferralWorkflow.review, approval())
    await screened_and_told(env.client, oldest, screening(first, ScreeningOutcome.EARLY_HELP))
    await finished(env, oldest)
    await skip(env, 2 * YEAR)

    # Four years before: within the look-back, long outside the 90-day repeat window.
    address = "4 Lookback Lane, Testtown TT4444"
    second = await about(env, child, "look-back-second", address=address)
    _, planned = await start_referral(env.client, queue, sla_policy, submission=second)
    plan = await closed_with_a_plan(env, planned, second)
    conference_held = (await pool.fetchval("SELECT held_at FROM conferences WHERE reference = $1", planned.id))
    await skip(env, 4 * YEAR)

    # A missing episode of the same child this week, and one of another child's.
    now = await env.get_current_time()
    report = synthetic_missing_report(rng=seeded("look-back-episode"), missing_since=now - timedelta(hours=3))
    _, episode = await start_episode(env.client, queue, sla_policy, report.model_copy(
        update={"child": MissingChild(name=child.name, date_of_birth=child.date_of_birth)}))
    await start_episode(env.client, queue, sla_policy, seed="look-back-other-child")

    third = await about(env, child, "look-back-third", address=address)
    _, handle = await start_referral(env.client, queue, sla_policy, submission=third)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    view = state.screening_view

    # The four-year-old referral, once, about the child only: the address matches within the repeat window alone.
    assert [(p.reference, p.matched_on, p.child_ids) for p in view.prior_referrals] == [(planned.id, ["child"], ["C1"])]
    assert view.prior_referrals[0].outcome == ScreeningOutcome.STRATEGY_DISCUSSION.value
    assert view.conference_outcomes == [
        PriorConference(reference=plan.reference, held_at=conference_held, child_protection_plan=True,
                        matched_on=["child"], child_ids=["C1"])
    ]
    assert [(e.episode_id, e.matched_on, e.child_ids) for e in view.missing_episodes] == [(episode.id, ["child"], ["C1"])]
    # Two referrals in the look-back make no repeat: the flag counts the repeat window.
    assert view.repeat_children == []
    assert view.look_back_since == state.submitted_at - timedelta(days=sla_policy.look_back_days)
    assert sla_policy.look_back_days >= 5 * 365

    # The plan made four years ago is still live: nothing has ended it.
    assert [(c.child_id, c.plan_reference, c.since) for c in view.children_on_plans] == [("C1", planned.id, conference_held)]

    # The view was read in the activity recording the approval, after its facts: no activity of its own. The
    # audit finds it there, as the screener saw it.
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert "find_prior_referrals" not in scheduled
    assert [seen for _, seen in await screening_views(history, env.client.data_converter)] == [view]
    await screened_and_told(env.client, handle, screening(third, ScreeningOutcome.EARLY_HELP))
    await finished(env, handle)


async def child_on_a_plan_referred_again(env: WorkflowEnvironment, pool, queue: str, sla_policy) -> ReferralState:
    """A conference makes a plan; the child is referred again: flagged, the social worker alerted, no further action
    refused, then taken on a supervisor's override. The final state. (A recorded history's flow too.)"""
    first = await about(env, synthetic_vist(rng=seeded("on-plan-child")).children[0], "on-plan-first")
    _, planned = await start_referral(env.client, queue, sla_policy, submission=first)
    await closed_with_a_plan(env, planned, first)
    held = await pool.fetchval("SELECT held_at FROM conferences WHERE reference = $1", planned.id)

    again = await about(env, first.children[0], "on-plan-again")
    _, handle = await start_referral(env.client, queue, sla_policy, submission=again)
    state = await handle.execute_update(ReferralWorkflow.review, approval())
    # Flagged as the referral reaches screening, with the plan's social worker.
    assert state.screening_view.children_on_plans == [
        ChildOnPlan(child_id="C1", plan_reference=planned.id, since=held, social_worker=ALLOCATED_SOCIAL_WORKER)
    ]
    # The social worker is alerted at once: an escalation addressed to them, for the plan's referral.
    (alert,) = state.escalations
    assert (alert.reason, alert.subject, alert.addressed_to) == (
        "child_on_plan", planned.id, f"allocated social worker {ALLOCATED_SOCIAL_WORKER.staff_id}")

    # No further action needs a supervisor's granted override, as for a repeat referral.
    await refused(handle, ReferralWorkflow.screen, screening(again, ScreeningOutcome.NO_FURTHER_ACTION),
                  "repeat_referral_override: a referral about a child on a child protection plan cannot close with "
                  "no further action without a supervisor's granted override")
    await handle.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."))
    await handle.execute_update(ReferralWorkflow.decide_override, OverrideDecision(
        actor=SERGEANT, granted=True, rationale="Synthetic rationale."))
    closed = await screened_and_told(env.client, handle, screening(again, ScreeningOutcome.NO_FURTHER_ACTION))
    assert closed.close_reason is CloseReason.NO_FURTHER_ACTION
    # Closing resolves the alert: nobody need acknowledge it any more.
    assert closed.escalations[0].resolution == "referral_closed"
    return await finished(env, handle)


async def test_a_child_on_a_plan_referred_again_is_flagged_its_social_worker_emailed_and_no_further_action_guarded(
    years_env, years_pool, years_queue, sla_policy, mail
):
    state = await child_on_a_plan_referred_again(years_env, years_pool, years_queue, sla_policy)
    (alert,) = state.escalations
    # By email, to the address the directory holds for the social worker's staff ID: the referral and the plan, no child.
    email = await eventually(lambda: [m for m in mail.messages if state.reference in m["Subject"]], lambda found: found)
    assert email[0]["To"] == SOCIAL_WORKER_EMAIL and "child protection plan" in email[0]["Subject"]
    assert alert.subject in email[0].get_content()
    child = (await years_pool.fetchval("SELECT name FROM referral_children WHERE reference = $1", state.reference))
    assert child not in email[0].get_content() and child not in email[0]["Subject"]


async def test_a_plan_holds_until_a_later_conference_about_the_child_ends_it(years_env, years_pool, years_queue, sla_policy):
    env, queue, pool = years_env, years_queue, years_pool
    first = await about(env, synthetic_vist(rng=seeded("plan-ends-child")).children[0], "plan-ends-first")
    child = first.children[0]
    _, planned = await start_referral(env.client, queue, sla_policy, submission=first)
    await closed_with_a_plan(env, planned, first)
    held = await pool.fetchval("SELECT held_at FROM conferences WHERE reference = $1", planned.id)

    # A later referral's conference makes no plan: the first plan ends with it.
    second = await about(env, child, "plan-ends-second")
    _, ending = await start_referral(env.client, queue, sla_policy, submission=second)
    await closed_with_a_plan(env, ending, second, plan=False)
    plans = await pool.fetch(
        "SELECT reference, started_at, ended_by FROM child_protection_plans WHERE reference = $1", planned.id)
    assert [(p["started_at"], p["ended_by"]) for p in plans] == [(held, ending.id)]

    third = await about(env, child, "plan-ends-third")
    _, handle = await start_referral(env.client, queue, sla_policy, submission=third)
    view = (await handle.execute_update(ReferralWorkflow.review, approval())).screening_view
    assert view.children_on_plans == [] and len(view.conference_outcomes) == 2
    assert [c.child_protection_plan for c in view.conference_outcomes] == [False, True]
    # A third referral in days is a repeat, no longer one about a child on a plan.
    assert view.override_needed == "a repeat referral"
    await handle.execute_update(ReferralWorkflow.screen, screening(third, ScreeningOutcome.EARLY_HELP))


async def test_a_plan_needs_its_allocated_social_worker(years_env, years_pool, years_queue, sla_policy):
    env, queue, pool = years_env, years_queue, years_pool
    submission = await about(env, synthetic_vist(rng=seeded("plan-social-worker")).children[0], "plan-social-worker")
    _, handle = await start_referral(env.client, queue, sla_policy, submission=submission)
    await at_its_conference(env, handle, submission, after=timedelta(hours=1))
    unallocated = ConferenceOutcome(actor=SCREENER, held_at=await env.get_current_time(), child_protection_plan=True,
                                    police_attended=True, rationale="Synthetic conference rationale.")
    await refused(handle, ReferralWorkflow.record_conference_outcome, unallocated,
                  "allocated_social_worker: required when the conference makes a child protection plan")


async def test_a_repeat_domestic_abuse_suspect_is_flagged_with_their_earlier_involvement(
    years_env, years_pool, years_queue, sla_policy
):
    env, queue, pool = years_env, years_queue, years_pool
    suspect = synthetic_adult(seeded("repeat-suspect"), AdultRole.SUSPECT)
    partner = synthetic_adult(seeded("repeat-partner"), AdultRole.PARTNER)
    now = await env.get_current_time()
    first = synthetic_vist(rng=seeded("suspect-first"), occurred_at=now - timedelta(hours=1))
    first.adults = [suspect, partner]
    _, earlier = await start_referral(env.client, queue, sla_policy, submission=first)
    await earlier.execute_update(ReferralWorkflow.review, approval())
    earlier_state = await screened_and_told(env.client, earlier, screening(first, ScreeningOutcome.EARLY_HELP))
    await skip(env, 30 * timedelta(days=7))

    # Another family's domestic abuse, the same suspect; the partner's namesake with no date of birth is nobody known.
    second = synthetic_vist(rng=seeded("suspect-second"), occurred_at=await env.get_current_time() - timedelta(hours=1))
    second.adults = [AdultInvolved(name=partner.name, role=AdultRole.PARTNER), suspect]
    _, handle = await start_referral(env.client, queue, sla_policy, submission=second)
    view = (await handle.execute_update(ReferralWorkflow.review, approval())).screening_view

    assert view.adults == [AdultHistory(adult_id="A2", role=AdultRole.SUSPECT, earlier=[AdultInvolvement(
        reference=earlier.id, submitted_at=earlier_state.submitted_at, incident_type=IncidentType.DOMESTIC_ABUSE,
        roles=[AdultRole.SUSPECT])])]
    assert view.repeat_suspects == ["A2"]
    # The children are strangers to each other: nothing else about them is in view.
    assert view.prior_referrals == [] and view.repeat_children == []
    # The read model keeps an adult's key and role, never their name.
    adults = await pool.fetch("SELECT * FROM referral_adults WHERE reference = $1 ORDER BY position", handle.id)
    assert [(a["role"], a["identity_key"] is None) for a in adults] == [("partner", True), ("suspect", False)]
    assert suspect.name not in str([dict(a) for a in adults])
