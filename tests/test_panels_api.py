"""A panel sitting end to end through the HTTP API: three cases from agenda to minutes, a grade on the live episode,
an absent required attendee escalated and acknowledged, and the actions completed by their owners' agencies; then one
through the CLI alone."""

from __future__ import annotations

import uuid
from datetime import timedelta

from starter.synthetic import synthetic_missing_report, synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, tokens  # noqa: F401
from tests.test_cli import Cli, api_url, cli, logs_beside_the_cli  # noqa: F401
from tests.test_triage_api import cookie
from tests.helpers import advance_to, eventually, finished, seeded, start_episode, start_referral
from tests.test_panels import a_panel, in_read_model, sitting_of
from workflows.missing_models import RiskIndicator
from workflows.models import IncidentType
from workflows.panel import PanelOpeningWorkflow, PanelSittingWorkflow
from workflows.panel_models import AgendaCriterion, PanelOpening, SittingPhase


def action(agency: str, owner: str, deadline: str, description: str) -> dict:
    return {"description": description, "owner": {"agency": agency, "owner": owner}, "deadline": deadline}


async def test_a_panel_sitting_with_three_cases_from_agenda_to_minutes_through_the_api(
    api, auth, tokens, time_env, pool, time_queue, sla_policy
):
    await advance_to(time_env, await time_env.get_current_time() + timedelta(days=120))
    _, episode = await start_episode(
        time_env.client, time_queue, sla_policy,
        report=synthetic_missing_report(rng=seeded("api-panel-cse"), indicators=[RiskIndicator.CSE_CONCERN]),
    )
    _, cse = await start_referral(time_env.client, time_queue, sla_policy,
                                  submission=synthetic_vist(rng=seeded("api-panel-vist"), incident_type=IncidentType.CSE))
    _, referred = await start_referral(time_env.client, time_queue, sla_policy, seed="api-panel-referred")
    for table, column, value in (("missing_episodes", "episode_id", episode.id), ("referrals", "reference", cse.id),
                                 ("referrals", "reference", referred.id)):
        await in_read_model(pool, table, column, value)
    before = (await api.get(f"/missing-episodes/{episode.id}", headers=auth("sergeant"))).json()

    # The panel's cadence opens the sitting (its schedule's run), its agenda built by the criteria.
    panel = a_panel(agenda_days_before=3)
    opened = await time_env.client.execute_workflow(
        PanelOpeningWorkflow.run, PanelOpening(panel=panel, policy=sla_policy), id=f"panel-{uuid.uuid4().hex[:8]}",
        task_queue=time_queue,
    )
    sitting_of(time_env, opened.sitting_id)
    path = f"/panel-sittings/{opened.sitting_id}"
    sitting = await eventually(lambda: api.get(path, headers=auth("screener")), lambda r: r.json()["agenda_built"])
    assert {i["case_id"]: i["reasons"] for i in sitting.json()["agenda"]} == {
        episode.id: ["cse_concern"], cse.id: ["cse_concern"]}
    assert (await api.get(path, headers=auth("health-partner"))).status_code == 403
    assert (await api.get("/panel-sittings/PANEL-X-2026-01-01", headers=auth("screener"))).status_code == 404
    upcoming = await eventually(lambda: api.get("/panel-sittings", params={"upcoming": True, "panel_id": panel.panel_id},
                                                headers=auth("auditor")),
                                lambda r: len(r.json()) == 1)
    assert (upcoming.json()[0]["sitting_id"], upcoming.json()[0]["cases"]) == (opened.sitting_id, 2)

    # Before the meeting: a member agency refers a third case; an unknown case or a non-member agency is refused.
    edit = {"add": [{"case_id": referred.id, "referred_by": "education"}], "reason": "Synthetic: school's concern."}
    unknown = await api.post(f"{path}/agenda", json=edit | {"add": [{"case_id": "REF-00000-00000", "referred_by": "education"}]},
                             headers=auth("screener"))
    assert unknown.status_code == 422 and "no such referral or missing episode" in unknown.text
    housing = await api.post(f"{path}/agenda", json=edit | {"add": [{"case_id": referred.id, "referred_by": "housing"}]},
                             headers=auth("screener"))
    assert housing.status_code == 409 and "not a member agency" in housing.json()["detail"]
    assert (await api.post(f"{path}/agenda", json=edit, headers=auth("officer"))).status_code == 403
    edited = await api.post(f"{path}/agenda", json=edit, headers=auth("screener"))
    assert edited.status_code == 200, edited.text
    assert len(edited.json()["agenda"]) == 3

    # The meeting: the chair opens it; attendance by name, agency and role; the CSE team attends two cases only.
    assert (await api.post(f"{path}/meeting", json={}, headers=auth("screener"))).status_code == 403
    assert (await api.post(f"{path}/meeting", json={}, headers=auth("inspector"))).status_code == 200
    late_edit = await api.post(f"{path}/agenda", json=edit, headers=auth("screener"))
    assert late_edit.status_code == 409 and "in_session" in late_edit.json()["detail"]
    attendance = {"attendees": [
        {"name": "SW Synthetic", "agency": "childrens_social_care", "role": "Social worker", "named_role": "allocated_social_worker"},
        {"name": "PC Synthetic", "agency": "police", "role": "Officer in case", "named_role": "allocated_officer"},
        {"name": "DS Synthetic", "agency": "police", "role": "CSE coordinator", "named_role": "cse_team",
         "case_ids": [episode.id, cse.id]},
        {"name": "Nurse Synthetic", "agency": "health", "role": "School nurse"},
    ]}
    recorded = await api.post(f"{path}/attendance", json=attendance, headers=auth("screener"))
    assert recorded.status_code == 200, recorded.text

    now = await time_env.get_current_time()
    due = (now + timedelta(days=10)).isoformat()
    no_deadline = {"case_id": episode.id, "grade": "high", "rationale": "Synthetic.",
                   "agreed_actions": [{"description": "Synthetic.", "owner": {"agency": "police", "owner": "DC Synthetic"}}]}
    refused = await api.post(f"{path}/outcomes", json=no_deadline, headers=auth("inspector"))
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["errors"]] == [["body", "agreed_actions", 0, "deadline"]]
    assert (await api.get(f"/missing-episodes/{episode.id}", headers=auth("sergeant"))).json()["grade"] == before["grade"]

    outcomes = [
        {"case_id": episode.id, "grade": "high", "rationale": "Synthetic: exploitation risk rising.",
         "agreed_actions": [action("police", "DC Synthetic", due, "Disruption visit.")]},
        {"case_id": cse.id, "grade": "high", "rationale": "Synthetic.",
         "agreed_actions": [action("childrens_social_care", "SW Synthetic", due, "Safety plan.")]},
        {"case_id": referred.id, "rationale": "Synthetic.",
         "agreed_actions": [action("health", "Nurse Synthetic", due, "Health review.")]},
    ]
    for outcome in outcomes:
        decided = await api.post(f"{path}/outcomes", json=outcome, headers=auth("inspector"))
        assert decided.status_code == 200, decided.text
        if outcome["case_id"] == episode.id:
            # The grade is on the live episode by the time the decision answers, and its deadlines moved.
            live = (await api.get(f"/missing-episodes/{episode.id}", headers=auth("sergeant"))).json()
            assert live["grade"] == "high" and live["review_due"] < before["review_due"]
    referral = (await api.get(f"/referrals/{cse.id}", headers=auth("sergeant"))).json()
    assert referral["risk"] == "high"
    state = decided.json()
    assert {i["case_id"]: i["absent_roles"] for i in state["agenda"]} == {
        episode.id: [], cse.id: [], referred.id: ["cse_team"]}
    (escalation,) = state["escalations"]
    assert (escalation["reason"], escalation["subject"]) == ("absent_attendee", f"cse_team at {referred.id}")
    absences = await eventually(lambda: api.get("/panel-sittings/absences", headers=auth("auditor")),
                                lambda r: any(a["sitting_id"] == opened.sitting_id for a in r.json()))
    (absence,) = [a for a in absences.json() if a["sitting_id"] == opened.sitting_id]
    assert (absence["case_id"], absence["named_role"], absence["escalation_id"], absence["open"]) == (
        referred.id, "cse_team", escalation["escalation_id"], True)
    sergeant = await cookie(api, tokens, "sergeant")
    inbox = await eventually(lambda: api.get("/dashboard/escalations", headers=sergeant),
                             lambda r: escalation["escalation_id"] in r.text)
    assert f'href="/dashboard/panels/{opened.sitting_id}"' in inbox.text
    ack = await api.post(f"/escalations/{escalation['escalation_id']}/acknowledgement", headers=auth("sergeant"))
    assert ack.status_code == 200, ack.text

    # The minutes, from the record.
    closed = await api.post(f"{path}/minutes", json={}, headers=auth("inspector"))
    assert closed.status_code == 200 and closed.json()["phase"] == "actions"
    minutes = (await api.get(f"{path}/minutes", headers=auth("auditor"))).json()
    cases = {case["case_id"]: case for case in minutes["cases"]}
    assert [a["name"] for a in minutes["attendees"]] == ["SW Synthetic", "PC Synthetic", "DS Synthetic", "Nurse Synthetic"]
    assert (cases[episode.id]["grade"], cases[episode.id]["grade_applied"]) == ("high", "applied")
    assert cases[referred.id]["absent_roles"] == ["cse_team"]
    assert "cse_team: DS Synthetic (police)" in cases[episode.id]["attended_by"]
    assert [(a["owner"]["agency"], a["deadline"] is not None) for c in minutes["cases"] for a in c["actions"]] == [
        ("police", True), ("childrens_social_care", True), ("health", True)]

    # The live cases' views link the sitting and what it decided for each.
    meetings = await eventually(lambda: api.get(f"/referrals/{cse.id}/meetings", headers=auth("screener")),
                                lambda r: r.json()["panels"] and r.json()["panels"][0]["grade_result"] == "applied")
    (listed_at,) = meetings.json()["panels"]
    assert (listed_at["sitting_id"], listed_at["grade"], len(listed_at["action_ids"])) == (opened.sitting_id, "high", 1)
    episode_meetings = (await api.get(f"/missing-episodes/{episode.id}/meetings", headers=auth("screener"))).json()
    assert [p["sitting_id"] for p in episode_meetings["panels"]] == [opened.sitting_id]
    assert (await api.get(f"/referrals/{cse.id}/meetings", headers=auth("health-partner"))).status_code == 403
    auditor = await cookie(api, tokens, "auditor")
    page = await api.get(f"/dashboard/referrals/{referred.id}", headers=auditor)
    assert f'data-meeting="{opened.sitting_id}"' in page.text

    # The dashboard: the sitting upcoming, the absence (acknowledged), the panel's three open actions; its agenda page.
    board = await eventually(lambda: api.get("/dashboard/panels", headers=auditor),
                             lambda r: r.status_code == 200 and opened.sitting_id in r.text)
    assert f'data-case="{referred.id}"' in board.text and "settled" in board.text
    assert all(f'data-action="{opened.sitting_id}.A{n}"' in board.text for n in (1, 2, 3))
    page = await api.get(f"/dashboard/panels/{opened.sitting_id}", headers=await cookie(api, tokens, "screener"))
    assert page.status_code == 200 and "cse_team: DS Synthetic (police)" in page.text
    assert f'href="/dashboard/missing/{episode.id}"' in page.text and f'href="/dashboard/referrals/{cse.id}"' in page.text
    assert (await api.get("/dashboard/panels", headers=await cookie(api, tokens, "health-partner"))).status_code == 403
    missing = await api.get("/dashboard/panels/PANEL-NOPE-2026-01-01", headers=auditor)
    assert missing.status_code == 404 and "No such sitting" in missing.text

    # Each action is completed by its owner's agency; another agency's partner may not.
    listed = await eventually(lambda: api.get("/panel-sittings/actions", headers=auth("auditor")),
                              lambda r: sum(a["sitting_id"] == opened.sitting_id for a in r.json()) == 3)
    ours = {a["agency"]: a for a in listed.json() if a["sitting_id"] == opened.sitting_id}
    assert ours["police"]["case_id"] == episode.id
    wrong = await api.post(f"/actions/{ours['health']['action_id']}/completion", json={"note": "Synthetic."},
                           headers=auth("social-worker"))
    assert wrong.status_code == 403 and "actor.agency" in wrong.text
    for agency, user in (("police", "officer"), ("childrens_social_care", "social-worker"), ("health", "health-partner")):
        done = await api.post(f"/actions/{ours[agency]['action_id']}/completion", json={"note": "Synthetic: done."},
                              headers=auth(user))
        assert done.status_code == 200, done.text
    result = await finished(time_env, time_env.client.get_workflow_handle_for(PanelSittingWorkflow.run, opened.sitting_id))
    assert result.phase is SittingPhase.CLOSED
    final = (await api.get(path, headers=auth("auditor")))
    assert final.status_code == 200 and final.json()["phase"] == "closed"
    assert all(a["completed_at"] for a in final.json()["actions"])

    # The audit reads the sitting like any case: its timeline, its state at a moment, its records reconciled.
    timeline = (await api.get(f"/audit/referrals/{opened.sitting_id}/timeline", headers=auth("auditor"))).json()
    assert {c["case_id"]: (c["grade"], c["grade_applied"], c["absent_roles"]) for c in timeline["cases"]} == {
        episode.id: ("high", "applied", []), cse.id: ("high", "applied", []), referred.id: (None, None, ["cse_team"])}
    assert all(a["timeliness"]["met"] for a in timeline["actions"]) and len(timeline["actions"]) == 3
    html = await api.get(f"/audit/referrals/{opened.sitting_id}/timeline", params={"format": "html"}, headers=auth("auditor"))
    assert html.status_code == 200 and "panel sitting" in html.text and "SW Synthetic" not in html.text
    as_of = await api.get(f"/audit/referrals/{opened.sitting_id}/as-of",
                          params={"at": (await time_env.get_current_time()).isoformat()}, headers=auth("auditor"))
    assert as_of.status_code == 200, as_of.text
    folded, answered = as_of.json(), final.json()
    for field in ("phase", "attendees", "absences", "held_at", "closed_at", "escalations", "history"):
        assert folded[field] == answered[field], field
    assert [{k: v for k, v in item.items() if k != "decided_by"} for item in folded["agenda"]] == [
        {k: v for k, v in item.items() if k != "decided_by"} for item in answered["agenda"]]
    report = await eventually(
        lambda: api.get("/audit/reconcile", params={"reference": opened.sitting_id}, headers=auth("auditor")),
        lambda r: r.status_code == 200 and r.json()["in_flight"] == 0,
    )
    assert report.json()["mismatches"] == [] and report.json()["facts"] > 10


