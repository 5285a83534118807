"""Reconciliation compares every column every projection writes: every kind of fact on every path reconciles with
no mismatch, and one tampered row of each projected table is reported alone, by table, key, column and fact."""

from __future__ import annotations

import uuid
from datetime import timedelta
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg

from activities.audit import AuditRecords
from activities.records import ReferralRecords
from audit.history import DecodedCase, decode_case, load_exports
from audit.reconcile import Problem, ReconcileReport, reconcile, reconcile_referrals
from readmodel.database import apply_migrations, create_pool
from readmodel.projections import PROJECTED_TABLES
from starter.synthetic import (
    CSC_PARTNER,
    QUORATE_ATTENDEES,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    strategy_discussion,
    synthetic_adult,
    synthetic_missing_report,
    synthetic_trigger_plan,
    synthetic_vist,
)
from tests import test_triage
from tests.histories.record import PANEL_HISTORIES, PLAN_HISTORIES
from tests.test_screening_history import about, closed_with_a_plan
from tests.audit_helpers import GENERATIONS, HISTORIES_CONVERTER, generation_order
from tests.helpers import STARTED, eventually, finished, screened_and_told, seeded, start_episode, start_plan, start_referral
from workflows.facts import FactKind
from workflows.missing import MissingEpisodeWorkflow
from workflows.plan import TriggerPlanWorkflow
from workflows.plan_models import PlanEnding
from workflows.missing_models import EpisodeRegrade, LowGradeDecision, RiskIndicator
from workflows.models import (
    Absence,
    Actor,
    Agency,
    NamedRole,
    MissingGrade,
    OverrideDecision,
    OverrideRequest,
    Rank,
    Role,
    ScreeningOutcome,
)
from workflows.referral import ReferralWorkflow

OTHER_SERGEANT = Actor(id="PS-2002", role=Role.SUPERVISOR, rank=Rank.SERGEANT)

# Per projected table: the column tampered with, its new value (SQL), the key columns, and the kinds of fact
# that may have written that column. A table added to PROJECTED_TABLES without a line here fails the test.
TAMPERED = {
    "referral_events": ("actor_id", "'XX-9999'", ("stream", "seq"), None),  # the row's own kind
    "referrals": ("officer_id", "'XX-9999'", ("reference",), {FactKind.VIST_SUBMITTED}),
    "submission_versions": ("submitted_by", "'XX-9999'", ("reference", "version"),
                            {FactKind.VIST_SUBMITTED, FactKind.VIST_RESUBMITTED}),
    "referral_children": ("identity_key", "'tampered'", ("reference", "child_id"),
                          {FactKind.VIST_SUBMITTED, FactKind.VIST_RESUBMITTED}),
    "stage_transitions": ("actor_id", "'XX-9999'", ("reference", "seq"), {FactKind.STAGE_CHANGED}),
    "risk_regrades": ("from_risk", "'tampered'", ("reference", "seq"), {FactKind.RISK_REGRADED}),
    "strategy_discussions": ("quorate", "NOT quorate", ("reference", "seq"), {FactKind.STRATEGY_DISCUSSION_HELD}),
    "strategy_attendees": ("agency", "'tampered'", ("reference", "discussion_seq", "position"),
                           {FactKind.STRATEGY_DISCUSSION_HELD}),
    "conferences": ("due_by", "due_by + interval '1 minute'", ("reference", "seq"), {FactKind.CONFERENCE_BOOKED}),
    "agreed_actions": ("agreed_by", "'XX-9999'", ("action_id",), {FactKind.ACTION_AGREED}),
    "action_reassignments": ("from_owner", "'tampered'", ("action_id", "seq"), {FactKind.ACTION_REASSIGNED}),
    "escalations": ("rung", "rung + 10", ("escalation_id",), {FactKind.ESCALATION_RAISED}),
    "missing_episodes": ("station", "'tampered'", ("episode_id",), {FactKind.MISSING_REPORTED}),
    "missing_reviews": ("reviewed_by", "'XX-9999'", ("episode_id", "seq"), {FactKind.EPISODE_REVIEWED}),
    "missing_tracing": ("recorded_by", "'XX-9999'", ("episode_id", "seq"), {FactKind.TRACING_RECORDED}),
    "triage_items": ("prior_referrals", "prior_referrals + 1", ("triage_id", "reference"), {FactKind.TRIAGE_LISTED}),
    "trigger_plans": ("identity_key", "'tampered'", ("plan_id",), {FactKind.TRIGGER_PLAN_WRITTEN}),
    "trigger_plan_versions": ("written_by", "'XX-9999'", ("plan_id", "version"), {FactKind.TRIGGER_PLAN_WRITTEN}),
    "trigger_plan_addenda": ("added_by", "'XX-9999'", ("plan_id", "number"), {FactKind.POLICE_ADDENDUM_ADDED}),
    "child_protection_plans": ("started_at", "started_at + interval '1 minute'", ("reference", "child_id"),
                               {FactKind.CONFERENCE_HELD}),
    "referral_adults": ("role", "'tampered'", ("reference", "position"),
                        {FactKind.VIST_SUBMITTED, FactKind.VIST_RESUBMITTED}),
    "strategy_missing_roles": ("reason_given", "NOT reason_given", ("reference", "discussion_seq", "named_role"),
                               {FactKind.STRATEGY_DISCUSSION_HELD}),
    "panel_sittings": ("panel_name", "'tampered'", ("sitting_id",), {FactKind.PANEL_SITTING_OPENED}),
    "panel_agenda_items": ("listed_at", "listed_at + interval '1 minute'", ("sitting_id", "case_id"),
                           {FactKind.PANEL_SITTING_OPENED, FactKind.PANEL_AGENDA_EDITED}),
    "panel_attendees": ("role", "'tampered'", ("sitting_id", "seq", "position"), {FactKind.PANEL_ATTENDANCE_RECORDED}),
    "panel_absences": ("at", "at + interval '1 minute'", ("sitting_id", "case_id", "named_role"),
                       {FactKind.PANEL_ATTENDANCE_RECORDED, FactKind.PANEL_CASE_DECIDED}),
}


