"""The foundation: a referral recorded in PostgreSQL, validated updates, the query, migrations."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from readmodel.database import apply_migrations, create_pool, discover_migrations
from starter.synthetic import OFFICER, approval
from tests.conftest import make_worker
from tests.helpers import start_referral
from workflows.models import Stage, SupervisorReview
from workflows.referral import ReferralWorkflow


async def settled_history(handle, rounds: int = 3):
    """The history once the workflow is idle: the same events on consecutive reads."""
    previous = None
    stable = 0
    while stable < rounds:
        events = [e async for e in handle.fetch_history_events()]
        stable = stable + 1 if previous is not None and len(events) == len(previous) else 0
        previous = events
        await asyncio.sleep(0.2)
    return previous


async def test_referral_is_recorded_and_query_reports_stage(time_env, pool, time_queue, sla_policy):
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=1)
    state = await handle.query(ReferralWorkflow.state)
    assert state.stage is Stage.SUPERVISOR_REVIEW
    assert state.reference == handle.id
    after = await handle.execute_update(ReferralWorkflow.review, approval())
    assert after.stage is Stage.SCREENING
    assert (await handle.query(ReferralWorkflow.state)).stage is Stage.SCREENING
    row = await pool.fetchrow("SELECT form_id, stage, risk FROM referrals WHERE reference = $1", handle.id)
    assert row["form_id"] == submission.form_id
    assert row["stage"] == "screening"
    kinds = [r["kind"] for r in await pool.fetch(
        "SELECT kind FROM referral_events WHERE stream = $1 ORDER BY seq", handle.id)]
    assert kinds == ["vist_submitted", "stage_changed", "supervisor_reviewed", "stage_changed"]


async def test_rejected_update_leaves_history_and_state_unchanged(dev_env, pool, settings, task_queue, sla_policy):
    # On a real server a rejected update leaves no trace in the history at all (the
    # time-skipping test server persists the speculative workflow task, so this runs on the dev server).
    async with make_worker(dev_env.client, pool, settings, task_queue):
        _, handle = await start_referral(dev_env.client, task_queue, sla_policy, seed=2)
        before_events = await settled_history(handle)
        before_state = await handle.query(ReferralWorkflow.state)
        # An officer may not review their own VIST.
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(ReferralWorkflow.review, SupervisorReview(actor=OFFICER, approved=True))
        assert "actor.role" in str(caught.value.cause)
        after_events = await settled_history(handle)
        assert after_events == before_events
        assert await handle.query(ReferralWorkflow.state) == before_state
        assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE stream = $1", handle.id) == 2


async def test_migrations_are_idempotent(pool):
    tables = "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'"
    before = await pool.fetchval(tables)
    versions_before = await pool.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert await apply_migrations(pool) == []
    assert await pool.fetchval(tables) == before
    assert await pool.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version") == versions_before


async def test_two_workers_migrating_together_apply_each_migration_once(pool, postgres_dsn):
    # A fresh database, and two "workers" migrating it at the same moment.
    await pool.execute("DROP DATABASE IF EXISTS migration_race")
    await pool.execute("CREATE DATABASE migration_race")
    dsn = postgres_dsn.replace("/postgres?", "/migration_race?") if "/postgres?" in postgres_dsn else None
    if dsn is None:
        pytest.skip("DATABASE_URL names its own database; the race needs a scratch one")
    first, second = await create_pool(dsn, 1, 2), await create_pool(dsn, 1, 2)
    try:
        applied = await asyncio.gather(apply_migrations(first), apply_migrations(second))
        everything = [m.version for m in discover_migrations()]
        # One of them applied everything, the other found nothing left to do.
        assert sorted(applied, key=len) == [[], everything]
        rows = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == everything
    finally:
        await first.close()
        await second.close()
        await pool.execute("DROP DATABASE migration_race")
