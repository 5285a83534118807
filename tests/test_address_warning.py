"""An officer asks, before attending, whether an address has children at risk: counts only, and every enquiry logged."""

from __future__ import annotations

import json
import random

from starter.synthetic import synthetic_missing_report, synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import eventually, start_episode, start_referral
from tests.test_screening_history import closed_with_a_plan
from workflows.missing_models import MissingChild

ADDRESS = "12 Warning Walk, Testtown TT1212"


async def ask(api, auth, address: str, user: str = "officer", status: int = 200) -> dict:
    response = await api.post("/address-warnings", json={"address": address}, headers=auth(user))
    assert response.status_code == status, response.text
    return response.json()


async def test_an_address_with_children_at_risk_is_answered_with_counts_and_every_enquiry_is_logged(
    api, auth, time_env, time_queue, sla_policy, pool
):
    # A child on a plan made at an earlier referral's conference lives at the address.
    planned_form = synthetic_vist(rng=random.Random("address:planned"), address=ADDRESS)
    child = planned_form.children[0]
    _, planned = await start_referral(time_env.client, time_queue, sla_policy, submission=planned_form)
    await closed_with_a_plan(time_env, planned, planned_form)

    # Nothing open at the address yet: a plan alone is about a child, the referral that made it is closed.
    assert await ask(api, auth, ADDRESS) == {
        "children_at_risk": True, "open_referrals": 0, "children_on_plans": 1, "children_missing": 0}

    # A new referral about the child, submitted through the API, and the child missing now.
    again = synthetic_vist(rng=random.Random("address:again"), address=ADDRESS)
    again.children[0] = child
    response = await api.post("/referrals", json=form_json(again), headers=auth("officer"))
    assert response.status_code == 201, response.text
    track(time_env.client, response.json()["reference"])
    report = synthetic_missing_report(rng=random.Random("address:missing"))
    await start_episode(time_env.client, time_queue, sla_policy, report.model_copy(
        update={"child": MissingChild(name=child.name, date_of_birth=child.date_of_birth)}))
    warning = await eventually(lambda: ask(api, auth, "12  warning walk, TESTTOWN tt1212"),
                               lambda w: w["open_referrals"] == 1)
    assert warning == {"children_at_risk": True, "open_referrals": 1, "children_on_plans": 1, "children_missing": 1}

    # Another address: nothing known.
    assert await ask(api, auth, "13 Quiet Close, Testtown TT1313", user="sergeant") == {
        "children_at_risk": False, "open_referrals": 0, "children_on_plans": 0, "children_missing": 0}
    # Police on duty and the CRU may ask; a partner agency may not.
    await ask(api, auth, ADDRESS, user="health-partner", status=403)

    rows = await pool.fetch(
        "SELECT actor_id, channel, detail FROM access_log WHERE action = 'address_warning' ORDER BY id DESC LIMIT 3")
    assert [(r["actor_id"], r["channel"], json.loads(r["detail"])) for r in rows] == [
        ("PS-2001", "api", {"children_at_risk": False}),
        ("PC-1001", "api", {"children_at_risk": True}),
        ("PC-1001", "api", {"children_at_risk": True}),
    ]
    # The log says who asked and what they were told, never where.
    assert "Warning Walk" not in str([dict(r) for r in rows]) and "warning walk" not in str([dict(r) for r in rows])
