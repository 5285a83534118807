"""The supervised stack: a killed worker, API or PostgreSQL comes back, decisions go on, and SIGTERM still stops it all."""

from __future__ import annotations

import httpx

from starter.processes import Backoff
from starter.synthetic import FAMILY_NAMES, FIRST_NAMES, STREETS
from tests.faults.ledger import Ledger, Referrals, assert_recorded_once
from tests.faults.running_stack import RunningStack, alive, wait_for
from tests.test_stack import listening


def test_restart_delays_grow_to_a_bound_and_start_over_after_a_healthy_run() -> None:
    backoff = Backoff(first=1, limit=30, healthy_after=60)
    assert [backoff.delay_after(uptime=2) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay_after(uptime=61) == 1
    assert backoff.delay_after(uptime=3) == 2


async def test_killed_parts_are_restarted_and_sigterm_stops_everything() -> None:
    stack = RunningStack()
    try:
        stack.start()
        dsn = f"postgresql://postgres:@/referrals?host={stack.data_dir / 'postgres'}"
        ledger = Ledger()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
            referrals = Referrals(stack, client, ledger, seed="supervision")
            first = await referrals.submit()

            worker, api = stack.kill("worker"), stack.kill("api")
            new_pids = {"worker": stack.wait_restarted("worker", worker), "api": stack.wait_restarted("api", api)}
            wait_for(lambda: stack.worker_started_count() == 2, "the new worker polling")
            await referrals.work(first, regrades=1)

            postgres = stack.kill("postgres")
            new_pids["postgres"] = stack.wait_restarted("postgres", postgres)
            await referrals.work(await referrals.submit(), regrades=1)
            await assert_recorded_once(dsn, ledger)

        exits = {e["process"]: e for e in stack.events("process_exited")}
        assert exits.keys() == {"worker", "api", "postgres"}, exits
        assert exits["worker"]["signal"] == exits["api"]["signal"] == "SIGKILL"
        assert {e["process"] for e in stack.events("process_restarted")} == {"worker", "api", "postgres"}

        assert stack.stop() == 0, stack.output()
        assert not any(alive(pid) for pid in new_pids.values())
        assert not any(listening(port) for port in (stack.temporal_port, stack.ui_port, stack.api_port))
        assert not (stack.data_dir / "postgres" / "postmaster.pid").exists()
        assert not (stack.data_dir / "stack.json").exists()
        assert "Everything this run started has stopped." in stack.output()
        output = stack.output()
        for word in [*FAMILY_NAMES, *FIRST_NAMES, *STREETS, "Synthetic"]:
            assert word not in output, f"{word!r} appears in the stack's output"
    finally:
        stack.remove()
