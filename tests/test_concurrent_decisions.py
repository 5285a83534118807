"""Identical decisions sent at once, each under its own key: exactly one is applied, the others are refused (409).

And a decision retried under the same Idempotency-Key returns the first outcome, applied once.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from starter.synthetic import QUORATE_ATTENDEES, screening, strategy_discussion
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import advance_to, eventually, finished
from tests.test_api import events, iso, submitted, without_actor
from workflows.models import ScreeningOutcome

COPIES = [2, 10]


async def at_once(api, auth, path: str, user: str, body: dict | None, copies: int) -> list[httpx.Response]:
    """`copies` identical requests sent together, each with its own Idempotency-Key."""
    return await asyncio.gather(
        *(
            api.post(path, json=body, headers=auth(user) | {"Idempotency-Key": uuid.uuid4().hex})
            for _ in range(copies)
        )
    )


def one_applied(responses: list[httpx.Response]) -> dict[str, Any]:
    """Exactly one 200 and every other answer a 409; the applied decision's state."""
    assert Counter(r.status_code for r in responses) == {200: 1, 409: len(responses) - 1}, [
        (r.status_code, r.text[:200]) for r in responses
    ]
    return next(r.json() for r in responses if r.status_code == 200)


async def kinds(pool, reference: str) -> Counter:
    rows = await pool.fetch("SELECT kind FROM referral_events WHERE reference = $1", reference)
    return Counter(r["kind"] for r in rows)


@pytest.mark.parametrize("copies", COPIES)
async def test_every_referral_decision_sent_at_once_is_applied_once(api, auth, time_env, pool, copies):
    submission, reference = await submitted(api, auth, time_env, pool, 700 + copies)
    path = f"/referrals/{reference}"

    async def decide(route: str, user: str, body: dict | None = None) -> dict[str, Any]:
        return one_applied(await at_once(api, auth, f"{path}/{route}", user, body, copies))

    returned = await decide("supervisor-review", "sergeant", {"approved": False, "reasons": "Synthetic: too thin."})
    assert returned["stage"] == "returned_to_officer"
    resubmitted = await decide("resubmission", "officer", {"submission": submission.model_dump(mode="json")})
    assert resubmitted["submission_versions"] == 2
    await decide("supervisor-review", "sergeant", {"approved": True})
    screened = await decide(
        "screening", "screener", without_actor(screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION))
    )
    assert screened["stage"] == "strategy_discussion"

    now = await time_env.get_current_time()
    # Inquorate (no police attendee): it raises an escalation at once, to acknowledge below.
    inquorate = [a for a in QUORATE_ATTENDEES if a.agency.value != "police"]
    discussed = await decide(
        "strategy-discussion",
        "screener",
        without_actor(strategy_discussion(now, section_47=True, actions=2, attendees=inquorate)),
    )
    assert discussed["stage"] == "conference" and len(discussed["actions"]) == 2

    conference_at = now + timedelta(days=7)
    booked = await decide(
        "conference",
        "sergeant",
        {
            "conference_at": iso(conference_at),
            "police_attendance": "report_in_lieu",
            "attendance_rationale": "Synthetic: risk-based rationale.",
            "report_owner": "DC Synthetic",
        },
    )
    assert len(booked["actions"]) == 3
    regraded = await decide("risk", "screener", {"risk": "high", "reason": "Synthetic: new concern."})
    assert regraded["risk"] == "high"

    escalation = f"{reference}.E1"
    acknowledged = one_applied(
        await at_once(api, auth, f"/escalations/{escalation}/acknowledgement", "sergeant", None, copies)
    )
    assert acknowledged["escalations"][0]["acknowledged_by"] == "PS-2001"

    first_action = discussed["actions"][0]["action_id"]
    reassigned = one_applied(
        await at_once(
            api, auth, f"/actions/{first_action}/reassignment", "screener",
            {"owner": {"agency": "police", "owner": "DC Synthetic"}, "reason": "Synthetic handover."}, copies,
        )
    )
    assert reassigned["reassignments"] == 1
    completed = one_applied(
        await at_once(api, auth, f"/actions/{first_action}/completion", "officer", {"note": "Synthetic: done."}, copies)
    )
    assert completed["completed_by"] == "PC-1001"

    await advance_to(time_env, conference_at + timedelta(hours=2))
    outcome = await decide(
        "conference-outcome",
        "screener",
        {"held_at": iso(conference_at), "child_protection_plan": True, "police_attended": False,
         "allocated_social_worker": {"staff_id": "SW-6001", "name": "Social Worker Synthetic"},
         "rationale": "Synthetic conference rationale."},
    )
    assert outcome["stage"] == "actions"

    state = (await api.get(path, headers=auth("auditor"))).json()
    assert len(state["actions"]) == 3 and len(state["escalations"]) == 1
    decided = Counter(h["kind"] for h in state["history"])
    assert decided == {
        "supervisor_reviewed": 2, "screened": 1, "strategy_discussion_held": 1, "conference_booked": 1,
        "risk_regraded": 1, "conference_held": 1,
    }
    # Nothing doubled in PostgreSQL either: one row per fact, one per meeting, one per agreed action.
    recorded = await eventually(lambda: kinds(pool, reference), lambda k: k["conference_held"] == 1)
    for kind in ("vist_resubmitted", "strategy_discussion_held", "conference_booked", "conference_held",
                 "risk_regraded", "escalation_acknowledged", "action_completed", "action_reassigned"):
        assert recorded[kind] == 1, kind
    assert recorded["action_agreed"] == 3
    assert await pool.fetchval("SELECT count(*) FROM agreed_actions WHERE reference = $1", reference) == 3


