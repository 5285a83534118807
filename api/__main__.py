"""Serve the HTTP API: `python -m api`, against the configured Temporal and PostgreSQL."""

from __future__ import annotations

import structlog

from api.app import create_app
from runtime.settings import Settings

log = structlog.get_logger("api")


async def serve(settings: Settings) -> None:
    """Serve the API until SIGINT/SIGTERM, against the configured Temporal and PostgreSQL."""
    import uvicorn

    from readmodel.database import create_pool
    from runtime.temporal import connect
    from runtime.tracing import process_tracing

    if settings.temporal_address is None or settings.database_url is None:
        raise SystemExit("python -m api needs TEMPORAL_ADDRESS and DATABASE_URL; `make run` starts the API with both")
    tracing = process_tracing("referrals-api")
    client = await connect(settings, signs_decisions=True, tracing=tracing)
    pool = await create_pool(
        settings.database_url.get_secret_value(), settings.database_pool_min_size, settings.database_pool_max_size
    )
    try:
        app = create_app(client, pool, settings, tracing=tracing)
        if not app.state.services.authenticator.configured:
            log.warning("no_credentials_configured", tokens_file=str(settings.tokens_file))
        config = uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False
        )
        log.info("api_starting", url=f"http://{settings.api_host}:{settings.api_port}")
        await uvicorn.Server(config).serve()
    finally:
        await pool.close()


if __name__ == "__main__":
    from runtime.service import run_service

    run_service(serve)