async def test_a_panel_sitting_through_the_cli(cli, time_env, pool, time_queue, sla_policy):
    _, episode = await start_episode(
        time_env.client, time_queue, sla_policy,
        report=synthetic_missing_report(rng=seeded("cli-panel"), indicators=[RiskIndicator.CSE_CONCERN]),
    )
    await in_read_model(pool, "missing_episodes", "episode_id", episode.id)
    panel = a_panel(criteria=[AgendaCriterion.MEMBER_REFERRAL])
    opened = await time_env.client.execute_workflow(
        PanelOpeningWorkflow.run, PanelOpening(panel=panel, policy=sla_policy), id=f"panel-{uuid.uuid4().hex[:8]}",
        task_queue=time_queue,
    )
    sitting = opened.sitting_id
    sitting_of(time_env, sitting)
    await eventually(lambda: cli.json("screener", "panels", "show", sitting), lambda s: s["agenda_built"])
    await cli("screener", "panels", "agenda", sitting, "--add", f"{episode.id}|health", "--reason", "Synthetic.")
    await cli("inspector", "panels", "meeting", sitting)
    await cli("screener", "panels", "attendance", sitting,
              "--attendee", "SW Synthetic|childrens_social_care|Social worker|allocated_social_worker",
              "--attendee", "PC Synthetic|police|Officer|allocated_officer",
              "--absent", f"{episode.id}|cse_team|Synthetic: in court")
    due = ((await time_env.get_current_time()) + timedelta(days=7)).isoformat()
    decided = await cli.json("inspector", "panels", "outcome", sitting, episode.id, "--grade", "high", "--rationale",
                             "Synthetic.", "--action", f"police|DC Synthetic|{due}|Synthetic: visit.")
    (item,) = decided["agenda"]
    assert (item["grade"], item["grade_applied"]["result"], item["absent_roles"]) == ("high", "applied", ["cse_team"])
    refused = await cli("inspector", "panels", "outcome", sitting, episode.id, "--rationale", "Synthetic.", exit_code=6)
    assert "already decided" in refused.stderr
    await cli("inspector", "panels", "close", sitting)
    minutes = (await cli("auditor", "panels", "minutes", sitting)).stdout
    assert episode.id in minutes and "cse_team" in minutes
    assert "SW Synthetic" not in (await cli("auditor", "panels", "absences")).stdout
    await cli("auditor", "panels", "show", "PANEL-nope", exit_code=5)
    await cli("auditor", "panels", "open", "bad id", "2026-12-01", exit_code=5)
    (action,) = decided["actions"]
    await cli("officer", "actions", "complete", action["action_id"], "--note", "Synthetic: done.")
    await finished(time_env, time_env.client.get_workflow_handle(sitting))