@pytest.mark.parametrize("copies", COPIES)
async def test_a_closure_sent_at_once_is_applied_once(api, auth, time_env, pool, copies):
    submission, reference = await submitted(api, auth, time_env, pool, 720 + copies)
    await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True}, headers=auth("sergeant"))
    closed = one_applied(
        await at_once(api, auth, f"/referrals/{reference}/close", "screener", {"reason": "withdrawn"}, copies)
    )
    assert closed["stage"] == "closed"
    await finished(time_env, time_env.client.get_workflow_handle(reference))
    assert (await kinds(pool, reference))["closed"] == 1


async def test_a_decision_retried_with_its_key_returns_the_first_outcome(api, auth, time_env, pool):
    submission, reference = await submitted(api, auth, time_env, pool, 750)
    key = {"Idempotency-Key": f"review-{uuid.uuid4().hex}"}
    path = f"/referrals/{reference}/supervisor-review"
    first = await api.post(path, json={"approved": True}, headers=auth("sergeant") | key)
    assert first.status_code == 200 and first.headers["Idempotency-Key"] == key["Idempotency-Key"]
    again = await asyncio.gather(
        *(api.post(path, json={"approved": True}, headers=auth("sergeant") | key) for _ in range(5))
    )
    assert [r.status_code for r in again] == [200] * 5
    assert {r.json()["stage"] for r in again} == {"screening"}
    assert all(r.json()["history"] == first.json()["history"] for r in again)
    recorded = await eventually(lambda: kinds(pool, reference), lambda k: k["stage_changed"] >= 2)
    assert recorded["supervisor_reviewed"] == 1
    # Without a key the API makes one, and says which.
    other = await api.post(
        f"/referrals/{reference}/risk", json={"risk": "high", "reason": "Synthetic."}, headers=auth("screener")
    )
    assert other.status_code == 200 and len(other.headers["Idempotency-Key"]) >= 8


@pytest.mark.parametrize(
    "key", ["short", "x" * 129, "has space-in-it", "semi;colon-key", "-leading-dash", "ünïcode-key-1"]
)
async def test_a_bad_idempotency_key_is_refused_naming_the_header(api, auth, time_env, pool, key):
    reference = f"REF-{random.Random(key).choice('ABCDEFGHJK')}AAAA-AAAAA"
    response = await api.post(
        f"/referrals/{reference}/supervisor-review",
        json={"approved": True},
        headers=auth("sergeant") | {"Idempotency-Key": key.encode("utf-8")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize("copies", COPIES)
async def test_an_override_asked_and_granted_at_once_is_applied_once(api, auth, time_env, pool, copies):
    family, address = f"Racely-{copies:06d}", f"{copies} Race Row, Testtown TT0003"
    for n in range(3):
        submission, reference = await submitted(api, auth, time_env, pool, f"race-{copies}-{n}", family=family,
                                                address=address)
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", reference),
            lambda c: c == 1,
        )
    await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True}, headers=auth("sergeant"))
    path = f"/referrals/{reference}"
    asked = one_applied(await at_once(api, auth, f"{path}/override-request", "screener", {"reason": "Synthetic."},
                                      copies))
    assert asked["repeat_referral_override"]["granted"] is None
    granted = one_applied(await at_once(api, auth, f"{path}/override", "sergeant",
                                        {"granted": True, "rationale": "Synthetic."}, copies))
    assert granted["repeat_referral_override"]["granted"] is True
    recorded = await eventually(lambda: kinds(pool, reference), lambda k: k["repeat_override_decided"] >= 1)
    assert recorded["repeat_override_requested"] == 1 and recorded["repeat_override_decided"] == 1
