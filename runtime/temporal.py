"""One way to reach Temporal: the settings' address, TLS and API key, and the single data converter."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client, Schedule, ScheduleAlreadyRunningError, ScheduleUpdate
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from runtime.codec import (
    EncryptionCodec,
    Keyring,
    KeyringError,
    SealedPayloadConverter,
    ensure_keyring_file,
    load_key_provider,
)
from runtime.metrics import temporal_runtime
from runtime.sandbox import SandboxedRunner
from runtime.proofs import DecisionSigner, DecisionSigning, load_decision_keyring
from runtime.settings import Settings
from runtime.tracing import Tracing

# Unencrypted pydantic conversion; only `data_converter(settings)` below is used to talk to Temporal.
DATA_CONVERTER = pydantic_data_converter


def load_keyring(settings: Settings) -> Keyring:
    """The keyring from a KMS hook, the environment or a file, in that order.

    Against a real cluster the keys must be given; the embedded stack keeps its own under
    the data directory, created on first use.
    """
    if settings.encryption_key_provider:
        return load_key_provider(settings.encryption_key_provider)
    if settings.encryption_keys is not None:
        return Keyring.from_json(settings.encryption_keys.get_secret_value())
    if settings.encryption_keys_file is not None:
        if not settings.encryption_keys_file.exists():
            raise KeyringError(f"encryption_keys_file: {settings.encryption_keys_file} does not exist")
        return Keyring.from_json(settings.encryption_keys_file.read_text())
    if settings.temporal_address is None:
        return ensure_keyring_file(settings.embedded_keyring_file)
    raise KeyringError(
        "encryption keys: set ENCRYPTION_KEYS_FILE, ENCRYPTION_KEYS or ENCRYPTION_KEY_PROVIDER "
        "(payloads are always encrypted)"
    )


def data_converter(settings: Settings | None = None, keyring: Keyring | None = None) -> DataConverter:
    """The one data converter of the system: pydantic payloads, sealed by the keyring, with
    failure messages and stack traces sealed too. Client, worker, starters, tests and Replayer use it."""
    keyring = keyring or load_keyring(settings or Settings())
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SealedPayloadConverter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def workflow_runner(sandbox: str = "passthrough") -> WorkflowRunner:
    """How workflow code runs, for workers and replayers alike.

    "passthrough" imports each module once per process instead of once per workflow run (a
    workflow's modules hold no state a run can change: models, rules and calendars are pure); the
    sandbox's restricted builtins are kept, its checks of module members lapse for the workflow
    modules' code. "reimport" is the SDK's default: each workflow's own module is re-imported
    for each run, and its calls are checked. "off" runs workflows unsandboxed. Under each,
    determinism is proved after the fact by replaying recorded histories with the SDK's default
    sandbox (docs/operations.md says what each setting checks).
    """
    if sandbox == "off":
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default
    if sandbox == "passthrough":
        restrictions = restrictions.with_passthrough_all_modules()
    elif sandbox != "reimport":
        raise ValueError(f"worker_workflow_sandbox: {sandbox!r} is not passthrough, reimport or off")
    return SandboxedRunner(restrictions=restrictions)


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to the frontend: off for the embedded dev server; on with a client certificate (mTLS), an API key, or TEMPORAL_TLS."""
    if not settings.uses_tls:
        return False

    def read(path):
        return path.read_bytes() if path is not None else None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_server_ca_cert_path),
        domain=settings.temporal_tls_server_name,
        client_cert=read(settings.temporal_tls_client_cert_path),
        client_private_key=read(settings.temporal_tls_client_key_path),
    )


async def connect(
    settings: Settings, address: str | None = None, *, signs_decisions: bool = False, tracing: Tracing | None = None
) -> Client:
    """Connect to the configured Temporal frontend (or `address`, for the embedded dev server).

    `signs_decisions` is for the API (and the demo, which stands in for it): the client signs every
    decision and referral start it sends with the decision keyring's current key. With `tracing`, the
    client and every worker made from it carry the trace through Temporal (runtime/tracing.py).
    """
    target = address or settings.temporal_address
    if target is None:
        raise ValueError("TEMPORAL_ADDRESS is not set and no embedded dev server address was given")
    signing = [DecisionSigning(DecisionSigner(load_decision_keyring(settings)))] if signs_decisions else []
    traced = [tracing.temporal_interceptor()] if tracing is not None else []
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        interceptors=[*traced, *signing],
        tls=tls_config(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        runtime=temporal_runtime(),
    )


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> str:
    """Create the schedule, or bring an existing one up to date (its bank holidays above all): run at each deployment."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(lambda _: ScheduleUpdate(schedule=schedule))
    return schedule_id
