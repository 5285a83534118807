"""The auditors' routes: timeline, past state, replay, reconciliation and the sample, each read in the access log."""

from __future__ import annotations

import random

from starter.synthetic import screening, synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import finished
from workflows.models import ScreeningOutcome

UNKNOWN = "REF-00000-00000"


async def screened_referral(api, auth, time_env, seed: str) -> str:
    submission = synthetic_vist(rng=random.Random(f"audit-api:{seed}"))
    created = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    track(time_env.client, reference)
    assert (await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True},
                           headers=auth("sergeant"))).status_code == 200
    body = screening(submission, ScreeningOutcome.NO_FURTHER_ACTION).details()
    answer = await api.post(f"/referrals/{reference}/screening", json=body, headers=auth("screener"))
    assert answer.status_code == 200, answer.text
    told = await api.post(f"/actions/{reference}.A1/completion", json={"note": "Synthetic: told."}, headers=auth("screener"))
    assert told.status_code == 200, told.text
    # Closed once told: its history whole before the auditor reads it.
    await finished(time_env, time_env.client.get_workflow_handle(reference))
    return reference


async def audit_reads(pool, reference: str | None, action: str) -> list[dict]:
    rows = await pool.fetch(
        """SELECT actor_id, actor_role, channel, reference, detail FROM access_log
           WHERE action = $1 AND reference IS NOT DISTINCT FROM $2""",
        action,
        reference,
    )
    return [dict(r) for r in rows]


async def test_an_auditor_reads_a_referrals_timeline_past_state_and_replay(api, auth, time_env, pool):
    reference = await screened_referral(api, auth, time_env, "1")
    base = f"/audit/referrals/{reference}"

    timeline = await api.get(f"{base}/timeline", headers=auth("auditor"))
    assert timeline.status_code == 200, timeline.text
    kinds = [d["kind"] for d in timeline.json()["decisions"]]
    assert timeline.json()["reference"] == reference and "screened" in kinds
    html = await api.get(f"{base}/timeline", params={"format": "html"}, headers=auth("admin"))
    assert html.headers["content-type"].startswith("text/html") and html.text.startswith("<!DOCTYPE html>")
    assert (await api.get(f"{base}/timeline", params={"format": "pdf"}, headers=auth("auditor"))).status_code == 422

    screened_at = next(d["at"] for d in timeline.json()["decisions"] if d["kind"] == "screened")
    state = await api.get(f"{base}/as-of", params={"at": screened_at}, headers=auth("auditor"))
    assert state.status_code == 200, state.text
    assert state.json()["reference"] == reference and state.json()["screening_outcome"] == "no_further_action"
    for at in ("2030-01-01T09:00:00", "not a time", "2001-01-01T00:00:00+00:00", None):
        refused = await api.get(f"{base}/as-of", params={"at": at} if at else {}, headers=auth("auditor"))
        assert refused.status_code == 422, (at, refused.text)
        assert [e["loc"] for e in refused.json()["errors"]] == [["query", "at"]]

    replay = await api.get(f"{base}/replay", headers=auth("auditor"))
    assert replay.status_code == 200, replay.text
    # The referral's history and its notification to children's social care's (an agreed action).
    assert {(h["workflow_id"], h["status"]) for h in replay.json()["histories"]} == {(reference, "ok"),
                                                                                     (f"{reference}.A1", "ok")}

    # Each successful read once, under its reader; the refused ones (422) read nothing.
    expected = {"audit_timeline": ["ADM-9001", "AUD-4001"], "audit_as_of": ["AUD-4001"], "audit_replay": ["AUD-4001"]}
    for action, readers in expected.items():
        reads = await audit_reads(pool, reference, action)
        assert sorted(r["actor_id"] for r in reads) == readers, (action, reads)
        assert {r["channel"] for r in reads} == {"audit"}


async def test_other_roles_are_refused_and_unknown_referrals_are_not_found(api, auth):
    routes = [("GET", f"/audit/referrals/{UNKNOWN}/timeline", {}),
              ("GET", f"/audit/referrals/{UNKNOWN}/as-of", {"at": "2024-01-01T00:00:00+00:00"}),
              ("GET", f"/audit/referrals/{UNKNOWN}/replay", {}),
              ("GET", "/audit/reconcile", {"reference": UNKNOWN})]
    for method, path, params in routes:
        for user in ("sergeant", "officer", "screener", "health-partner"):
            refused = await api.request(method, path, params=params, headers=auth(user))
            assert refused.status_code == 403 and refused.json()["field"] == "actor.role", (path, user)
        missing = await api.request(method, path, params=params, headers=auth("auditor"))
        assert missing.status_code == 404 and missing.json()["field"] == "reference", (path, missing.text)
    assert (await api.get("/audit/referrals/not-a-reference/timeline", headers=auth("auditor"))).status_code == 404
    assert (await api.get("/audit/reconcile", params={"reference": "x"}, headers=auth("auditor"))).status_code == 404
    assert (await api.post("/audit/samples", params={"month": "2019-11"}, headers=auth("sergeant"))).status_code == 403
    assert (await api.get("/audit/reconcile")).status_code == 401


async def test_reconcile_through_the_api(api, auth, time_env, pool):
    reference = await screened_referral(api, auth, time_env, "2")
    report = await api.get("/audit/reconcile", params={"reference": reference}, headers=auth("auditor"))
    assert report.status_code == 200, report.text
    assert report.json()["referrals"] == 1 and report.json()["facts"] > 0 and report.json()["mismatches"] == []
    # A London time the clocks skip is no moment at all.
    naive = await api.get("/audit/reconcile", params={"since": "2026-03-29T01:30:00"}, headers=auth("auditor"))
    assert naive.status_code == 422 and naive.json()["errors"][0]["loc"] == ["query", "since"]
    (read,) = await audit_reads(pool, reference, "audit_reconcile")
    assert read["channel"] == "audit" and read["actor_id"] == "AUD-4001"


async def test_the_monthly_sample_through_the_api_is_the_same_for_the_same_month_and_seed(api, auth, pool):
    params = {"month": "2019-11", "seed": 31}
    first = await api.post("/audit/samples", params=params, headers=auth("auditor"))
    assert first.status_code == 200, first.text
    again = await api.post("/audit/samples", params=params, headers=auth("admin"))
    assert again.json() == first.json() and first.json()["drawn_by"] == "AUD-4001"
    for bad in ({"month": "2019-13"}, {"month": "November"}, {}, {"month": "2019-11", "seed": -1},
                {"month": "2019-11", "seed": 2**40}):
        refused = await api.post("/audit/samples", params=bad, headers=auth("auditor"))
        assert refused.status_code == 422, (bad, refused.text)
    reads = await audit_reads(pool, None, "audit_sample")
    assert {(r["actor_id"], r["channel"]) for r in reads} >= {("AUD-4001", "audit"), ("ADM-9001", "audit")}
