"""Reconciling histories with the records, exporting by query, and the monthly sample with its schedule."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta, timezone

from temporalio.client import ScheduleActionStartWorkflow, ScheduleRange

from activities.audit import AuditRecords, draw_sample
from activities.records import ReferralRecords
from audit.history import (
    export_histories,
    fetch_referral,
    fetch_referrals,
    list_referrals,
    load_export,
    case_query,
)
from audit.replay import replay_histories
from audit.reconcile import Mismatch, Problem, reconcile
from audit.sample import SCHEDULE_ID, ensure_monthly_sample_schedule, monthly_sample
from starter.synthetic import (
    OFFICER, SCREENER, SERGEANT, approval, screening, strategy_discussion, synthetic_missing_report, synthetic_vist,
)
from tests.helpers import LONDON, eventually, finished, screened_and_told, skip, start_referral
from worker import build_worker
from workflows.action import AgreedActionWorkflow
from workflows.audit_models import MonthlySampleResult, MonthlySampleStart, SampleCategory, SampleRequest
from workflows.audit_sample import MonthlySampleWorkflow
from workflows.calendar import first_working_day
from workflows.facts import FactKind, MissingReported, RecordedEvent, StrategyDiscussionHeld, VistSubmitted
from workflows.models import (
    ActionCompletion,
    IncidentType,
    MissingGrade,
    RiskGrade,
    RiskRegrade,
    ScreeningOutcome,
    Section46,
    Stage,
    episode_id,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def test_reconcile_finds_a_deleted_row_an_added_row_and_a_changed_one(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=91)
    ref = handle.id
    await handle.execute_update(ReferralWorkflow.review, approval())
    await handle.execute_update(
        ReferralWorkflow.regrade_risk, RiskRegrade(actor=SERGEANT, risk=RiskGrade.HIGH, reason="Synthetic reason.")
    )
    await handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    held_at = await time_env.get_current_time()
    await handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(held_at, section_47=False, actions=1)
    )
    await time_env.client.get_workflow_handle(f"{ref}.A1").execute_update(
        AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic completion.")
    )
    await finished(time_env, handle)

    clean = await reconcile(time_env.client, pool, references=[ref])
    assert clean.passed, clean.mismatches
    assert clean.facts == clean.rows > 10 and clean.in_flight == 0

    last_transition = await pool.fetchval("SELECT max(seq) FROM stage_transitions WHERE reference = $1", ref)
    await pool.execute("DELETE FROM stage_transitions WHERE reference = $1 AND seq = $2", ref, last_transition)
    await pool.execute("DELETE FROM referral_events WHERE stream = $1 AND seq = 3", ref)
    await pool.execute(
        """INSERT INTO escalations (escalation_id, reference, subject, rung, rank, addressed_to, reason, due_at, raised_at)
           VALUES ($1, $2, 'screening', 0, 'sergeant', 'sergeant, Testtown', 'overdue', now(), now())""",
        f"{ref}.E9",
        ref,
    )
    await pool.execute(
        """INSERT INTO referral_events (stream, seq, reference, kind, at, actor_id, actor_role, actor_agency, payload)
           VALUES ($1, 99, $1, 'closed', now(), 'PS-2001', 'supervisor', 'police', '{"reason": "withdrawn"}')""",
        ref,
    )
    await pool.execute("UPDATE referrals SET stage = 'screening' WHERE reference = $1", ref)

    # A row for a referral no workflow ever ran.
    ghost = synthetic_vist(rng=random.Random(92))
    ghost_ref = referral_reference(ghost.form_id)
    await ReferralRecords(pool).record_event(
        RecordedEvent(stream=ghost_ref, seq=1, reference=ghost_ref, kind="vist_submitted", at=datetime.now(timezone.utc),
                      actor=OFFICER, stage=Stage.SUPERVISOR_REVIEW, risk=ghost.initial_risk,
                      payload={"version": 1, "submission": ghost.model_dump(mode="json")})
    )

    report = await reconcile(time_env.client, pool, references=[ref, ghost_ref])
    found = {(m.problem, m.table, m.key, m.kind, tuple(m.fields)) for m in report.mismatches}
    assert found == {
        (Problem.MISSING_IN_DATABASE, "referral_events", f"{ref}#3", "supervisor_reviewed", ()),
        (Problem.MISSING_IN_DATABASE, "stage_transitions", f"{ref}#{last_transition}", "stage_changed", ()),
        (Problem.MISSING_IN_HISTORY, "escalations", f"{ref}.E9", None, ()),
        (Problem.MISSING_IN_HISTORY, "referral_events", f"{ref}#99", "closed", ()),
        (Problem.DIFFERS, "referrals", ref, "stage_changed", ("stage",)),
        (Problem.NO_HISTORY, "referrals", ghost_ref, None, ()),
    }
    assert all(isinstance(m, Mismatch) for m in report.mismatches)

    # Rows a retention purge removed on purpose are not mismatches.
    await pool.execute(
        """INSERT INTO retention_purges (actor_id, closed_before, referral_count, row_count, refs)
           VALUES ('ADM-1', now(), 1, 0, $1)""",
        [ghost_ref],
    )
    purged = await reconcile(time_env.client, pool, references=[ghost_ref])
    assert purged.passed and purged.purged == [ghost_ref]


async def test_export_by_query_writes_temporal_json_with_sha256(dev_env, pool, settings, task_queue, sla_policy, tmp_path):
    async with build_worker(dev_env.client, pool, settings, task_queue=task_queue):
        started = datetime.now(timezone.utc) - timedelta(minutes=1)
        submission, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=93)
        await handle.execute_update(ReferralWorkflow.review, approval())
        await screened_and_told(dev_env.client, handle, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
        await handle.result()
    query = case_query(since=started, query=f"WorkflowId = '{handle.id}'")
    manifest = await eventually(
        lambda: export_histories(dev_env.client, tmp_path, query=query), lambda m: len(m.files) == 2
    )
    # The referral's history, and its notification to children's social care's (an agreed action, its child).
    entry, action = sorted(manifest.files, key=lambda f: f.workflow_id)
    assert action.workflow_id == f"{handle.id}.A1" and action.parent_workflow_id == handle.id
    assert entry.workflow_id == handle.id and entry.workflow_type == "ReferralWorkflow"
    assert hashlib.sha256((tmp_path / entry.file).read_bytes()).hexdigest() == entry.sha256
    assert json.loads((tmp_path / entry.file).read_text())["events"][0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    (exported,) = load_export(tmp_path)
    assert list(exported.referral.events) == list((await fetch_referral(dev_env.client, handle.id)).referral.events)
    assert (await reconcile(dev_env.client, pool, references=[handle.id])).passed
    # Replay straight from the server, by the same query.
    runs = await list_referrals(dev_env.client, query)
    histories = [h for referral in await fetch_referrals(dev_env.client, runs) for h in referral.all()]
    replayed = await replay_histories(histories, settings, workers=1)
    assert replayed.passed and {h.workflow_id for h in replayed.histories} == {handle.id, f"{handle.id}.A1"}


# --- the monthly sample ------------------------------------------------------------------------------

MONTH = "2025-02"


async def record_referral(pool, seed: int, at: datetime, incident: IncidentType, section_46=False, section_47=False) -> str:
    submission = synthetic_vist(rng=random.Random(seed), incident_type=incident, occurred_at=at - timedelta(hours=1),
                                risk=RiskGrade.HIGH if section_46 else RiskGrade.MEDIUM)
    if section_46:
        submission = submission.model_copy(update={"section_46": Section46(
            used_at=at - timedelta(minutes=30), child_ids=["C1"], accommodation="Synthetic placement")})
    ref = referral_reference(submission.form_id)
    records = ReferralRecords(pool)
    base = dict(stream=ref, reference=ref, at=at, actor=OFFICER, stage=Stage.SUPERVISOR_REVIEW, risk=submission.initial_risk)
    await records.record_event(RecordedEvent(seq=1, kind=FactKind.VIST_SUBMITTED,
                                             payload=VistSubmitted(submission=submission).recorded(), **base))
    if section_47:
        held = StrategyDiscussionHeld(held_at=at, attendees=[], section_47=True, rationale="Synthetic.", quorate=True)
        await records.record_event(RecordedEvent(seq=2, kind=FactKind.STRATEGY_DISCUSSION_HELD, payload=held.recorded(), **base))
    return ref


async def record_episode(pool, seed: int, at: datetime) -> str:
    """A missing episode reported at `at`, as its first fact puts it in the read model."""
    report = synthetic_missing_report(rng=random.Random(seed), missing_since=at - timedelta(hours=2))
    episode = episode_id(report.report_id)
    reported = MissingReported(report=report, grade=MissingGrade.MEDIUM, assessed_grade=MissingGrade.MEDIUM)
    await ReferralRecords(pool).record_event(RecordedEvent(
        stream=episode, seq=1, reference=episode, kind=FactKind.MISSING_REPORTED, at=at, actor=OFFICER,
        payload=reported.recorded()))
    return episode


async def test_the_monthly_sample_is_reproducible_and_recorded_once(pool):
    start = datetime(2025, 2, 3, 10, tzinfo=LONDON)
    episodes = {await record_episode(pool, 9300 + n, start + timedelta(days=3 * n)) for n in range(5)}
    # Missing-children cases are missing episodes: a referral about a missing child is a VIST case only.
    kinds = (
        [(IncidentType.MISSING, False, False)] * 2 + [(IncidentType.CSE, False, False)] * 3
        + [(IncidentType.DOMESTIC_ABUSE, False, False)] * 9 + [(IncidentType.DOMESTIC_ABUSE, False, True)] * 3
        + [(IncidentType.NEGLECT, True, False)] * 2
    )
    refs = {}
    for n, (incident, s46, s47) in enumerate(kinds):
        refs[await record_referral(pool, 9100 + n, start + timedelta(days=n % 20, hours=n), incident, s46, s47)] = (incident, s46, s47)
    # Either side of the month, in London time: not candidates.
    outside = [await record_referral(pool, 9190, datetime(2025, 1, 31, 23, 30, tzinfo=LONDON), IncidentType.MISSING),
               await record_referral(pool, 9191, datetime(2025, 3, 1, 0, 10, tzinfo=LONDON), IncidentType.MISSING),
               await record_episode(pool, 9390, datetime(2025, 1, 31, 23, 30, tzinfo=LONDON)),
               await record_episode(pool, 9391, datetime(2025, 3, 1, 0, 10, tzinfo=LONDON))]

    worklist = await monthly_sample(pool, MONTH, seed=7, drawn_by="AUD-4001")
    counts = {c: sum(1 for i in worklist.items if i.category is c) for c in SampleCategory}
    assert counts == {SampleCategory.MISSING: 3, SampleCategory.CSE: 2, SampleCategory.VIST: 10,
                      SampleCategory.SECTION_47_VIST: 2, SampleCategory.SECTION_46: 1}
    chosen = [i.reference for i in worklist.items]
    assert len(set(chosen)) == len(chosen) and not set(chosen) & set(outside)
    assert {i.reference for i in worklist.items if i.category is SampleCategory.MISSING} <= episodes
    for item in (i for i in worklist.items if i.category is not SampleCategory.MISSING):
        incident, s46, s47 = refs[item.reference]
        assert {SampleCategory.CSE: incident is IncidentType.CSE,
                SampleCategory.SECTION_46: s46, SampleCategory.SECTION_47_VIST: s47}.get(item.category, True)

    # Same month, same seed: the same cases, and the worklist already recorded is the one returned.
    again = await monthly_sample(pool, MONTH, seed=7, drawn_by="AUD-4002")
    assert again == worklist
    records = AuditRecords(pool)
    candidates = await records.sample_candidates(MONTH)
    items, _ = draw_sample(candidates, SampleRequest(month=MONTH, seed=7))
    assert [i.reference for i in items] == chosen
    other, _ = draw_sample(candidates, SampleRequest(month=MONTH, seed=8))
    assert [i.reference for i in other] != chosen

    bigger = await monthly_sample(pool, MONTH, seed=9, quotas={SampleCategory.SECTION_46: 5, SampleCategory.VIST: 0})
    assert bigger.shortfall == {SampleCategory.SECTION_46: 3}
    assert await pool.fetchval("SELECT count(*) FROM audit_worklists WHERE month = $1", MONTH) == 2


async def test_the_sample_workflow_draws_only_on_the_months_first_working_day(time_env, time_queue, sla_policy):
    now = (await time_env.get_current_time()).astimezone(LONDON)
    while now.weekday() >= 5:  # a weekday, so "today" can be a working day
        now += timedelta(days=1)
    await skip(time_env, max(now - await time_env.get_current_time(), timedelta(0)))
    today = now.date()
    # Every earlier weekday of the month a bank holiday: today is the first working day.
    holidays = [today.replace(day=d) for d in range(1, today.day)]
    assert first_working_day(today.year, today.month, holidays) == today

    async def run(bank_holidays) -> MonthlySampleResult:
        handle = await time_env.client.start_workflow(
            MonthlySampleWorkflow.run, MonthlySampleStart(bank_holidays=bank_holidays, seed=3),
            id=f"audit-sample-test-{random.randrange(10**9)}", task_queue=time_queue,
        )
        with time_env.auto_time_skipping_disabled():  # the clock must not race ahead for other tests
            return await handle.result()

    drawn = await run(holidays)
    assert drawn.drawn and drawn.worklist.month == f"{today:%Y-%m}" and drawn.worklist.drawn_by == "schedule"
    skipped = await run([*holidays, today])
    assert not skipped.drawn and "not the month's first working day" in skipped.reason


async def test_the_schedule_fires_at_seven_on_the_first_days_of_each_month(dev_env, settings, sla_policy):
    try:
        await ensure_monthly_sample_schedule(dev_env.client, settings, sla_policy)
        await ensure_monthly_sample_schedule(dev_env.client, settings, sla_policy, seed=1)  # an update, not an error
        described = await dev_env.client.get_schedule_handle(SCHEDULE_ID).describe()
        (calendar,) = described.schedule.spec.calendars
        assert list(calendar.day_of_month) == [ScheduleRange(1, 7)] and list(calendar.hour) == [ScheduleRange(7)]
        assert described.schedule.spec.time_zone_name == "Europe/London"
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "MonthlySampleWorkflow"
        for moment in described.info.next_action_times[:5]:
            local = moment.astimezone(LONDON)
            assert local.day <= 7 and (local.hour, local.minute) == (7, 0)
    finally:
        await dev_env.client.get_schedule_handle(SCHEDULE_ID).delete()
