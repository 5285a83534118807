"""The API on the real stack for tests: the time-skipping server's session worker, the test database, static tokens."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from starter.api import create_app
from starter.auth import DEMO_USERS, Authenticator, TokenHolder
from tests.helpers import STARTED
from workflows.models import Agency, Role, VistSubmission

# The demo users plus a police officer who is not a partner, for agency rules.
USERS: dict[str, TokenHolder] = DEMO_USERS | {
    "housing-partner": TokenHolder(id="HO-7001", role=Role.PARTNER, agency=Agency.HOUSING),
}
# One user per role, for "every other role is refused" tests.
BY_ROLE = {
    Role.OFFICER: "officer",
    Role.SUPERVISOR: "sergeant",
    Role.SCREENER: "screener",
    Role.PARTNER: "health-partner",
    Role.AUDITOR: "auditor",
    Role.ADMIN: "admin",
}


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """user name -> a bearer token made for this session."""
    return {name: secrets.token_urlsafe(24) for name in USERS}


@pytest.fixture(scope="session")
def authenticator(tokens: dict[str, str]) -> Authenticator:
    return Authenticator({tokens[name]: holder for name, holder in USERS.items()})


@pytest.fixture(scope="session")
async def api_app(time_env, pool, time_queue, settings, sla_policy, authenticator) -> FastAPI:
    # The API starts referrals on the session worker's queue, and reads "now" from the test server's clock.
    return create_app(
        time_env.client,
        pool,
        settings.model_copy(update={"task_queue": time_queue}),
        authenticator=authenticator,
        sla_policy=sla_policy,
        clock=time_env.get_current_time,
    )


@pytest.fixture(scope="session")
async def api(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=60) as client:
        yield client


class As:
    """Authorization headers for one of USERS: `auth("sergeant")`."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def __call__(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture(scope="session")
def auth(tokens: dict[str, str]) -> As:
    return As(tokens)


def track(client, reference: str) -> None:
    """Have the referral terminated after the test if it is still open (see tests/conftest.py)."""
    STARTED.append(client.get_workflow_handle(reference))


def form_json(submission: VistSubmission) -> dict[str, Any]:
    return submission.model_dump(mode="json")
