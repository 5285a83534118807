"""The API's typed dependencies: its services, the caller from the bearer token, role checks, paths, idempotency keys and pages."""

# No `from __future__ import annotations`: FastAPI reads these dependencies from the evaluated annotations.

import base64
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.errors import IDEMPOTENCY_HEADER, ApiError, aware_moment, invalid
from auth.tokens import Authenticator, Caller, InvalidCredentials
from readmodel.access_log import AccessLog
from readmodel.metrics import ReadModelGauges
from readmodel.queries import PageStart, ReferralReadModel
from runtime.settings import Settings
from starter.acknowledgement import Acknowledgements
from starter.actions import AgreedActions
from starter.missing import MissingEpisodes
from starter.plans import TriggerPlans
from starter.referrals import Referrals
from starter.workflow_client import WorkflowClient
from workflows.authority import CASE_READERS
from workflows.models import Role, SlaPolicy

log = structlog.get_logger("api")

Clock = Callable[[], Awaitable[datetime]]

MAX_PAGE = 200
# The `referrals` CLI names itself, so the access log can tell its reads from other clients'.
CLIENT_HEADER = "X-Referrals-Client"


def reading_channel(request: Request) -> str:
    """The access log's channel for a read: the `referrals` CLI names itself, any other client is the API."""
    return "cli" if request.headers.get(CLIENT_HEADER) == "cli" else "api"


Channel = Annotated[str, Depends(reading_channel)]


async def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def own_identity(loc: tuple[str | int, ...], named: str, caller: Caller) -> None:
    """A body may name its maker only as the token does: who decides comes from the credentials alone."""
    if named != caller.actor.id:
        raise invalid(loc, "must be the caller's own staff ID: who submits comes from the credentials")


@dataclass
class Services:
    client: Client
    read_model: ReferralReadModel
    access_log: AccessLog
    pool: asyncpg.Pool
    settings: Settings
    authenticator: Authenticator
    sla_policy: SlaPolicy
    clock: Clock
    acknowledgements: Acknowledgements
    gauges: ReadModelGauges


def services(request: Request) -> Services:
    return request.app.state.services


bearer = HTTPBearer(auto_error=False, description="a signed JWT, or a static token of the embedded stack")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    svc: Annotated[Services, Depends(services)],
) -> Caller:
    try:
        caller = await svc.authenticator.authenticate(credentials.credentials if credentials else None)
    except InvalidCredentials as error:
        log.info("credentials_rejected", reason=str(error))
        raise ApiError(401, "valid bearer credentials are required", headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.actor_id = caller.actor.id
    return caller


def allowed(roles: frozenset[Role], action: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting callers whose role may `action`; checked again by the workflow."""

    async def check(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        if caller.actor.role not in roles:
            names = ", ".join(sorted(r.value for r in roles))
            reason = f"actor.role: a {caller.actor.role.value} may not {action} (allowed: {names})"
            raise ApiError(403, reason, "actor.role")
        return caller

    return check


Authenticated = Annotated[Caller, Depends(authenticated)]
# Everyone but a partner agency's staff, who see only the referrals their actions belong to.
REFERRAL_LISTERS = CASE_READERS
Svc = Annotated[Services, Depends(services)]

@dataclass(frozen=True)
class Target:
    """What a decision route changes (a referral, a missing episode, an agreed action), through its workflow type's client."""

    collection: str
    workflows: type[WorkflowClient[Any]]

    @property
    def param(self) -> str:
        return self.workflows.field

    def client(self, svc: Services) -> WorkflowClient[Any]:
        return self.workflows(svc.client, svc.settings.decision_timeout_seconds)


REFERRAL = Target("referrals", Referrals)
ACTION = Target("actions", AgreedActions)
EPISODE = Target("missing-episodes", MissingEpisodes)
PLAN = Target("trigger-plans", TriggerPlans)


# A client's key for one decision: the Temporal update ID, so a retry is the same update.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="names this decision: a retry with the same key returns the first outcome and applies "
        "nothing twice (8-128 letters, digits, '.', '_', ':', '-'); without one the API makes one",
    ),
]


def decision_key(key: str | None, response: Response) -> str:
    """The decision's idempotency key, the client's or a new one, echoed in the answer's header."""
    key = key or uuid.uuid4().hex
    response.headers[IDEMPOTENCY_HEADER] = key
    return key


def encode_cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), key]).encode()).decode()


def decode_cursor(cursor: str | None, key_pattern: re.Pattern[str]) -> PageStart | None:
    if cursor is None:
        return None
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        start = PageStart(datetime.fromisoformat(at), key)
    except (ValueError, TypeError, UnicodeError):
        raise invalid(("query", "cursor"), "not a cursor this API returned") from None
    if not isinstance(key, str) or not key_pattern.fullmatch(key):
        raise invalid(("query", "cursor"), "not a cursor this API returned")
    aware_moment(("query", "cursor"), start.at)
    return start


def page(rows: list[Any], limit: int, time_column: str, key_column: str) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last[time_column], last[key_column])


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
