"""Loose ends: a closure resolves its open escalations, a late ICPC's reason is in view, and odd queries are 422s."""

from __future__ import annotations

import base64
import json
import runpy
from datetime import timedelta

import httpx
import pytest

from starter.synthetic import QUORATE_ATTENDEES, screening, strategy_discussion
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import eventually, finished
from tests.test_api import iso, post, submitted, without_actor
from workflows.models import ScreeningOutcome

UNKNOWN = "REF-00000-00000"
FAR_BACK = "0001-01-01T00:00:00+14:00"


async def at_strategy_discussion(api, auth, time_env, pool, seed: int):
    submission, reference = await submitted(api, auth, time_env, pool, seed)
    await post(api, auth, f"/referrals/{reference}/supervisor-review", "sergeant", {"approved": True})
    await post(api, auth, f"/referrals/{reference}/screening", "screener",
               without_actor(screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)))
    return submission, reference


async def escalations(api, auth, reference: str, state: str) -> list[dict]:
    response = await api.get("/escalations", params={"reference": reference, "state": state}, headers=auth("auditor"))
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_closing_a_referral_resolves_its_open_escalations(api, auth, time_env, pool):
    _, reference = await at_strategy_discussion(api, auth, time_env, pool, 801)
    now = await time_env.get_current_time()
    # An inquorate discussion escalates at once; with no section 47 and no actions the referral then closes.
    discussion = strategy_discussion(now, section_47=False, actions=0, attendees=QUORATE_ATTENDEES[:1])
    closed = await post(api, auth, f"/referrals/{reference}/strategy-discussion", "screener", without_actor(discussion))
    assert closed["stage"] == "closed"
    (escalation,) = closed["escalations"]
    assert escalation["reason"] == "inquorate" and escalation["acknowledged_at"] is None
    assert escalation["resolution"] == "referral_closed" and escalation["resolved_at"] is not None
    await finished(time_env, time_env.client.get_workflow_handle(reference))

    # The fact, the read model's row, and the open lists all say so.
    recorded = await eventually(
        lambda: pool.fetch("SELECT kind, actor_id, payload FROM referral_events WHERE reference = $1 AND kind = "
                           "'escalation_resolved'", reference),
        lambda rows: len(rows) == 1,
    )
    assert recorded[0]["actor_id"] == "system"
    assert await escalations(api, auth, reference, "open") == []
    assert [e["escalation_id"] for e in await escalations(api, auth, reference, "resolved")] == [f"{reference}.E1"]
    assert (await escalations(api, auth, reference, "resolved"))[0]["resolution"] == "referral_closed"
    timeline = (await api.get(f"/audit/referrals/{reference}/timeline", headers=auth("auditor"))).json()
    assert timeline["escalations"][0]["resolution"] == "referral_closed"
    reconciled = (await api.get("/audit/reconcile", params={"reference": reference}, headers=auth("auditor"))).json()
    assert reconciled["mismatches"] == []


async def test_a_late_conference_shows_its_reason(api, auth, time_env, pool):
    _, reference = await at_strategy_discussion(api, auth, time_env, pool, 802)
    now = await time_env.get_current_time()
    await post(api, auth, f"/referrals/{reference}/strategy-discussion", "screener",
               without_actor(strategy_discussion(now, section_47=True, actions=0)))
    late = {"conference_at": iso(now + timedelta(days=40)), "police_attendance": "attend",
            "late_reason": "Synthetic: the family asked for a later date."}
    booked = await post(api, auth, f"/referrals/{reference}/conference", "sergeant", late)
    assert booked["conference_late_reason"] == "Synthetic: the family asked for a later date."
    shown = (await api.get(f"/referrals/{reference}", headers=auth("auditor"))).json()
    assert shown["conference_late_reason"] == booked["conference_late_reason"]
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1 AND kind = "
                              "'conference_booked'", reference),
        lambda n: n == 1,
    )
    base = f"/audit/referrals/{reference}"
    conference = (await api.get(f"{base}/timeline", headers=auth("auditor"))).json()["conference"]
    assert conference["booked_late"] is True and conference["late_reason_given"] is True
    booked_at = booked["history"][-1]["at"]
    as_of = (await api.get(f"{base}/as-of", params={"at": booked_at}, headers=auth("auditor"))).json()
    assert as_of["conference_late_reason"] == booked["conference_late_reason"]
    # A moment in the future is not today's state passed off as then: it is refused, saying so.
    future = await api.get(f"{base}/as-of", params={"at": "2199-01-01T00:00:00Z"}, headers=auth("auditor"))
    assert future.status_code == 422 and "in the future" in future.text


def cursor(at: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, key]).encode()).decode()


async def test_queries_outside_what_the_records_can_hold_are_422(api, auth):
    refusals = [
        ("/referrals", {"cursor": cursor(FAR_BACK, "REF-AAAAA-AAAAA")}, ["query", "cursor"]),
        ("/referrals", {"updated_since": FAR_BACK}, ["query", "updated_since"]),
        ("/referrals", {"updated_since": "9999-12-31T23:59:59-14:00"}, ["query", "updated_since"]),
        ("/escalations", {"cursor": cursor(FAR_BACK, "REF-AAAAA-AAAAA.E1")}, ["query", "cursor"]),
        ("/access-log", {"before": str(2**63)}, ["query", "before"]),
        ("/access-log", {"since": FAR_BACK}, ["query", "since"]),
        ("/audit/reconcile", {"since": FAR_BACK}, ["query", "since"]),
        (f"/audit/referrals/{UNKNOWN}/as-of", {"at": FAR_BACK}, ["query", "at"]),
    ]
    for path, params, loc in refusals:
        response = await api.get(path, params=params, headers=auth("auditor"))
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["errors"][0]["loc"] == loc, (path, response.text)
    month = await api.post("/audit/samples", params={"month": "0000-01"}, headers=auth("auditor"))
    assert month.status_code == 422 and month.json()["errors"][0]["loc"] == ["query", "month"]


# runpy warns that it loads a second copy of a loaded module: that second copy is what this test is about.
@pytest.mark.filterwarnings("ignore:'api.app' found in sys.modules:RuntimeWarning")
async def test_the_api_run_as_a_script_answers_404_for_an_unknown_referral(api_app, auth, time_env, pool, settings):
    # A second copy of the app module (as runpy loads it): its routes must still answer 404.
    script = runpy.run_module("api.app", run_name="as_a_script")
    services = api_app.state.services
    app = script["create_app"](
        services.client, pool, services.settings, authenticator=services.authenticator,
        sla_policy=services.sla_policy, clock=services.clock,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        for route in ("timeline", "as-of?at=2030-01-01T00:00:00Z", "replay"):
            response = await client.get(f"/audit/referrals/{UNKNOWN}/{route}", headers=auth("auditor"))
            assert response.status_code == 404, (route, response.text)
        assert (await client.get(f"/referrals/{UNKNOWN}", headers=auth("auditor"))).status_code == 404
