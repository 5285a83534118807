"""The referral worker: runs the workflows and the activities that record them in PostgreSQL.

Needs TEMPORAL_ADDRESS and DATABASE_URL (`make run` starts the embedded stack and sets both).
Applies database migrations under an advisory lock before polling (unless MIGRATE_AT_START is
false: `python -m readmodel` applies them alone), and on SIGTERM/SIGINT stops polling and
finishes in-flight activities (WORKER_GRACEFUL_SHUTDOWN_SECONDS) before it exits. Serves
`/health`, `/ready` and `/metrics` on WORKER_METRICS_PORT (9464) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from temporalio.client import Client
from starlette.applications import Starlette
from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum, Worker

from activities.alerts import EscalationAlerts
from activities.audit import AuditRecords
from readmodel.database import apply_migrations, create_pool
from readmodel.metrics import ReadModelGauges
from activities.policy import SlaPolicySource
from activities.proofs import StartProofs
from activities.records import ReferralRecords
from activities.panels import PanelRecords
from activities.triage import TriageRecords
from runtime.logging import ActivityLogContext, configure_logging
from runtime.probes import probe_app, serving
from runtime.proofs import DecisionProofCheck, DecisionVerifier, load_decision_verifier
from runtime.settings import Settings
from runtime.temporal import connect, workflow_runner
from runtime.tracing import process_tracing
from workflows.action import AgreedActionWorkflow
from workflows.audit_sample import MonthlySampleWorkflow
from workflows.missing import MissingEpisodeWorkflow
from workflows.panel import PanelOpeningWorkflow, PanelSittingWorkflow
from workflows.plan import TriggerPlanWorkflow
from workflows.referral import ReferralWorkflow
from workflows.triage import DailyTriageWorkflow, TriageOpeningWorkflow

log = structlog.get_logger("worker")

WORKFLOWS: Sequence[type] = (
    ReferralWorkflow, AgreedActionWorkflow, MonthlySampleWorkflow, DailyTriageWorkflow, TriageOpeningWorkflow,
    MissingEpisodeWorkflow, TriggerPlanWorkflow, PanelSittingWorkflow, PanelOpeningWorkflow,
)


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    task_queue: str | None = None,
    alerts: EscalationAlerts | None = None,
) -> Worker:
    alerts = alerts or EscalationAlerts.from_settings(pool, settings)
    # Every decision must carry the API's proof of its actor; the worker holds the keys that verify it.
    verifier = load_decision_verifier(settings)
    proofs = StartProofs(verifier)
    records = ReferralRecords(pool, alerts, proofs)
    policy = SlaPolicySource(settings.sla_policy_file)
    audit = AuditRecords(pool)
    panels = PanelRecords(pool, client)
    activities = [
        records.record_event,
        records.record_events,
        records.record_facts,
        records.find_prior_referrals,
        records.count_missing_episodes,
        records.find_trigger_plan,
        records.find_open_referrals,
        policy.load_sla_policy,
        alerts.deliver_escalation,
        audit.draw_monthly_sample,
        TriageRecords(pool).triage_list,
        panels.panel_agenda,
        panels.open_sitting,
        panels.apply_grade,
        proofs.check_start_proof,
        proofs.check_episode_start_proof,
        proofs.check_plan_start_proof,
    ]
    return assemble_worker(client, task_queue or settings.task_queue, activities, verifier, settings)


def tuning(settings: Settings) -> dict[str, Any]:
    """The Worker's capacity from the settings: concurrent tasks, the sticky cache, pollers, the shutdown grace,
    and how workflow code runs (the sandbox)."""

    def pollers(maximum: int) -> PollerBehaviorAutoscaling | PollerBehaviorSimpleMaximum:
        if settings.worker_poller_autoscaling:
            return PollerBehaviorAutoscaling(maximum=maximum, initial=min(5, maximum))
        return PollerBehaviorSimpleMaximum(maximum=maximum)

    return {
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_local_activities": settings.worker_max_concurrent_local_activities,
        "max_cached_workflows": settings.worker_max_cached_workflows,
        "workflow_task_poller_behavior": pollers(settings.worker_workflow_task_pollers),
        "activity_task_poller_behavior": pollers(settings.worker_activity_task_pollers),
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        "workflow_runner": workflow_runner(settings.worker_workflow_sandbox),
    }


def assemble_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    verifier: DecisionVerifier,
    settings: Settings | None = None,
) -> Worker:
    """The workflows with these activities, every decision checked against the API's proof of its actor,
    tuned by the settings."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(activities),
        interceptors=[ActivityLogContext(), DecisionProofCheck(verifier)],
        **tuning(settings or Settings()),
    )


def probes(worker: Worker, client: Client, pool: asyncpg.Pool, settings: Settings) -> Starlette:
    """The worker's `/health` (alive), `/ready` (Temporal and PostgreSQL answer, the worker polls) and `/metrics`."""

    async def polling() -> bool:
        return worker.is_running

    return probe_app(
        ReadModelGauges(pool, settings.metrics_cache_seconds).scrape,
        {"temporal": client.service_client.check_health, "database": lambda: pool.fetchval("SELECT 1"), "polling": polling},
    )


@contextlib.asynccontextmanager
async def serving_probes(worker: Worker, client: Client, pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[None]:
    """The probes on WORKER_METRICS_HOST:WORKER_METRICS_PORT for as long as the block runs (port 0: none)."""
    if settings.worker_metrics_port == 0:
        yield
        return
    async with serving(probes(worker, client, pool, settings), settings.worker_metrics_host, settings.worker_metrics_port):
        yield


async def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.temporal_address is None or settings.database_url is None:
        raise SystemExit(
            "worker.py needs TEMPORAL_ADDRESS and DATABASE_URL; `make run` starts the embedded stack with both"
        )
    client = await connect(settings, tracing=process_tracing("referrals-worker"))
    pool = await create_pool(
        settings.database_url.get_secret_value(), settings.database_pool_min_size, settings.database_pool_max_size
    )
    try:
        worker = build_worker(client, pool, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Alive while the migrations run; ready once it polls.
        async with serving_probes(worker, client, pool, settings):
            applied = await apply_migrations(pool) if settings.migrate_at_start else []
            async with worker:
                log.info(
                    "worker_started",
                    task_queue=settings.task_queue,
                    namespace=settings.temporal_namespace,
                    migrations_applied=applied,
                    metrics_port=settings.worker_metrics_port,
                )
                await stop.wait()
                log.info("worker_stopping", reason="signal")
            log.info("worker_stopped")
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
