"""Liveness, readiness and metrics over HTTP: the readiness checks the API shares, and the worker's small server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime.metrics import CONTENT_TYPE

Check = Callable[[], Awaitable[Any]]
CHECK_TIMEOUT_SECONDS = 5


async def readiness(checks: Mapping[str, Check]) -> dict[str, Any]:
    """Each check run at once and bounded in time; ready when every one answered truthily."""

    async def passes(check: Check) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS))
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False

    results = dict(zip(checks, await asyncio.gather(*(passes(check) for check in checks.values()))))
    return {"status": "ready" if all(results.values()) else "unavailable", **results}


def probe_app(scrape: Callable[[], Awaitable[bytes]], checks: Mapping[str, Check]) -> Starlette:
    """`/health` (the process answers), `/ready` (every check passes, else 503) and `/metrics`."""

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        body = await readiness(checks)
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    async def metrics(_: Request) -> Response:
        return Response(await scrape(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)])


class ProbeServer(uvicorn.Server):
    """uvicorn inside the caller's event loop; the caller, not uvicorn, owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, host: str, port: int) -> AsyncIterator[ProbeServer]:
    """An ASGI app listening on host:port for as long as the block runs."""
    server = ProbeServer(uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot listen
                task.result()
            raise OSError(f"{host}:{port}: could not listen (is the port in use?)")
        await asyncio.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        await task
