"""Apply the read model's pending migrations and exit: `python -m readmodel`, the deployment's migration job."""

from __future__ import annotations

import asyncio

import structlog

from readmodel.database import apply_migrations, create_pool
from runtime.logging import configure_logging
from runtime.settings import Settings

log = structlog.get_logger("migrate")


async def migrate(settings: Settings) -> list[int]:
    """The versions this run applied (none when the database is up to date), under the workers' advisory lock."""
    if settings.database_url is None:
        raise SystemExit("python -m readmodel needs DATABASE_URL: the PostgreSQL server to migrate")
    pool = await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=1)
    try:
        applied = await apply_migrations(pool)
    finally:
        await pool.close()
    log.info("migrations_done", applied=applied)
    return applied


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(migrate(settings))


if __name__ == "__main__":
    main()
