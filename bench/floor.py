"""The naive floor the referral lifecycle is measured against: the same shape, with one activity round trip per decision.

A parent workflow takes 5 updates and starts 3 child workflows that take 1 update each:
the 8 decisions and 4 workflows of a full referral. Every update awaits one activity that
inserts one row into PostgreSQL. Payloads go through the system's own data converter
(sealed), so the floor pays what the referral pays for encryption.

    python -m bench.floor      a worker for the floor's workflows (TEMPORAL_ADDRESS, DATABASE_URL)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import asyncpg
    from pydantic import BaseModel

FLOOR_QUEUE = "bench-floor"
PARENT_UPDATES = 5
CHILDREN = 3
# The children start with the third decision, as a strategy discussion starts a referral's agreed actions.
CHILDREN_START_AT = 3
TABLE = "bench_floor_rows"


class FloorDecision(BaseModel):
    n: int


class FloorRow(BaseModel):
    workflow_id: str
    n: int


class FloorRecords:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="floor_insert")
    async def insert(self, row: FloorRow) -> None:
        await self._pool.execute(f"INSERT INTO {TABLE} (workflow_id, n) VALUES ($1, $2)", row.workflow_id, row.n)


async def _record(n: int) -> None:
    await workflow.execute_activity(
        "floor_insert", FloorRow(workflow_id=workflow.info().workflow_id, n=n),
        start_to_close_timeout=timedelta(seconds=30),
    )


@workflow.defn
class FloorChildWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.update
    async def decide(self, decision: FloorDecision) -> int:
        await _record(decision.n)
        self._done = True
        return decision.n


@workflow.defn
class FloorParentWorkflow:
    def __init__(self) -> None:
        self._decisions = 0
        self._children: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._decisions == PARENT_UPDATES and len(self._children) == CHILDREN)
        await asyncio.gather(*self._children)

    @workflow.update
    async def decide(self, decision: FloorDecision) -> int:
        await _record(decision.n)
        self._decisions += 1
        if self._decisions == CHILDREN_START_AT:
            for n in range(CHILDREN):
                handle = await workflow.start_child_workflow(
                    FloorChildWorkflow.run, id=f"{workflow.info().workflow_id}.A{n + 1}"
                )
                self._children.append(asyncio.ensure_future(handle))
        return decision.n


async def create_table(pool: asyncpg.Pool) -> None:
    await pool.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (workflow_id text NOT NULL, n int NOT NULL)")


async def serve() -> None:
    from temporalio.worker import Worker

    from runtime.logging import configure_logging
    from runtime.settings import Settings
    from runtime.temporal import connect

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    client = await connect(settings)
    pool = await asyncpg.create_pool(settings.database_url.get_secret_value(), min_size=2, max_size=10)
    await create_table(pool)
    worker = Worker(
        client, task_queue=FLOOR_QUEUE, workflows=[FloorParentWorkflow, FloorChildWorkflow],
        activities=[FloorRecords(pool).insert],
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(serve())
