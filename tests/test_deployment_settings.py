"""A deployment's settings, from the environment to what they set: the worker's tuning, the release's one-shot
jobs (migrations, schedules), mounted secrets, and TLS or an API key to reach Temporal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError
from temporalio.service import TLSConfig
from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from readmodel.__main__ import migrate
from readmodel.database import discover_migrations
from runtime.settings import Settings
from runtime.temporal import tls_config
from starter.schedules import ensure_schedules
from starter.synthetic import approval
from tests.helpers import start_referral
from worker import build_worker
from workflows.models import Stage
from workflows.referral import ReferralWorkflow

TUNED = {
    "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": "40",
    "WORKER_MAX_CONCURRENT_ACTIVITIES": "25",
    "WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES": "7",
    "WORKER_MAX_CACHED_WORKFLOWS": "250",
    "WORKER_WORKFLOW_TASK_POLLERS": "3",
    "WORKER_ACTIVITY_TASK_POLLERS": "2",
    "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "12.5",
}


def settings_from(monkeypatch: pytest.MonkeyPatch, base: Settings, environment: dict[str, str]) -> Settings:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings(
        _env_file=None,
        encryption_keys=base.encryption_keys,
        decision_keys=base.decision_keys,
        plan_id_secret=base.plan_id_secret,
    )


async def test_the_tuning_settings_reach_the_worker(time_env, pool, settings, monkeypatch):
    tuned = settings_from(monkeypatch, settings, TUNED)
    config = build_worker(time_env.client, pool, tuned, task_queue="tuning-fixed").config()
    assert config["max_concurrent_workflow_tasks"] == 40
    assert config["max_concurrent_activities"] == 25
    assert config["max_concurrent_local_activities"] == 7
    assert config["max_cached_workflows"] == 250
    assert config["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(maximum=3)
    assert config["activity_task_poller_behavior"] == PollerBehaviorSimpleMaximum(maximum=2)
    assert config["graceful_shutdown_timeout"] == timedelta(seconds=12.5)


async def test_autoscaling_pollers_are_bounded_by_the_same_maximum(time_env, pool, settings, monkeypatch):
    tuned = settings_from(monkeypatch, settings, {**TUNED, "WORKER_POLLER_AUTOSCALING": "true"})
    config = build_worker(time_env.client, pool, tuned, task_queue="tuning-autoscaling").config()
    assert config["workflow_task_poller_behavior"] == PollerBehaviorAutoscaling(maximum=3, initial=3)
    assert config["activity_task_poller_behavior"] == PollerBehaviorAutoscaling(maximum=2, initial=2)


async def test_a_tuned_worker_carries_a_referral_decision(time_env, pool, settings, sla_policy, monkeypatch, task_queue):
    """The core accepts the tuned worker, autoscaling pollers and all: it polls, decides and records."""
    tuned = settings_from(monkeypatch, settings, {**TUNED, "WORKER_POLLER_AUTOSCALING": "true"})
    async with build_worker(time_env.client, pool, tuned, task_queue=task_queue):
        _, handle = await start_referral(time_env.client, task_queue, sla_policy, seed=151)
        state = await handle.execute_update(ReferralWorkflow.review, approval())
        assert state.stage is Stage.SCREENING


@pytest.mark.parametrize(("mode", "sandboxed", "passed_through"), [
    ("passthrough", True, True), ("reimport", True, False), ("off", False, False),
])
async def test_the_sandbox_setting_chooses_how_the_worker_runs_workflows_and_the_worker_decides_under_each(
    time_env, pool, settings, sla_policy, monkeypatch, task_queue, mode, sandboxed, passed_through
):
    chosen = settings_from(monkeypatch, settings, {"WORKER_WORKFLOW_SANDBOX": mode})
    worker = build_worker(time_env.client, pool, chosen, task_queue=task_queue)
    runner = worker.config()["workflow_runner"]
    assert isinstance(runner, SandboxedWorkflowRunner if sandboxed else UnsandboxedWorkflowRunner)
    if sandboxed:
        # The restrictions are configured either way; whether a workflow module's calls meet them depends on its
        # re-import (tests/test_sandbox_runner.py).
        assert runner.restrictions.passthrough_all_modules is passed_through
        assert runner.restrictions.invalid_module_members
    async with worker:
        # A referral of its own under each setting: one reference per referral, as in production.
        _, handle = await start_referral(time_env.client, task_queue, sla_policy, seed=152 + ["passthrough", "reimport", "off"].index(mode))
        state = await handle.execute_update(ReferralWorkflow.review, approval())
        assert state.stage is Stage.SCREENING


def test_an_unknown_sandbox_setting_is_refused_by_name(monkeypatch, settings):
    with pytest.raises(ValidationError, match="worker_workflow_sandbox"):
        settings_from(monkeypatch, settings, {"WORKER_WORKFLOW_SANDBOX": "sometimes"})


def test_the_defaults_are_the_sdks(settings):
    assert settings.worker_max_concurrent_workflow_tasks == 100
    assert settings.worker_max_cached_workflows == 1000
    assert settings.worker_workflow_task_pollers == 5
    assert settings.worker_graceful_shutdown_seconds == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_WORKFLOW_TASK_POLLERS", "1"),  # the sticky queue and the normal queue need one each
        ("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "1"),
        ("WORKER_MAX_CACHED_WORKFLOWS", "-1"),
        ("WORKER_GRACEFUL_SHUTDOWN_SECONDS", "0"),
    ],
)
def test_a_tuning_out_of_range_is_refused_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert name.lower() in str(refused.value)


async def test_the_migration_job_brings_a_new_database_up_to_date_once(postgres_dsn, pool):
    database = f"migrate_{uuid.uuid4().hex[:8]}"
    await pool.execute(f'CREATE DATABASE "{database}"')
    try:
        target = urlsplit(postgres_dsn)._replace(path=f"/{database}").geturl()
        job = Settings(_env_file=None, database_url=SecretStr(target))
        expected = [migration.version for migration in discover_migrations()]
        assert await migrate(job) == expected
        assert await migrate(job) == []  # a second run (or a worker after it) applies nothing
        connection = await asyncpg.connect(target)
        try:
            recorded = [row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        finally:
            await connection.close()
        assert recorded == expected
    finally:
        await pool.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


async def test_the_migration_job_needs_a_database(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit, match="DATABASE_URL"):
        await migrate(Settings(_env_file=None))


def test_mounted_secrets_give_settings_below_the_environment(tmp_path, monkeypatch):
    (tmp_path / "database_url").write_text("postgresql://referrals@db.internal/referrals\n")
    (tmp_path / "smtp_password").write_text("from-the-secret-store")
    (tmp_path / "temporal_namespace").write_text("from-the-file")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "from-the-environment")
    settings = Settings(_env_file=None)
    assert settings.database_url.get_secret_value() == "postgresql://referrals@db.internal/referrals"
    assert settings.smtp_password.get_secret_value() == "from-the-secret-store"
    assert settings.temporal_namespace == "from-the-environment"
    monkeypatch.delenv("SECRETS_DIR")
    assert Settings(_env_file=None).database_url is None


async def test_the_schedules_job_creates_both_schedules_and_brings_them_up_to_date(dev_env, settings):
    from audit.sample import SCHEDULE_ID as SAMPLE
    from starter.triage import SCHEDULE_ID as TRIAGE

    try:
        assert await ensure_schedules(dev_env.client, settings) == [SAMPLE, TRIAGE]
        moved = settings.model_copy(update={"task_queue": "another-release"})
        assert await ensure_schedules(dev_env.client, moved) == [SAMPLE, TRIAGE]  # an update, not an error
        for schedule_id in (SAMPLE, TRIAGE):
            described = await dev_env.client.get_schedule_handle(schedule_id).describe()
            assert described.schedule.action.task_queue == "another-release"
    finally:
        for schedule_id in (SAMPLE, TRIAGE):
            await dev_env.client.get_schedule_handle(schedule_id).delete()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A client certificate and its key, as a deployment's CA would issue (here signed by itself)."""
    from datetime import datetime, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "referrals-worker")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_a_client_certificate_from_the_environment_makes_an_mtls_connection_config(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal-frontend")
    tls = tls_config(Settings(_env_file=None))
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key) == (cert.read_bytes(), key.read_bytes())
    assert (tls.server_root_ca_cert, tls.domain) == (cert.read_bytes(), "temporal-frontend")


def test_an_api_key_alone_turns_tls_on_with_the_system_roots(monkeypatch):
    monkeypatch.setenv("TEMPORAL_API_KEY", "a-service-account-key")
    settings = Settings(_env_file=None)
    assert settings.uses_tls and settings.temporal_api_key.get_secret_value() == "a-service-account-key"
    assert tls_config(settings) == TLSConfig()
    monkeypatch.delenv("TEMPORAL_API_KEY")
    assert tls_config(Settings(_env_file=None)) is False  # the embedded dev server: plaintext on loopback


def test_a_client_certificate_without_its_key_is_refused_naming_both(tmp_path, monkeypatch):
    cert, _ = self_signed(tmp_path)
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    with pytest.raises(ValidationError, match="temporal_tls_client_cert_path and temporal_tls_client_key_path"):
        Settings(_env_file=None)
