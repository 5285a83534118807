"""One way to reach Temporal: the settings' address, TLS and API key, and the single data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from runtime.settings import Settings

# The one data converter of the system: client, worker, starters, tests and Replayer all use it.
DATA_CONVERTER = pydantic_data_converter


def _tls_config(settings: Settings) -> TLSConfig | bool:
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


async def connect(settings: Settings, address: str | None = None) -> Client:
    """Connect to the configured Temporal frontend (or `address`, for the embedded dev server)."""
    target = address or settings.temporal_address
    if target is None:
        raise ValueError("TEMPORAL_ADDRESS is not set and no embedded dev server address was given")
    return await Client.connect(
        target,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        tls=_tls_config(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
    )
