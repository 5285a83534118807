"""/metrics of the API and of the worker hold the Temporal SDK's series and the domain's after a referral; the worker's probes."""

from __future__ import annotations

import httpx
from temporalio.client import Client

from api.app import create_app
from readmodel.database import create_pool
from readmodel.metrics import ReadModelGauges
from runtime.metrics import temporal_runtime
from runtime.probes import serving
from runtime.temporal import data_converter
from tests.api_fixtures import As, authenticator, reviewed_referral, tokens  # noqa: F401
from tests.conftest import SIGNING, TEST_KEYRING, make_worker
from tests.helpers import eventually, seeded
from tests.local_servers import free_port
from tests.outage import SeverableLink
from tests.scrape import samples, value
from worker import probes


async def test_api_and_worker_metrics_hold_sdk_and_domain_series(
    dev_env, pool, settings, sla_policy, authenticator, tokens, task_queue
):
    # A client on the process's runtime, whose SDK metrics both surfaces append.
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(keyring=TEST_KEYRING),
        interceptors=[SIGNING],
        runtime=temporal_runtime(),
    )
    here = settings.model_copy(update={"task_queue": task_queue, "metrics_cache_seconds": 0})
    auth = As(tokens)
    worker = make_worker(client, pool, settings, task_queue)
    app = create_app(client, pool, here, authenticator=authenticator, sla_policy=sla_policy)
    port = free_port()
    async with (
        serving(probes(worker, client, pool, here), "127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as worker_http,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=60) as api,
    ):
        assert (await worker_http.get("/health")).json() == {"status": "ok"}
        # Alive but not polling yet: not ready.
        waiting = await worker_http.get("/ready")
        assert waiting.status_code == 503 and waiting.json()["polling"] is False and waiting.json()["database"] is True

        async with worker:
            # Ready once the worker's run has started polling.
            ready = await eventually(lambda: worker_http.get("/ready"), lambda answer: answer.status_code == 200)
            assert ready.json() == {"status": "ready", "temporal": True, "database": True, "polling": True}

            await reviewed_referral(api, auth, client, pool, seeded("metrics"))
            api_metrics = await api.get("/metrics")
            worker_metrics = await worker_http.get("/metrics")

        # Stopped polling: no longer ready.
        stopped = await worker_http.get("/ready")
        assert stopped.status_code == 503 and stopped.json()["polling"] is False

    for scraped in (api_metrics, worker_metrics):
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = samples(scraped.text)
        # The read model's gauges, counted in PostgreSQL at the scrape.
        assert value(found["referral_read_model_up"], "referral_read_model_up") == 1
        assert value(found["referral_open_referrals"], "referral_open_referrals", stage="screening") >= 1
        assert "referral_overdue_steps" in found and "referral_open_escalations" in found
        # The domain's counters: the decision's latency, the facts recorded.
        decisions = found["referral_decision_seconds"]
        assert value(decisions, "referral_decision_seconds_count", decision="review", outcome="accepted") >= 1
        assert value(found["referral_facts_recorded"], "referral_facts_recorded_total", kind="supervisor_reviewed") >= 1
        assert value(found["referral_outbox_lag_seconds"], "referral_outbox_lag_seconds_count") >= 4
        # The SDK's own series: the API's requests to Temporal, the worker's tasks on this queue.
        assert value(found["temporal_request"], "temporal_request_total") >= 1
        assert value(
            found["temporal_workflow_task_execution_latency"],
            "temporal_workflow_task_execution_latency_count",
            task_queue=task_queue,
            workflow_type="ReferralWorkflow",
        ) >= 1
        # The facts are written as local activities, inside the workflow's tasks.
        assert value(
            found["temporal_local_activity_execution_latency"],
            "temporal_local_activity_execution_latency_count",
            task_queue=task_queue,
        ) >= 1


async def test_metrics_answer_without_the_read_model_when_postgresql_is_unreachable(postgres_dsn):
    # The gauges counted in PostgreSQL are left out and `up` says why; the rest of the scrape still answers.
    link = SeverableLink(postgres_dsn)
    await link.restore()
    linked = await create_pool(link.dsn, min_size=1, max_size=2)
    gauges = ReadModelGauges(linked, cache_seconds=0)
    try:
        found = samples((await gauges.scrape()).decode())
        assert value(found["referral_read_model_up"], "referral_read_model_up") == 1
        assert "referral_open_referrals" in found

        await link.cut()
        found = samples((await gauges.scrape()).decode())
        assert value(found["referral_read_model_up"], "referral_read_model_up") == 0
        assert "referral_open_referrals" not in found and "referral_quarantined_facts" not in found
        assert "referral_decision_seconds" in found
    finally:
        await link.restore()
        linked.terminate()
