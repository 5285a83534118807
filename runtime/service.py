"""How a long-running process starts: its settings from the environment, logging configured, then it serves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from runtime.logging import configure_logging
from runtime.settings import Settings


def run_service(serve: Callable[[Settings], Awaitable[None]]) -> None:
    """Run `serve` with the environment's settings until it returns (SIGINT/SIGTERM, for a server)."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
