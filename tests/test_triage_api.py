"""A day's triage end to end through the HTTP API: opened, read with each referral's history, decided, escalated and acknowledged."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.helpers import STARTED, advance_to, eventually, next_local, sign_in
from tests.test_triage import at, listed_in_read_model, referral_at
from workflows.models import RiskGrade
from workflows.triage import DailyTriageWorkflow

# Made-up families with no past: every list of their history is empty.
EMPTY_HISTORY = {"prior_referrals": [], "missing_episodes": [], "children_on_plans": [], "adults": []}


async def cookie(api, tokens: dict[str, str], user: str) -> dict[str, str]:
    return (await sign_in(api, tokens[user])).headers


def queue_row(page: str, triage_id: str, reference: str) -> str:
    """The dashboard triage queue's row for one referral on one day's list."""
    (row,) = re.findall(rf'<tr data-triage="{triage_id}" data-reference="{reference}">.*?</tr>', page, re.S)
    return row


async def test_a_days_triage_through_the_api(api, auth, tokens, time_env, pool, time_queue, sla_policy):
    thursday = (await next_local(time_env, weekday=3, hour=9, after_days=3, avoiding=sla_policy.bank_holidays)).date()
    wednesday, friday = thursday - timedelta(days=1), thursday + timedelta(days=1)
    first = await referral_at(time_env, time_queue, sla_policy, at(wednesday, 10), 30, risk=RiskGrade.STANDARD)
    second = await referral_at(time_env, time_queue, sla_policy, at(wednesday, 11), 31, risk=RiskGrade.MEDIUM)
    for reference in (first, second):
        await listed_in_read_model(pool, reference)
    await advance_to(time_env, at(thursday, 7, 30))
    path = f"/triage/{thursday.isoformat()}"

    # Opened by hand (the schedule does it at 07:00): not before its day, not on a weekend, once.
    assert (await api.post(f"/triage/{friday.isoformat()}", headers=auth("screener"))).status_code == 422
    weekend = await api.post(f"/triage/{(thursday - timedelta(days=4)).isoformat()}", headers=auth("screener"))
    assert weekend.status_code == 422 and "not a working day" in weekend.text
    assert (await api.post(path, headers=auth("officer"))).status_code == 403
    opened = await api.post(path, headers=auth("screener"))
    assert opened.status_code == 201, opened.text
    STARTED.append(time_env.client.get_workflow_handle(opened.json()["triage_id"]))
    again = await api.post(path, headers=auth("admin"))
    assert again.status_code == 200 and again.json()["triage_id"] == f"TRIAGE-{thursday.isoformat()}"

    triage = await eventually(lambda: api.get(path, headers=auth("auditor")), lambda r: r.json()["listed"])
    body = triage.json()
    assert {item["reference"] for item in body["items"]} == {first, second}
    assert all(item["children"] == 1 and item["history"] == EMPTY_HISTORY for item in body["items"])
    assert (await api.get(path, headers=auth("health-partner"))).status_code == 403
    assert (await api.get("/triage/2026-02-30", headers=auth("auditor"))).status_code == 422
    far_back = await api.post("/triage/0633-05-13", headers=auth("screener"))
    assert far_back.status_code == 422 and "must lie between 1900 and 2200" in far_back.text

    # The dashboard's queue: both waiting, in time, with how long each has waited since it was received.
    auditor = await cookie(api, tokens, "auditor")
    queue = await eventually(lambda: api.get("/dashboard/triage", headers=auditor),
                             lambda r: r.status_code == 200 and first in r.text and second in r.text)
    # Only this day's rows: a list opened on the dev server's real day (tests/test_triage.py) may wait in the
    # same read model, late by this server's clock.
    for reference in (first, second):
        row = queue_row(queue.text, f"TRIAGE-{thursday.isoformat()}", reference)
        assert "left</td>" in row and "late by" not in row
    assert (await api.get("/dashboard/triage", headers=await cookie(api, tokens, "health-partner"))).status_code == 403

    decisions = f"{path}/decisions"
    decision = {"reference": first, "outcome": "joint_visit", "rationale": "Synthetic: history of two callouts."}
    assert (await api.post(decisions, json=decision, headers=auth("officer"))).status_code == 403
    unknown_outcome = await api.post(decisions, json=decision | {"outcome": "ignore"}, headers=auth("screener"))
    assert unknown_outcome.status_code == 422 and "outcome" in unknown_outcome.text
    unlisted = await api.post(decisions, json=decision | {"reference": "REF-00000-00000"}, headers=auth("screener"))
    assert unlisted.status_code == 409 and "not on this day's triage list" in unlisted.json()["detail"]
    decided = await api.post(decisions, json=decision, headers=auth("screener"))
    assert decided.status_code == 200, decided.text
    assert next(i for i in decided.json()["items"] if i["reference"] == first)["outcome"] == "joint_visit"
    # The decision reaches the referral's own view: its meetings, and its page on the dashboard.
    meetings = await eventually(lambda: api.get(f"/referrals/{first}/meetings", headers=auth("screener")),
                                lambda r: r.json()["triage"] and r.json()["triage"][0]["outcome"] is not None)
    assert [(t["triage_id"], t["outcome"]) for t in meetings.json()["triage"]] == [(f"TRIAGE-{thursday.isoformat()}", "joint_visit")]
    page = await api.get(f"/dashboard/referrals/{first}", headers=await cookie(api, tokens, "screener"))
    assert f'data-meeting="TRIAGE-{thursday.isoformat()}"' in page.text and "joint visit" in page.text

    # The other is not decided by the end of the day: the MASH's sergeant is alerted, and acknowledges.
    await advance_to(time_env, at(friday, 0, 1))
    # (The referral's own supervisor review is late too: its escalations are the referral's, not the triage's.)
    escalation = (await eventually(
        lambda: triage_escalations(api, auth, second), lambda items: len(items) == 1,
    ))[0]
    assert (escalation["subject"], escalation["addressed_to"]) == ("triage", "sergeant, MASH")
    assert escalation["escalation_id"] == f"TRIAGE-{thursday.isoformat()}.E1"
    queue = (await api.get("/dashboard/triage", headers=auditor)).text
    assert second in queue and first not in queue
    assert "late by" in queue_row(queue, f"TRIAGE-{thursday.isoformat()}", second)
    ack = await api.post(f"/escalations/{escalation['escalation_id']}/acknowledgement", headers=auth("sergeant"))
    assert ack.status_code == 200, ack.text
    assert ack.json()["escalations"][0]["acknowledged_by"] == "PS-2001"

    late = await api.post(decisions, json={"reference": second, "outcome": "no_further_action",
                                           "rationale": "Synthetic: no history, victim supported."},
                          headers=auth("sergeant"))
    assert late.status_code == 200, late.text
    handle = time_env.client.get_workflow_handle_for(DailyTriageWorkflow.run, f"TRIAGE-{thursday.isoformat()}")
    with time_env.auto_time_skipping_disabled():
        result = await handle.result()
    assert [item.decided for item in result.items] == [True, True]
    closed = await api.post(decisions, json=decision, headers=auth("screener"))
    assert closed.status_code == 409 and "finished" in closed.json()["detail"]

    # The audit's reconciliation reads each referral's triage facts from the triage's history: nothing is amiss.
    report = await eventually(
        lambda: api.get("/audit/reconcile", params={"reference": second}, headers=auth("auditor")),
        lambda r: r.status_code == 200 and r.json()["in_flight"] == 0,
    )
    assert report.json()["mismatches"] == []
    assert report.json()["facts"] > 4


async def triage_escalations(api, auth, reference: str) -> list[dict]:
    response = await api.get("/escalations", params={"reference": reference}, headers=auth("auditor"))
    return [e for e in response.json()["items"] if e["subject"] == "triage"]
