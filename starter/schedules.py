"""The schedules a deployment keeps, created or brought up to date at each release: `python -m starter.schedules`."""

from __future__ import annotations

import asyncio

import structlog
from temporalio.client import Client

from activities.policy import build_sla_policy
from audit.sample import ensure_monthly_sample_schedule
from runtime.settings import Settings
from starter.triage import ensure_daily_triage_schedule

log = structlog.get_logger("schedules")


async def ensure_schedules(client: Client, settings: Settings) -> list[str]:
    """The auditors' monthly sample and the daily domestic-abuse triage, with this year's bank holidays."""
    policy = build_sla_policy(settings.sla_policy_file)
    schedule_ids = []
    for ensure in (ensure_monthly_sample_schedule, ensure_daily_triage_schedule):
        schedule_ids.append(await ensure(client, settings, policy))
        log.info("schedule_ready", schedule=schedule_ids[-1])
    return schedule_ids


async def main() -> None:
    from runtime.logging import configure_logging
    from runtime.temporal import connect

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.temporal_address is None:
        raise SystemExit("python -m starter.schedules needs TEMPORAL_ADDRESS; `make run` keeps the embedded stack's own")
    await ensure_schedules(await connect(settings), settings)


if __name__ == "__main__":
    asyncio.run(main())