@asynccontextmanager
async def scratch_database(pool, dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own on the same server: the recorded paths reuse references older generations recorded."""
    await pool.execute("DROP DATABASE IF EXISTS recorded_paths")
    await pool.execute("CREATE DATABASE recorded_paths")
    scratch = await create_pool(urlsplit(dsn)._replace(path="/recorded_paths").geturl(), 1, 4)
    try:
        await apply_migrations(scratch)
        yield scratch
    finally:
        await scratch.close()
        await pool.execute("DROP DATABASE recorded_paths")


async def record_recorded_paths(pool) -> list[DecodedCase]:
    """Every case of the latest recorded generation (and of the trigger plans' and the panel sittings'), its facts
    written by the real recorder in the order recorded."""
    plans, sittings = (
        sorted((p for p in folder.iterdir() if p.is_dir()), key=generation_order)[-1] for folder in (PLAN_HISTORIES, PANEL_HISTORIES)
    )
    cases = [await decode_case(case, HISTORIES_CONVERTER)
             for case in load_exports(plans) + load_exports(sittings) + load_exports(GENERATIONS[-1])]
    recorder = ReferralRecords(pool)
    for case in cases:
        for fact in sorted(case.facts, key=lambda f: f.at):
            outcome = await recorder.record_event(fact)
            assert outcome.quarantine_reason is None, (fact.kind, outcome)
    return cases


async def the_kinds_no_recorded_path_holds(env, pool, queue, policy) -> list[str]:
    """Live, on the time-skipping server: a repeat referral's override, a low grade kept and an episode regraded,
    a child's third episode, a day's triage and a trigger plan ended. Returns the cases they made."""
    started = len(STARTED)
    # First: its list takes every referral received since the last working day.
    await test_triage.test_the_days_list_takes_domestic_abuse_below_high_risk_received_since_the_last_working_day(
        env, pool, queue, policy
    )
    family = f"Reconcilely-{uuid.uuid4().hex[:6]}"
    referrals = []
    for n in range(3):
        vist = synthetic_vist(rng=seeded(f"override-{n}"), family=family)
        # The adults around the child, on the form: their rows are projected too.
        vist = vist.model_copy(update={"adults": [synthetic_adult(seeded(f"adult-{n}"))]})
        submission, handle = await start_referral(env.client, queue, policy, submission=vist)
        referrals.append((submission, handle))
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", handle.id),
            lambda count: count == 1,
        )
    submission, third = referrals[-1]
    await third.execute_update(ReferralWorkflow.review, approval())
    await third.execute_update(ReferralWorkflow.request_override, OverrideRequest(actor=SCREENER, reason="Synthetic."))
    await third.execute_update(
        ReferralWorkflow.decide_override, OverrideDecision(actor=SERGEANT, granted=True, rationale="Synthetic.")
    )
    await screened_and_told(env.client, third, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    await finished(env, third)

    low = synthetic_missing_report(rng=seeded("low-kept"), grade=MissingGrade.LOW, indicators=[RiskIndicator.CSE_CONCERN])
    _, episode = await start_episode(env.client, queue, policy, low, reported_by=SERGEANT)
    await episode.execute_update(
        MissingEpisodeWorkflow.decide_low_grade,
        LowGradeDecision(actor=OTHER_SERGEANT, keep_low=True, rationale="Synthetic rationale."),
    )
    await episode.execute_update(
        MissingEpisodeWorkflow.regrade, EpisodeRegrade(actor=SERGEANT, grade=MissingGrade.MEDIUM, reason="Synthetic.")
    )
    child = synthetic_missing_report(rng=seeded("third-episode"))
    for _ in range(3):
        await start_episode(env.client, queue, policy, child.model_copy(update={"report_id": uuid.uuid4()}))

    # A child's plan, ended by a later referral's conference: one case's fact writing another's row.
    first = await about(env, synthetic_vist(rng=seeded("plan-ended-child")).children[0], "plan-ended-first")
    _, planned = await start_referral(env.client, queue, policy, submission=first)
    await closed_with_a_plan(env, planned, first)
    second = await about(env, first.children[0], "plan-ended-second")
    _, ending = await start_referral(env.client, queue, policy, submission=second)
    await closed_with_a_plan(env, ending, second, plan=False)
    assert await pool.fetchval("SELECT ended_by FROM child_protection_plans WHERE reference = $1", planned.id) == ending.id

    # A strategy discussion without the investigating officer, who sent a reason.
    discussed_vist = synthetic_vist(rng=seeded("missing-roles"))
    _, discussed = await start_referral(env.client, queue, policy, submission=discussed_vist)
    await discussed.execute_update(ReferralWorkflow.review, approval())
    await discussed.execute_update(ReferralWorkflow.screen, screening(discussed_vist, ScreeningOutcome.STRATEGY_DISCUSSION))
    attendees = [a.model_copy(update={"named_role": NamedRole.ALLOCATED_SOCIAL_WORKER
                                      if a.agency is Agency.CHILDRENS_SOCIAL_CARE else None}) for a in QUORATE_ATTENDEES]
    discussion = strategy_discussion(await env.get_current_time(), section_47=False, actions=0, attendees=attendees)
    discussion = discussion.model_copy(
        update={"absences": [Absence(named_role=NamedRole.INVESTIGATING_OFFICER, reason="Synthetic: in court.")]})
    await discussed.execute_update(ReferralWorkflow.record_strategy_discussion, discussion)

    now = await env.get_current_time()
    plan = await start_plan(env.client, queue, policy, synthetic_missing_report(rng=seeded("ended-plan")).child,
                            synthetic_trigger_plan(now + timedelta(days=30)))
    await plan.execute_update(TriggerPlanWorkflow.end, PlanEnding(actor=CSC_PARTNER, reason="Synthetic: moved away."))

    return [handle.id for handle in STARTED[started:] if not handle.id.startswith("TRIAGE-")]


async def test_every_fact_on_every_path_reconciles_and_a_tampered_row_of_each_table_is_found_alone(
    time_env, pool, postgres_dsn, time_queue, sla_policy
):
    assert set(TAMPERED) == set(PROJECTED_TABLES)
    live = await the_kinds_no_recorded_path_holds(time_env, pool, time_queue, sla_policy)
    async with scratch_database(pool, postgres_dsn) as recorded_pool:
        await every_fact_reconciles_and_each_tampered_row_is_found(time_env, pool, live, recorded_pool)


async def every_fact_reconciles_and_each_tampered_row_is_found(time_env, pool, live, recorded_pool) -> None:
    recorded_cases = await record_recorded_paths(recorded_pool)
    # Every fact of the live cases written before they are compared.
    for reference in live:
        await eventually(
            lambda: reconcile(time_env.client, pool, references=[reference]),
            lambda report: report.in_flight == 0,
        )

    async def reconciled() -> tuple[ReconcileReport, ReconcileReport]:
        return (
            await reconcile_referrals(recorded_cases, AuditRecords(recorded_pool)),
            await reconcile(time_env.client, pool, references=live),
        )

    offline, online = await reconciled()
    assert offline.passed, offline.mismatches
    assert online.passed, online.mismatches
    for reference in live:
        alone = await reconcile(time_env.client, pool, references=[reference])
        assert alone.passed, (reference, alone.mismatches)
    # Each case alone too: a row another case's fact touched (a plan a later conference ended) is no false alarm.
    for case in recorded_cases:
        alone = await reconcile_referrals([case], AuditRecords(recorded_pool))
        assert alone.passed, (case.reference, alone.mismatches)
    kinds = {kind for db, references in ((recorded_pool, [c.reference for c in recorded_cases]), (pool, live))
             for (kind,) in await db.fetch("SELECT DISTINCT kind FROM referral_events WHERE reference = ANY($1)",
                                           references)}
    assert kinds == set(FactKind)

    # One row of each projected table changed behind the workflows' backs: from the recorded paths where they
    # have one, else from the live cases.
    expected, writers = set(), {}
    for table, (column, value, key, kinds_writing) in TAMPERED.items():
        row = None
        for db, references in ((recorded_pool, [c.reference for c in recorded_cases]), (pool, live)):
            row = row or await db.fetchrow(
                f"""UPDATE {table} SET {column} = {value}
                    WHERE ctid = (SELECT ctid FROM {table} WHERE {PROJECTED_TABLES[table]} = ANY($1)
                                  AND {column} IS NOT NULL ORDER BY 1 LIMIT 1)
                    RETURNING *""",
                references,
            )
        assert row is not None, table
        expected.add((Problem.DIFFERS, table, "#".join(str(row[c]) for c in key), (column,)))
        writers[table] = kinds_writing or {FactKind(row["kind"])}
    offline, online = await reconciled()
    mismatches = offline.mismatches + online.mismatches
    assert {(m.problem, m.table, m.key, tuple(m.fields)) for m in mismatches} == expected
    assert len(mismatches) == len(TAMPERED)
    assert all(m.kind in writers[m.table] for m in mismatches), [(m.table, m.kind) for m in mismatches]
