"""The HTTP answers other than success, shared by every router: one class, whichever way the API is started.

Kept apart from api/app.py so that a second copy of that module (as `runpy` loads it)
registers its handlers for the very classes the routes raise.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import asyncpg
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

from api import models as bodies
from starter.decisions import field_errors
from starter.workflow_client import DecisionRejected, DecisionUnconfirmed, NoSuchWorkflow, WorkflowRefusal

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Seconds a client should wait before retrying while a dependency is down.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An answer other than success: a status, the reason, and the field the reason is about."""

    def __init__(
        self,
        status: int,
        detail: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra or {}


def refused(refusal: WorkflowRefusal) -> ApiError:
    """A workflow's refusal as the HTTP answer: no such workflow 404; "actor.*" and "proof" are about who
    decides (403); the rest are about the referral or action (409)."""
    if isinstance(refusal, NoSuchWorkflow):
        status = 404
    elif isinstance(refusal, DecisionRejected) and refusal.about_who_decides:
        status = 403
    else:
        status = 409
    return ApiError(status, refusal.reason, refusal.field)


def rejected(message: str) -> ApiError:
    """A workflow validator's rejection, or one made outside it by the same rule, as the HTTP answer."""
    return refused(DecisionRejected(message))


def undecided(key: str) -> ApiError:
    """A decision not confirmed in time: it may still take effect, once; the same key tells which."""
    return ApiError(
        504,
        f"the decision was not confirmed in time; retry with the same {IDEMPOTENCY_HEADER} to learn the outcome "
        "(it is applied at most once)",
        IDEMPOTENCY_HEADER,
        headers={IDEMPOTENCY_HEADER: key, "Retry-After": str(RETRY_AFTER_SECONDS)},
        extra={"idempotency_key": key},
    )


def unavailable(what: str) -> ApiError:
    return ApiError(
        503, f"{what} is temporarily unavailable; try again shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


# What a lost or refused PostgreSQL connection raises: asyncpg's connection errors, the socket's, a timeout.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


def invalid(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


async def validation_failed(_: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": field_errors(list(error.errors()))}, status_code=422)


async def workflow_refused(request: Request, refusal: WorkflowRefusal) -> JSONResponse:
    return await api_error(request, refused(refusal))


async def decision_unconfirmed(request: Request, unconfirmed: DecisionUnconfirmed) -> JSONResponse:
    return await api_error(request, undecided(unconfirmed.key))


async def api_error(_: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(
        {"detail": error.detail, "field": error.field} | error.extra, status_code=error.status, headers=error.headers
    )


# The times a query may name: any record lies between these, and both Python and PostgreSQL hold them at any offset.
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def aware_moment(loc: tuple[str | int, ...], moment: datetime | None) -> datetime | None:
    """A query's moment, refused (422) without a timezone offset or outside the years any record can hold."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise invalid(loc, "must include a timezone offset")
    try:
        in_utc = moment.astimezone(timezone.utc)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc < LATEST:
        raise invalid(loc, f"must be between {EARLIEST.year} and {LATEST.year}")
    return moment


# The answers every route may give besides success, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": bodies.Problem, "description": "no valid bearer credentials"},
    403: {"model": bodies.Problem, "description": "the caller's role or agency may not do this"},
    404: {"model": bodies.Problem, "description": "no such referral, action or escalation"},
    409: {"model": bodies.Problem, "description": "the workflow refused the decision (stage, already decided, a rule)"},
    422: {"model": bodies.ValidationProblem, "description": "each bad field and why"},
    503: {"model": bodies.Problem, "description": "PostgreSQL or Temporal is down: retry after `Retry-After` seconds"},
}
# A decision's further answer: not confirmed in time, retry with the same key.
DECISION_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    504: {"model": bodies.Undecided, "description": "not confirmed in time: retry with the same Idempotency-Key"},
}
