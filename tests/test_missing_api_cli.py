"""Missing episodes end to end: from the report to closure through the API, then through the CLI alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

from starter.synthetic import synthetic_missing_report
from tests.api_fixtures import api, api_app, auth, authenticator, tokens, track  # noqa: F401
from tests.helpers import eventually, finished, seeded, start_episode
from tests.test_cli import Cli, api_url, cli, logs_beside_the_cli  # noqa: F401
from workflows.facts import FACTS, FactKind
from workflows.missing_models import RiskIndicator
from workflows.models import MissingGrade


async def test_an_episode_from_report_to_closure_through_the_api(api, auth, time_env, pool):
    report = synthetic_missing_report(
        rng=seeded("api"), grade=MissingGrade.LOW, indicators=[RiskIndicator.UNDER_12, RiskIndicator.FIRST_EPISODE]
    )
    body = report.model_dump(mode="json")
    response = await api.post("/missing-episodes", json=body, headers=auth("officer"))
    assert response.status_code == 201, response.text
    intake = response.json()
    episode = intake["episode_id"]
    track(time_env.client, episode)
    assert episode.startswith("MIS-") and report.child.name.split()[0] not in episode
    assert (intake["grade"], intake["low_grade_pending"], intake["created"]) == ("high", True, True)
    again = await api.post("/missing-episodes", json=body, headers=auth("officer"))
    assert (again.status_code, again.json()["episode_id"], again.json()["created"]) == (200, episode, False)
    refused = await api.post("/missing-episodes", json=body, headers=auth("health-partner"))
    assert (refused.status_code, refused.json()["field"]) == (403, "actor.role")
    future = body | {"missing_since": (await time_env.get_current_time() + timedelta(hours=1)).isoformat()}
    invalid = await api.post("/missing-episodes", json=future, headers=auth("officer"))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["body", "missing_since"]

    keep = {"keep_low": True, "rationale": "Synthetic: with a grandparent, known to be safe."}
    denied = await api.post(f"/missing-episodes/{episode}/low-grade", json=keep, headers=auth("officer"))
    assert (denied.status_code, denied.json()["field"]) == (403, "actor.role")
    kept = await api.post(f"/missing-episodes/{episode}/low-grade", json=keep, headers=auth("sergeant"))
    assert kept.status_code == 200, kept.text
    assert (kept.json()["grade"], kept.json()["low_grade_pending"]) == ("low", False)

    traced = await api.post(f"/missing-episodes/{episode}/tracing", json={"activity": "associates_contacted"},
                            headers=auth("officer"))
    assert traced.status_code == 200 and traced.json()["last_tracing_at"] is not None
    now = await time_env.get_current_time()
    review = {"tracing_done": "Synthetic: friends called.", "next_steps": "Synthetic: check the park.",
              "tracing_actions": [{"description": "Synthetic: search the park.", "deadline": (now + timedelta(hours=6)).isoformat(),
                                   "owner": {"agency": "police", "owner": "PC Synthetic", "supervisor": "PS Synthetic"}}]}
    reviewed = await api.post(f"/missing-episodes/{episode}/review", json=review, headers=auth("sergeant"))
    assert reviewed.status_code == 200 and len(reviewed.json()["actions"]) == 1

    found_at = (await time_env.get_current_time()).isoformat()
    found = {"found_at": found_at, "where": "public_place", "how": "found_by_police", "safe_and_well": "safe_and_well",
             "safe_and_well_at": found_at,
             "interviewer": {"agency": "health", "owner": "Synthetic", "supervisor": "Synthetic Lead"}}
    wrong_agency = await api.post(f"/missing-episodes/{episode}/found", json=found, headers=auth("officer"))
    assert wrong_agency.status_code == 422 and wrong_agency.json()["errors"][0]["loc"] == ["body", "interviewer", "agency"]
    found["interviewer"] = {"agency": "childrens_social_care", "owner": "SW Synthetic", "supervisor": "TM Synthetic"}
    returned = (await api.post(f"/missing-episodes/{episode}/found", json=found, headers=auth("officer"))).json()
    assert returned["phase"] == "returned" and returned["interview_action_id"] == f"{episode}.A2"

    outcome = {"outcome": "done", "held_at": (await time_env.get_current_time()).isoformat(),
               "intelligence_for_police": "Synthetic: names a place."}
    not_theirs = await api.post(f"/missing-episodes/{episode}/return-home-interview", json=outcome,
                                headers=auth("health-partner"))
    assert (not_theirs.status_code, not_theirs.json()["field"]) == (403, "actor.agency")
    completed = await api.post(f"/actions/{returned['interview_action_id']}/completion",
                               json={"note": "Synthetic: interview held."}, headers=auth("social-worker"))
    assert completed.status_code == 200, completed.text
    recorded = await api.post(f"/missing-episodes/{episode}/return-home-interview", json=outcome,
                              headers=auth("social-worker"))
    assert recorded.status_code == 200 and recorded.json()["interview_outcome"] == "done"

    await finished(time_env, time_env.client.get_workflow_handle(episode))
    final = (await api.get(f"/missing-episodes/{episode}", headers=auth("auditor"))).json()
    assert final["phase"] == "closed"
    assert [h["kind"] for h in final["history"]] == [
        "missing_reported", "low_grade_decided", "tracing_recorded", "episode_reviewed", "child_found",
        "interview_recorded",
    ]
    listed = await eventually(
        lambda: api.get("/missing-episodes", params={"phase": "closed"}, headers=auth("auditor")),
        lambda r: episode in [e["episode_id"] for e in r.json()["items"]],
    )
    (row,) = [e for e in listed.json()["items"] if e["episode_id"] == episode]
    assert (row["grade"], row["interview_outcome"], row["overdue"]) == ("low", "done", False)
    assert await pool.fetchval(
        "SELECT count(*) FROM access_log WHERE reference = $1 AND action = 'show_missing_episode'", episode
    ) == 1


async def test_an_episode_from_report_to_closure_through_the_cli(cli, time_env, tmp_path):
    report = synthetic_missing_report(rng=seeded("cli"), grade=MissingGrade.HIGH,
                                      indicators=[RiskIndicator.CSE_CONCERN, RiskIndicator.IN_CARE])
    form = tmp_path / "missing.json"
    form.write_text(report.model_dump_json())
    intake = await cli.json("officer", "missing", "report", form)
    episode = intake["episode_id"]
    track(time_env.client, episode)
    assert intake["grade"] == "high" and "already reported" in (await cli("officer", "missing", "report", form)).stdout

    refused = await cli("sergeant", "missing", "review", episode, "--tracing-done", "Synthetic.", "--next-steps",
                        "Synthetic.", exit_code=4)
    assert "actor.rank" in refused.stderr
    await cli("officer", "missing", "tracing", episode, "--activity", "cctv_reviewed")
    reviewed = await cli.json("inspector", "missing", "review", episode, "--tracing-done", "Synthetic: CCTV.",
                              "--next-steps", "Synthetic: associates.")
    assert len(reviewed["reviews"]) == 1
    regraded = await cli.json("inspector", "missing", "grade", episode, "--to", "medium", "--reason", "Synthetic.")
    assert regraded["grade"] == "medium"

    returned = await cli.json("officer", "missing", "found", episode, "--where", "care_placement", "--how",
                              "returned_themselves", "--safe-and-well", "safe_and_well", "--interviewer",
                              "SW Synthetic", "--manager", "TM Synthetic")
    assert returned["phase"] == "returned"
    await cli("social-worker", "actions", "complete", returned["interview_action_id"], "--note", "Synthetic: declined.")
    await cli("social-worker", "missing", "interview", episode, "--outcome", "declined", "--reasons",
              "Synthetic: did not wish to speak.")
    await finished(time_env, time_env.client.get_workflow_handle(episode))

    table = (await cli("auditor", "missing", "show", episode)).stdout
    assert "closed" in table and FACTS[FactKind.CHILD_FOUND].label in table and report.child.name not in table
    listed = await eventually(lambda: cli.json("auditor", "missing", "list", "--phase", "closed"),
                              lambda page: episode in [e["episode_id"] for e in page["items"]])
    assert [e["interview_outcome"] for e in listed["items"] if e["episode_id"] == episode] == ["declined"]
    await cli("auditor", "missing", "show", "MIS-0000-0000", exit_code=5)


async def test_the_most_frequently_missing_children_are_listed_live_by_their_latest_episode(
    api, auth, cli, time_env, time_queue, sla_policy
):
    first = synthetic_missing_report(rng=seeded("frequent-child"))
    handles = []
    for report in [first] + [first.model_copy(update={"report_id": uuid.uuid4()}) for _ in range(3)]:
        handles.append((await start_episode(time_env.client, time_queue, sla_policy, report))[1])
    latest = handles[-1].id

    def child(listing: dict) -> list[dict]:
        return [c for c in listing["items"] if c["latest_episode_id"] == latest]

    listed = await eventually(
        lambda: api.get("/missing-episodes/most-frequent", params={"limit": 100}, headers=auth("auditor")),
        lambda r: r.status_code == 200 and child(r.json()),
    )
    (row,) = child(listed.json())
    assert (row["episodes"], row["open_episodes"], row["missing_now"], row["repeat_missing"]) == (4, 4, True, True)
    # Most first, and each child once: none of the earlier episodes names the child again.
    counts = [c["episodes"] for c in listed.json()["items"]]
    assert counts == sorted(counts, reverse=True)
    assert not {h.id for h in handles[:-1]} & {c["latest_episode_id"] for c in listed.json()["items"]}
    assert first.child.name not in listed.text and first.child.date_of_birth.isoformat() not in listed.text
    assert (await api.get("/missing-episodes/most-frequent", headers=auth("officer"))).status_code == 403
    assert (await api.get("/missing-episodes/most-frequent", params={"limit": 0}, headers=auth("sergeant"))
            ).status_code == 422

    table = (await cli("screener", "missing", "most-frequent", "--limit", "100")).stdout
    assert latest in table and "REPEAT" in table and first.child.name not in table


async def test_a_call_handler_reports_a_child_missing_and_does_nothing_else(api, auth, time_env, pool):
    report = synthetic_missing_report(rng=seeded("call-handler"))
    response = await api.post("/missing-episodes", json=report.model_dump(mode="json"), headers=auth("call-handler"))
    assert response.status_code == 201, response.text
    episode = response.json()["episode_id"]
    track(time_env.client, episode)
    row = await eventually(lambda: pool.fetchrow("SELECT reported_by FROM missing_episodes WHERE episode_id = $1", episode),
                           lambda r: r is not None)
    assert row["reported_by"] == "CH-3501"
    # The report's own answer is theirs; no case is: neither the episode, nor the lists, nor a decision on it.
    for method, path, body in (
        ("GET", f"/missing-episodes/{episode}", None),
        ("GET", "/missing-episodes", None),
        ("GET", "/referrals", None),
        ("POST", f"/missing-episodes/{episode}/tracing", {"activity": "cctv_reviewed"}),
        ("POST", f"/missing-episodes/{episode}/found", {}),
    ):
        answer = await api.request(method, path, json=body, headers=auth("call-handler"))
        assert (answer.status_code, answer.json()["field"]) == (403, "actor.role"), (path, answer.text)
