"""PostgreSQL down: every read answers 503 with Retry-After, none unlogged, and a decision answers 504 with its key.

The API and a worker of its own reach the test database through a relay that the test
cuts and restores, so the outage is a real one: connections dropped, new ones refused.
Once the database is back, the same key returns the first outcome, applied once.
"""

from __future__ import annotations

import random
import uuid
from urllib.parse import quote
from collections.abc import AsyncIterator

import httpx
import pytest

from readmodel.database import create_pool
from api.app import create_app
from starter.synthetic import screening, synthetic_vist
from tests.api_fixtures import As, authenticator, form_json, tokens, track  # noqa: F401
from tests.conftest import make_worker
from tests.helpers import eventually, finished, sign_in
from tests.outage import SeverableLink
from workflows.models import ScreeningOutcome
from workflows.referral import ReferralWorkflow

# What each read needs: the route, and the user allowed to read it.
API_READS = [
    ("/referrals", "auditor"),
    ("/referrals/{reference}", "auditor"),
    ("/escalations", "sergeant"),
    ("/access-log", "auditor"),
    ("/retention", "admin"),
    ("/audit/referrals/{reference}/timeline", "auditor"),
    ("/audit/referrals/{reference}/as-of?at={reviewed_at}", "auditor"),
    ("/audit/referrals/{reference}/replay", "auditor"),
    ("/audit/reconcile", "auditor"),
    ("/ready", "auditor"),
]
DASHBOARD_READS = [
    ("/dashboard/escalations", "sergeant"),
    ("/dashboard/actions", "sergeant"),
    ("/dashboard/referrals", "auditor"),
    ("/dashboard/referrals/{reference}", "auditor"),
    ("/dashboard/timeliness", "auditor"),
]


@pytest.fixture
async def link(postgres_dsn: str) -> AsyncIterator[SeverableLink]:
    link = SeverableLink(postgres_dsn)
    await link.restore()
    yield link


async def kinds(pool, reference: str) -> list[str]:
    return [r["kind"] for r in await pool.fetch("SELECT kind FROM referral_events WHERE reference = $1", reference)]


async def reads_logged(pool, reference: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM access_log WHERE reference = $1", reference)


async def test_a_database_outage_answers_503_and_a_decision_its_key(
    time_env, pool, link, settings, sla_policy, authenticator, tokens  # noqa: F811
):
    auth = As(tokens)
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    linked = await create_pool(link.dsn, min_size=1, max_size=4)
    app = create_app(
        time_env.client,
        linked,
        settings.model_copy(update={"task_queue": queue, "decision_timeout_seconds": 2}),
        authenticator=authenticator,
        sla_policy=sla_policy,
        clock=time_env.get_current_time,
    )
    transport = httpx.ASGITransport(app=app)
    async with make_worker(time_env.client, linked, settings, queue), httpx.AsyncClient(
        transport=transport, base_url="http://api.test", timeout=60
    ) as api:
        submission = synthetic_vist(rng=random.Random("outage:1"))
        intake = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
        assert intake.status_code == 201, intake.text
        reference = intake.json()["reference"]
        track(time_env.client, reference)
        await eventually(lambda: kinds(pool, reference), lambda k: len(k) >= 2)
        review = await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True},
                                headers=auth("sergeant"))
        assert review.status_code == 200, review.text
        reviewed_at = quote(review.json()["history"][-1]["at"])
        logged_before = await reads_logged(pool, reference)
        browsers = {user: await sign_in(api, tokens[user]) for _, user in DASHBOARD_READS}

        await link.cut()

        for route, user in API_READS:
            response = await api.get(route.format(reference=reference, reviewed_at=reviewed_at), headers=auth(user))
            assert response.status_code == 503, (route, response.status_code, response.text[:200])
            assert int(response.headers["Retry-After"]) > 0, route
            # An error is problem details; readiness reports what is down in its own shape.
            problem = response.headers["content-type"] == "application/problem+json"
            assert problem != (route == "/ready") and (route == "/ready" or response.json()["status"] == 503), route
            # Nothing of the referral is shown: a read that cannot be logged is not made.
            assert submission.children[0].child_id not in response.text or route == "/ready", route
            assert "screening_view" not in response.text and "history" not in response.text, route
        for route, user in DASHBOARD_READS:
            response = await api.get(route.format(reference=reference), headers=browsers[user].headers)
            assert response.status_code == 503, (route, response.status_code, response.text[:200])
            assert response.headers["Retry-After"] and "Temporarily unavailable" in response.text, route
            assert reference not in response.text, route

        key = f"screen-{uuid.uuid4().hex}"
        decision = screening(submission, ScreeningOutcome.NO_FURTHER_ACTION).details()
        unconfirmed = await api.post(f"/referrals/{reference}/screening", json=decision,
                                     headers=auth("screener") | {"Idempotency-Key": key})
        assert unconfirmed.status_code == 504, unconfirmed.text
        assert unconfirmed.headers["content-type"] == "application/problem+json"
        assert unconfirmed.json()["idempotency_key"] == key and unconfirmed.headers["Idempotency-Key"] == key
        assert "same Idempotency-Key" in unconfirmed.json()["detail"]

        await link.restore()
        # The workflow records the decision by itself once the database is back ...
        handle = time_env.client.get_workflow_handle(reference)
        await handle.get_update_handle(key).result()
        # ... and the same key returns that first outcome, whatever the workflow has done since.
        learned = await api.post(f"/referrals/{reference}/screening", json=decision,
                                 headers=auth("screener") | {"Idempotency-Key": key})
        assert learned.status_code == 200, learned.text
        assert learned.json()["stage"] == "actions" and learned.json()["screening_outcome"] == "no_further_action"
        # It closes once the screener has told children's social care (its agreed action).
        told = await api.post(f"/actions/{reference}.A1/completion", json={"note": "Synthetic: told."},
                              headers=auth("screener"))
        assert told.status_code == 200, told.text
        await finished(time_env, handle)
        recorded = await kinds(pool, reference)
        assert recorded.count("screened") == 1 and recorded.count("closed") == 1
        assert (await handle.query(ReferralWorkflow.state)).history[-2].kind == "screened"
        # Not one read went unlogged while the database was down (none was served).
        assert await reads_logged(pool, reference) == logged_before
        shown = await api.get(f"/referrals/{reference}", headers=auth("auditor"))
        assert shown.status_code == 200 and await reads_logged(pool, reference) == logged_before + 1
    await linked.close()
