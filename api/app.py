"""The HTTP API's app: VIST intake, every decision as a workflow update, and lists from the read model.

Served by `python -m api` (api/__main__.py). `create_app(client, pool, settings)` composes every
router of api/routes/ and the dashboard's pages around a Temporal client and an asyncpg pool, so tests hand it the time-skipping server's client and the test database. The actor
of every decision comes from the bearer token (auth/tokens.py). A decision is one
workflow update: the workflow's validator accepts it whole or rejects it before anything is
written, so the API never half-applies one. Error bodies and access logs never carry a
submitted value: they may be personal data.
"""


import time
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from temporalio.client import Client
from temporalio.service import RPCError

from activities.directory import SupervisionDirectory
from activities.policy import build_sla_policy
from api.deps import Clock, Services, wall_clock
from api.middleware import HttpMiddleware, SecurityHeaders
from api.errors import (
    DATABASE_DOWN,
    RETRY_AFTER_SECONDS,
    ApiError,
    api_error,
    decision_unconfirmed,
    http_refused,
    unavailable,
    unexpected,
    validation_failed,
    workflow_refused,
)
from api.openapi import document_api
from api.routes import audit, decisions, escalations, missing, operations, panels, plans, records, referrals, triage
from auth.tokens import Authenticator
from dashboard.board import create_board
from dashboard.routes import PREFIX as DASHBOARD_PREFIX
from dashboard.routes import mount, unavailable_page
from readmodel.access_log import AccessLog
from readmodel.metrics import ReadModelGauges
from readmodel.oversight import OversightReadModel
from readmodel.queries import ReferralReadModel
from runtime.settings import Settings
from runtime.tracing import Tracing
from starter.acknowledgement import Acknowledgements
from starter.workflow_client import DecisionUnconfirmed, WorkflowRefusal
from workflows.models import SlaPolicy

log = structlog.get_logger("api")

# Where /docs and /redoc find their scripts and styles, served by the API itself.
DOCS_ASSETS = "/docs-assets"
# Every resource's router, in the order the OpenAPI document lists them.
ROUTERS = (
    referrals.router, missing.router, plans.router, decisions.router, triage.router, panels.router,
    escalations.router, operations.router, records.router, audit.router,
)


class RequestLog(HttpMiddleware):
    """One log line per request with the route template, never the raw path or query."""

    async def http(self, scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        status = 500

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            log.info(
                "http_request",
                method=scope["method"],
                route=getattr(route, "path", "unmatched"),
                status=status,
                actor=scope.get("state", {}).get("actor_id"),
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


async def _temporal_unavailable(request: Request, error: RPCError) -> Response:
    log.warning("temporal_error", status=error.status.name)
    return await _unavailable(request, unavailable("the workflow service"))


async def _database_unavailable(request: Request, error: Exception) -> Response:
    log.warning("database_unavailable", error=type(error).__name__)
    return await _unavailable(request, unavailable("the records database"))


async def _http_refused(request: Request, error: HTTPException) -> Response:
    """The dashboard's redirects and refusals as Starlette makes them; the API's as problems."""
    if request.url.path.startswith(DASHBOARD_PREFIX):
        return await http_exception_handler(request, error)
    return await http_refused(request, error)


async def _unavailable(request: Request, error: ApiError) -> Response:
    """503 with Retry-After: the dashboard's plain page, or the API's problem body."""
    if request.url.path.startswith(DASHBOARD_PREFIX):
        return unavailable_page(request, RETRY_AFTER_SECONDS)
    return await api_error(request, error)


def create_app(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    authenticator: Authenticator | None = None,
    sla_policy: SlaPolicy | None = None,
    clock: Clock = wall_clock,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The API around one Temporal client and one PostgreSQL pool (both owned by the caller); with `tracing`,
    each request a span (the client given carries it on into Temporal)."""
    # /docs and /redoc serve Swagger UI and ReDoc from the installed package, never a CDN: closed networks read them too.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator's site
        title="Child-protection referrals",
        version="1",
        description="VIST intake, missing reports, decisions on referrals, missing episodes and agreed actions, escalations. "
        "Every decision is recorded under the actor named by the bearer token.",
    )
    directory = SupervisionDirectory.load(settings.alert_directory_file)
    app.state.services = Services(
        client=client,
        read_model=ReferralReadModel(pool),
        access_log=AccessLog(pool),
        pool=pool,
        settings=settings,
        authenticator=authenticator or Authenticator.from_settings(settings),
        sla_policy=sla_policy or build_sla_policy(settings.sla_policy_file),
        clock=clock,
        acknowledgements=Acknowledgements(
            client, OversightReadModel(pool), directory, settings.decision_timeout_seconds
        ),
        gauges=ReadModelGauges(pool, settings.metrics_cache_seconds, clock),
    )
    for router in ROUTERS:
        app.include_router(router)
    # Composition at the top: the app mounts the dashboard's pages; neither imports the other's routes.
    mount(
        app,
        create_board(
            client,
            pool,
            settings,
            authenticator=app.state.services.authenticator,
            acknowledgements=app.state.services.acknowledgements,
            sla_policy=app.state.services.sla_policy,
            clock=clock,
        ),
    )
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(WorkflowRefusal, workflow_refused)
    app.add_exception_handler(DecisionUnconfirmed, decision_unconfirmed)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_exception_handler(HTTPException, _http_refused)
    app.add_exception_handler(Exception, unexpected)
    for down in DATABASE_DOWN:
        app.add_exception_handler(down, _database_unavailable)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestLog)
    document_api(app)
    if tracing is not None:
        tracing.instrument_app(app)
    return app
