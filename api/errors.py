"""The HTTP answers other than success, as RFC 9457 problem details, shared by every router: one class, whichever way the API is started.

Kept apart from api/app.py so that a second copy of that module (as `runpy` loads it)
registers its handlers for the very classes the routes raise.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api import models as bodies
from starter.decisions import field_errors
from starter.workflow_client import DecisionRejected, DecisionUnconfirmed, NoSuchWorkflow, WorkflowRefusal
# The times a query may name are those a record may hold: both Python and PostgreSQL hold them at any offset.
from workflows.models import EARLIEST, LATEST, moment

log = structlog.get_logger("api")

PROBLEM_MEDIA_TYPE = "application/problem+json"

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


def problem(status: int, detail: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem: its status's phrase as the title, and an ID for this occurrence, logged with the status."""
    instance = f"urn:uuid:{uuid.uuid4()}"
    log.info("problem", status=status, field=field, instance=instance)
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "field": field,
    } | extra


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE)


async def validation_failed(_: Request, error: RequestValidationError) -> JSONResponse:
    """422: each bad field and why, the first named as the problem's field; never a submitted value."""
    errors = field_errors(list(error.errors()))
    named = [".".join(str(part) for part in e["loc"]) + f": {e['msg']}" for e in errors]
    detail = f"{len(errors)} invalid field{'s' if len(errors) != 1 else ''}: " + "; ".join(named)
    first = ".".join(str(part) for part in errors[0]["loc"][1:]) if errors else None
    return problem_response(problem(422, detail, first or None, errors=errors))


async def workflow_refused(request: Request, refusal: WorkflowRefusal) -> JSONResponse:
    return await api_error(request, refused(refusal))


async def decision_unconfirmed(request: Request, unconfirmed: DecisionUnconfirmed) -> JSONResponse:
    return await api_error(request, undecided(unconfirmed.key))


async def api_error(_: Request, error: ApiError) -> JSONResponse:
    return problem_response(problem(error.status, error.detail, error.field, **error.extra), error.headers)


async def http_refused(_: Request, error: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route 404, a method not allowed 405) as problems too."""
    return problem_response(problem(error.status_code, str(error.detail)), getattr(error, "headers", None))


async def unexpected(_: Request, error: Exception) -> JSONResponse:
    """A fault of the API's own (500): its type is logged under the problem's ID; the body says nothing more."""
    body = problem(500, "the API failed to answer; the problem's instance ID is in its log")
    log.error("unexpected_error", error=type(error).__name__, instance=body["instance"])
    return problem_response(body)


def aware_moment(loc: tuple[str | int, ...], at: datetime | None) -> datetime | None:
    """A query's moment (London's when written without an offset; a date alone its first moment), refused (422)
    outside the years any record can hold, or in an hour London's clocks skip or repeat."""
    if at is None:
        return None
    try:
        return moment(at)
    except ValueError as why:
        raise invalid(loc, str(why)) from None


# The answers every route may give besides success, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": bodies.ProblemDetails, "description": "no valid bearer credentials"},
    403: {"model": bodies.ProblemDetails, "description": "the caller's role or agency may not do this"},
    404: {"model": bodies.ProblemDetails, "description": "no such referral, action or escalation"},
    409: {"model": bodies.ProblemDetails, "description": "the workflow refused the decision (stage, already decided, a rule)"},
    422: {"model": bodies.ValidationProblem, "description": "each bad field and why"},
    503: {"model": bodies.ProblemDetails, "description": "PostgreSQL or Temporal is down: retry after `Retry-After` seconds"},
    500: {"model": bodies.ProblemDetails, "description": "the API's own fault: the problem's instance ID is in its log"},
}
# A decision's further answer: not confirmed in time, retry with the same key.
DECISION_ERRORS: dict[int | str, dict[str, Any]] = ERRORS | {
    504: {"model": bodies.Undecided, "description": "not confirmed in time: retry with the same Idempotency-Key"},
}
