"""The API on the real stack for tests: the time-skipping server's session worker, the test database, static tokens."""

from __future__ import annotations

import json
import random
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from auth.tokens import Authenticator, TokenHolder
from starter.demo_users import DEMO_USERS
from starter.synthetic import SCREENER, synthetic_vist
from tests.helpers import STARTED, eventually
from workflows.models import Agency, Rank, Role, VistSubmission

# The demo users, a partner of an agency with no actions, the ranks above the demo's, a
# sergeant the supervision directory names, and a screener acting up as a sergeant (one
# person holding two roles: the separation of duties is about the person).
USERS: dict[str, TokenHolder] = DEMO_USERS | {
    "housing-partner": TokenHolder(id="HO-7001", role=Role.PARTNER, agency=Agency.HOUSING),
    "superintendent": TokenHolder(id="SUPT-2901", role=Role.SUPERVISOR, rank=Rank.SUPERINTENDENT, team="Testtown"),
    "named-sergeant": TokenHolder(id="PS-2002", role=Role.SUPERVISOR, rank=Rank.SERGEANT, team="Testtown"),
    "screener-as-sergeant": TokenHolder(id=SCREENER.id, role=Role.SUPERVISOR, rank=Rank.SERGEANT, team="Testtown"),
}
# The API's supervision directory: Testtown's superintendent rung names one sergeant.
DIRECTORY = {
    "chains": [{"agency": "police", "team": "Testtown", "rungs": [
        {"role": "sergeant"}, {"role": "inspector"},
        {"role": "superintendent", "staff_id": USERS["named-sergeant"].id},
    ]}],
}
# Each user who acknowledges by rank, by the rank they hold.
BY_RANK = {Rank.SERGEANT: "sergeant", Rank.INSPECTOR: "inspector", Rank.SUPERINTENDENT: "superintendent"}
# One user per role, for "every other role is refused" tests.
BY_ROLE = {
    Role.OFFICER: "officer",
    Role.SUPERVISOR: "sergeant",
    Role.SCREENER: "screener",
    Role.CALL_HANDLER: "call-handler",
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
    directory = Path(tempfile.mkdtemp(prefix="referrals-directory-")) / "directory.json"
    directory.write_text(json.dumps(DIRECTORY))
    return create_app(
        time_env.client,
        pool,
        settings.model_copy(update={"task_queue": time_queue, "alert_directory_file": directory}),
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


async def reviewed_referral(api: httpx.AsyncClient, auth: As, client, pool, rng: random.Random) -> str:
    """A VIST submitted and approved through the API, once the approval is in the read model; its reference."""
    intake = await api.post("/referrals", json=form_json(synthetic_vist(rng=rng)), headers=auth("officer"))
    assert intake.status_code == 201, intake.text
    reference = intake.json()["reference"]
    track(client, reference)
    review = await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True}, headers=auth("sergeant"))
    assert review.status_code == 200, review.text
    await eventually(
        lambda: pool.fetchval("SELECT stage FROM referrals WHERE reference = $1", reference),
        lambda stage: stage == "screening",
    )
    return reference
