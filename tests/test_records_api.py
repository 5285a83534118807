"""The API's records routes (access log, retention) and what a partner agency may read."""

from __future__ import annotations

import random

from starter.synthetic import screening, strategy_discussion, synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import eventually
from workflows.models import ScreeningOutcome


async def referral_with_a_health_action(api, auth, time_env, seed: str) -> str:
    submission = synthetic_vist(rng=random.Random(f"records-api:{seed}"))
    created = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    track(time_env.client, reference)
    await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True}, headers=auth("sergeant"))
    body = screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION).details()
    assert (await api.post(f"/referrals/{reference}/screening", json=body, headers=auth("screener"))).status_code == 200
    now = await time_env.get_current_time()
    body = strategy_discussion(now, section_47=False, actions=2).details()
    answer = await api.post(f"/referrals/{reference}/strategy-discussion", json=body, headers=auth("screener"))
    assert answer.status_code == 200, answer.text
    return reference


async def test_a_partner_sees_only_its_own_actions(api, auth, time_env):
    reference = await referral_with_a_health_action(api, auth, time_env, "1")
    full = (await api.get(f"/referrals/{reference}", headers=auth("screener"))).json()
    assert {a["owner"]["agency"] for a in full["actions"]} == {"health", "childrens_social_care"}
    assert full["history"] and full["screening_view"] is not None

    seen = await api.get(f"/referrals/{reference}", headers=auth("health-partner"))
    assert seen.status_code == 200
    view = seen.json()
    assert [a["owner"]["agency"] for a in view["actions"]] == ["health"]
    assert view["history"] == [] and view["screening_view"] is None and view["escalations"] == []

    assert (await api.get(f"/referrals/{reference}", headers=auth("housing-partner"))).status_code == 403
    assert (await api.get("/referrals", headers=auth("health-partner"))).status_code == 403


async def test_auditors_read_the_access_log(api, auth, time_env):
    reference = await referral_with_a_health_action(api, auth, time_env, "2")
    await api.get(f"/referrals/{reference}", headers=auth("sergeant"))
    assert (await api.get("/access-log", headers=auth("sergeant"))).status_code == 403
    entries = await eventually(
        lambda: api.get("/access-log", params={"reference": reference}, headers=auth("auditor")),
        lambda r: r.status_code == 200 and len(r.json()) >= 1,
    )
    (entry,) = [e for e in entries.json() if e["action"] == "show_referral"]
    assert entry["actor_id"] == "PS-2001" and entry["channel"] == "api"
    # The auditor's own reading of the log is recorded too.
    again = (await api.get("/access-log", params={"reference": reference}, headers=auth("auditor"))).json()
    assert any(e["action"] == "read_access_log" and e["actor_id"] == "AUD-4001" for e in again)


async def test_retention_is_for_administrators(api, auth):
    assert (await api.get("/retention", headers=auth("sergeant"))).status_code == 403
    assert (await api.post("/retention/purge", headers=auth("auditor"))).status_code == 403
    dry_run = await api.get("/retention", headers=auth("admin"))
    assert dry_run.status_code == 200 and dry_run.json()["dry_run"] is True
