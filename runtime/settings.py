"""Configuration from the environment (and a `.env` file): where Temporal and PostgreSQL are."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting has a safe default that selects the embedded stack.

    Setting `TEMPORAL_ADDRESS` or `DATABASE_URL` points the same code at a real Temporal
    cluster or PostgreSQL server; the embedded parts are then not started. With `SECRETS_DIR`
    set (a container's mounted secrets), a file there named after a setting (`database_url`,
    `encryption_keys`, `smtp_password`, ...) gives that setting, below the environment.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Read when the settings are made, so one image serves with or without mounted secrets.
        directory = os.environ.get("SECRETS_DIR")
        secrets = SecretsSettingsSource(settings_cls, secrets_dir=directory) if directory else file_secret_settings
        return init_settings, env_settings, dotenv_settings, secrets

    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend; unset starts the embedded dev server"
    )
    temporal_namespace: str = "default"
    task_queue: str = "child-protection-referrals"
    temporal_tls: bool = Field(default=False, description="use TLS to reach Temporal (implied by a client certificate)")
    temporal_tls_client_cert_path: Path | None = None
    temporal_tls_client_key_path: Path | None = None
    temporal_tls_server_ca_cert_path: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    database_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL; unset starts the embedded PostgreSQL"
    )
    database_pool_min_size: int = Field(default=1, ge=0)
    database_pool_max_size: int = Field(default=10, ge=1)
    migrate_at_start: bool = Field(
        default=True,
        description="the worker applies pending migrations before it polls; false where a migration job does it "
        "(the worker's database role then needs no DDL rights)",
    )

    # How much one worker process takes on at once (docs/operations.md, "Sizing"); the SDK's defaults.
    worker_max_concurrent_workflow_tasks: int = Field(
        default=100, ge=2, description="workflow tasks one worker runs at once"
    )
    worker_max_concurrent_activities: int = Field(default=100, ge=1, description="activities one worker runs at once")
    worker_max_concurrent_local_activities: int = Field(
        default=100, ge=1, description="local activities one worker runs at once"
    )
    worker_max_cached_workflows: int = Field(
        default=1000,
        ge=0,
        description="the sticky cache: workflows kept in memory between their tasks (memory grows with it, "
        "not with the open referrals)",
    )
    worker_workflow_task_pollers: int = Field(
        default=5, ge=2, description="concurrent polls of the task queue for workflow tasks (the most, when autoscaling)"
    )
    worker_activity_task_pollers: int = Field(
        default=5, ge=1, description="concurrent polls of the task queue for activities (the most, when autoscaling)"
    )
    worker_poller_autoscaling: bool = Field(
        default=False, description="let the SDK scale the pollers between 1 and their maximum with the backlog"
    )
    worker_workflow_sandbox: Literal["passthrough", "reimport", "off"] = Field(
        default="passthrough",
        description="how the worker runs workflow code: in the sandbox with modules passed through (every "
        "restriction kept, imported once per process), in the sandbox re-importing them for each run (the SDK's "
        "default), or off (the audit's sandboxed replay still proves determinism after the fact)",
    )
    worker_graceful_shutdown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="on SIGTERM, how long in-flight activities may finish; the orchestrator's stop timeout must exceed it",
    )

    data_dir: Path = Field(default=Path(".data"), description="where the embedded stack keeps its data")
    temporal_dev_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    workers: int = Field(
        default=1, ge=1, le=16, description="how many workers the embedded stack starts on the one task queue"
    )

    encryption_keys_file: Path | None = Field(
        default=None, description="JSON keyring sealing every Temporal payload (see runtime/codec.py)"
    )
    encryption_keys: SecretStr | None = Field(default=None, description="the keyring JSON itself, for secret stores")
    encryption_key_provider: str | None = Field(
        default=None, description="'package.module:function' returning a Keyring: the hook for a KMS"
    )
    decision_keys_file: Path | None = Field(
        default=None,
        description="JSON keyring whose current key signs every decision the API sends (see runtime/proofs.py); "
        "a worker may hold only its public half",
    )
    decision_keys: SecretStr | None = Field(default=None, description="the decision keyring JSON itself")
    decision_key_provider: str | None = Field(
        default=None, description="'package.module:function' returning the decision Keyring: the hook for a KMS"
    )

    codec_server_host: str = "127.0.0.1"
    codec_server_port: int = Field(default=8081, ge=1, le=65535)
    codec_cors_origins: list[str] = Field(
        default=["http://localhost:8233", "http://127.0.0.1:8233"],
        description="the Temporal Web UI origins allowed to call the codec server",
    )
    retention_days: int = Field(
        default=2190, ge=1, description="how long a closed referral's database records are kept (days)"
    )

    sla_policy_file: Path | None = Field(
        default=None, description="a JSON SLA policy overriding the built-in timescales"
    )

    api_host: str = Field(default="127.0.0.1", description="where the HTTP API listens")
    api_port: int = Field(default=8000, ge=1, le=65535)
    decision_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="how long the API waits for a decision to be confirmed before answering 504 with its key",
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description="static bearer tokens, JSON {token: {id, role, agency, team}}; unset: <data_dir>/tokens.json",
    )
    api_jwt_secret: SecretStr | None = Field(default=None, description="HS256 shared secret for bearer JWTs")
    api_jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key for RS256/ES256 bearer JWTs"
    )
    api_jwks_url: str | None = Field(default=None, description="a JWKS URL whose keys sign bearer JWTs")
    api_jwt_audience: str | None = Field(default=None, description="the `aud` a bearer JWT must carry, when set")
    api_jwt_issuer: str | None = Field(default=None, description="the `iss` a bearer JWT must carry, when set")

    # Escalation alerts (activities/alerts.py) and the dashboard their links open.
    alert_directory_file: Path | None = Field(
        default=None,
        description="JSON or TOML naming who receives each rung, per agency and team; unset: the dashboard only",
    )
    alert_channels: list[str] = Field(
        default=["in_app", "email", "webhook"],
        description="the alert channels in delivery order, by name (activities/alerts.py); each needs its own settings",
    )
    smtp_host: str | None = Field(default=None, description="the mail server for alert emails; unset: no email")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="STARTTLS, implicit TLS, or none (a relay on this host only)"
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = Field(default="referral-alerts@localhost", description="the From address of alert emails")
    smtp_timeout_seconds: float = Field(default=20.0, gt=0)
    alert_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing webhook alerts; required when the directory names a webhook"
    )
    alert_link_secret: SecretStr | None = Field(
        default=None, description="HMAC key signing acknowledgement links; unset: <data_dir>/alert-link-secret"
    )
    plan_id_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key making a child's trigger plan's ID from their identity key; unset: <data_dir>/plan-id-secret",
    )
    alert_link_hours: int = Field(default=72, ge=1, description="how long an email's acknowledgement link is valid")
    dashboard_base_url: str = Field(
        default="http://127.0.0.1:8000/dashboard", description="the dashboard's public address, for links in alerts"
    )

    # Metrics, health and tracing (docs/operations.md, "Metrics, logs and traces").
    worker_metrics_host: str = Field(
        default="0.0.0.0", description="where the worker serves /metrics, /health and /ready (all interfaces: probes and scrapers)"
    )
    worker_metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="the worker's metrics and health port; 0 serves none"
    )
    metrics_cache_seconds: float = Field(
        default=5.0, ge=0, description="how long the gauges counted in PostgreSQL serve repeated scrapes"
    )

    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    @model_validator(mode="after")
    def _tls_pairs(self) -> "Settings":
        if (self.temporal_tls_client_cert_path is None) != (self.temporal_tls_client_key_path is None):
            raise ValueError(
                "temporal_tls_client_cert_path and temporal_tls_client_key_path must be set together"
            )
        return self

    def secret(self, configured: SecretStr | None, name: str) -> bytes:
        """A key: as configured, or made once under the data directory (owner-only) and read from there after."""
        if configured is not None:
            return configured.get_secret_value().encode()
        path = self.data_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()

    @property
    def embedded_keyring_file(self) -> Path:
        return self.data_dir / "encryption-keys.json"

    @property
    def embedded_decision_keys_file(self) -> Path:
        return self.data_dir / "decision-keys.json"

    @property
    def tokens_file(self) -> Path:
        return self.api_tokens_file or self.data_dir / "tokens.json"

    @property
    def uses_tls(self) -> bool:
        return self.temporal_tls or self.temporal_tls_client_cert_path is not None or self.temporal_api_key is not None
