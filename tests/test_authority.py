"""Every decision is made by who it names, with the authority it needs: rungs, overrides, four eyes, identity.

Through the API (403 or 422 naming the field) and straight to the workflow (a DecisionRejected
naming it), on the real time-skipping server; a refused decision leaves the referral as it was.
"""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from activities.alerts import AlertLinks
from starter.synthetic import INSPECTOR, OFFICER, SCREENER, SERGEANT, approval, screening, synthetic_vist
from tests.api_fixtures import USERS, api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import STARTED, advance_to, eventually, finished, sign_in, start_referral, state_when
from workflows.models import (
    Actor,
    Duration,
    EscalationAcknowledgement,
    EscalationPolicy,
    Rank,
    Resubmission,
    RiskGrade,
    Role,
    ScreeningOutcome,
    StageDeadlines,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

SUPERINTENDENT = Actor(id="SUPT-2901", role=Role.SUPERVISOR, rank=Rank.SUPERINTENDENT)
ADMIN = Actor(id="ADM-9001", role=Role.ADMIN)


def without_actor(decision) -> dict:
    return decision.details()


async def submitted(api, auth, time_env, pool, seed: str, user: str = "officer", **kwargs) -> tuple:
    submission = synthetic_vist(rng=random.Random(f"authority:{seed}"), **kwargs)
    submission.officer_id = USERS[user].id
    response = await api.post("/referrals", json=form_json(submission), headers=auth(user))
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    track(time_env.client, reference)
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1", reference),
                     lambda n: n == 1)
    return submission, reference


async def post(api, auth, path: str, user: str, body: dict | None = None, status: int = 200) -> dict:
    response = await api.post(path, json=body, headers=auth(user))
    assert response.status_code == status, (user, path, response.text)
    return response.json()


async def refused_by_workflow(handle, update, decision) -> str:
    """The workflow's rejection (its field and reason), after checking the referral did not change."""
    before = await handle.query(ReferralWorkflow.state)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(update, decision)
    assert await handle.query(ReferralWorkflow.state) == before
    return caught.value.cause.message


async def late_thrice(api, auth, time_env, pool, seeds: list[str]) -> list[str]:
    """High-risk referrals left unreviewed until all three rungs are raised and their alerts shown."""
    since = await time_env.get_current_time()
    references = [(await submitted(api, auth, time_env, pool, seed, risk=RiskGrade.HIGH))[1] for seed in seeds]
    # Review due in 2 h; each further rung 4 h after the one before.
    await advance_to(time_env, since + timedelta(hours=10, minutes=10))
    for reference in references:
        await state_when(time_env.client.get_workflow_handle(reference), lambda s: len(s.escalations) == 3)
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM alert_deliveries WHERE reference = $1 AND channel = 'in_app' "
                "AND delivered_at IS NOT NULL", reference),
            lambda n: n == 3,
        )
    return references


def acknowledge_button(page: str, escalation_id: str) -> bool:
    row = re.search(rf'<tr data-escalation="{re.escape(escalation_id)}">(.*?)</tr>', page, re.DOTALL)
    assert row is not None, escalation_id
    return 'type="submit">Acknowledge' in row.group(1)


async def dashboard(api, tokens, user: str, path: str) -> str:
    response = await api.get(path, headers=(await sign_in(api, tokens[user])).headers)
    assert response.status_code == 200, response.text
    return response.text


# --- rungs ------------------------------------------------------------------------------------


async def test_each_rung_is_acknowledged_only_with_its_authority_through_the_api(
    api, auth, tokens, time_env, pool, settings
):
    a, b = await late_thrice(api, auth, time_env, pool, ["rung-a", "rung-b"])
    rung = {n: f"{a}.E{n + 1}" for n in range(3)}
    state = await time_env.client.get_workflow_handle(a).query(ReferralWorkflow.state)
    assert [e.rank for e in state.escalations] == [Rank.SERGEANT, Rank.INSPECTOR, Rank.SUPERINTENDENT]

    # The dashboard offers Acknowledge only where the caller may; the rest is read-only.
    page = await dashboard(api, tokens, "sergeant", "/dashboard/escalations")
    assert [acknowledge_button(page, rung[n]) for n in range(3)] == [True, False, False]
    page = await dashboard(api, tokens, "named-sergeant", "/dashboard/escalations")
    assert [acknowledge_button(page, rung[n]) for n in range(3)] == [True, False, True]
    page = await dashboard(api, tokens, "admin", "/dashboard/escalations")
    assert [acknowledge_button(page, rung[n]) for n in range(3)] == [True, True, True]
    # So does the signed link of the inspector rung's alert email.
    link = urlsplit(AlertLinks.from_settings(settings).acknowledge(rung[1], await time_env.get_current_time()))
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    path = f"/dashboard/escalations/{rung[1]}/acknowledge?expires={query['expires']}&sig={query['sig']}"
    assert "Acknowledge</button>" not in await dashboard(api, tokens, "sergeant", path)
    assert "Acknowledge</button>" in await dashboard(api, tokens, "inspector", path)

    # Too low a rank: 403 naming the rank; no rank at all: 403 naming the role. Nothing changes.
    for user, n in [("sergeant", 1), ("sergeant", 2), ("inspector", 2), ("named-sergeant", 1)]:
        assert (await post(api, auth, f"/escalations/{rung[n]}/acknowledgement", user, status=403))["field"] == "actor.rank"
    for user in ("officer", "screener", "auditor", "health-partner"):
        assert (await post(api, auth, f"/escalations/{rung[0]}/acknowledgement", user, status=403))["field"] == "actor.role"
    assert await time_env.client.get_workflow_handle(a).query(ReferralWorkflow.state) == state
    sergeant = await sign_in(api, tokens["sergeant"])
    forged = await api.post(f"/dashboard/escalations/{rung[1]}/acknowledge", data=sergeant.form(),
                            headers=sergeant.headers)
    assert forged.status_code == 403

    # Its rank, a higher rank, its named addressee, an administrator.
    accepted = [("sergeant", rung[0]), ("superintendent", rung[1]), ("named-sergeant", rung[2]),
                ("inspector", f"{b}.E2"), ("admin", f"{b}.E3")]
    for user, escalation_id in accepted:
        state = await post(api, auth, f"/escalations/{escalation_id}/acknowledgement", user)
        acknowledged = next(e for e in state["escalations"] if e["escalation_id"] == escalation_id)
        assert acknowledged["acknowledged_by"] == USERS[user].id

    # Each acknowledgement is recorded with the authority it was made on.
    facts = await eventually(
        lambda: pool.fetch("SELECT actor_id, payload FROM referral_events WHERE kind = 'escalation_acknowledged' "
                           "AND reference = ANY($1::text[]) ORDER BY at, stream, seq", [a, b]),
        lambda rows: len(rows) == len(accepted),
    )
    recorded = {json.loads(r["payload"])["escalation_id"]: (r["actor_id"], json.loads(r["payload"])) for r in facts}
    assert recorded[rung[2]][1]["as_named_addressee"] is True
    assert recorded[rung[1]][1] == {"escalation_id": rung[1], "rank": "superintendent", "as_named_addressee": False}
    assert recorded[f"{b}.E3"][0] == "ADM-9001"


def hasty(sla_policy):
    """Review due within a second and each further rung a second later: three rungs without moving the clock."""
    moment = Duration(hours=0.0003)
    return sla_policy.model_copy(update={
        "supervisor_review": StageDeadlines(standard=moment, medium=moment, high=moment),
        "escalation": EscalationPolicy(grace=moment),
    })


async def test_each_rung_refuses_too_low_a_rank_straight_to_the_workflow(time_env, time_queue, sla_policy):
    handles = []
    for seed in ("direct-a", "direct-b"):
        _, handle = await start_referral(time_env.client, time_queue, hasty(sla_policy),
                                         submission=synthetic_vist(rng=random.Random(f"authority:{seed}")))
        handles.append(handle)
    for handle in handles:
        await state_when(handle, lambda s: len(s.escalations) == 3, timeout=30)
    a, b = handles
    rung = {n: f"{a.id}.E{n + 1}" for n in range(3)}
    update = ReferralWorkflow.acknowledge_escalation

    def ack(actor: Actor, escalation_id: str, named: bool = False) -> EscalationAcknowledgement:
        return EscalationAcknowledgement(actor=actor, escalation_id=escalation_id, as_named_addressee=named)

    assert (await refused_by_workflow(a, update, ack(SERGEANT, rung[1]))).startswith(
        "actor.rank: rank sergeant may not acknowledge the inspector rung")
    assert (await refused_by_workflow(a, update, ack(SERGEANT, rung[2]))).startswith("actor.rank: rank sergeant")
    assert (await refused_by_workflow(a, update, ack(INSPECTOR, rung[2]))).startswith("actor.rank: rank inspector")
    unranked = Actor(id="PS-2999", role=Role.SUPERVISOR)
    assert (await refused_by_workflow(a, update, ack(unranked, rung[0]))).startswith("actor.rank: rank none")
    assert (await refused_by_workflow(a, update, ack(SCREENER, rung[0]))).startswith("actor.role")

    # Its rank, a higher rank, its named addressee (as the API vouches), an administrator.
    for handle, actor, n, named in [(a, SERGEANT, 1, False), (a, SUPERINTENDENT, 2, False), (a, SERGEANT, 3, True),
                                    (b, INSPECTOR, 2, False), (b, ADMIN, 3, False)]:
        escalation_id = f"{handle.id}.E{n}"
        state = await handle.execute_update(update, ack(actor, escalation_id, named))
        assert next(e for e in state.escalations if e.escalation_id == escalation_id).acknowledged_by == actor.id


# --- the repeat-referral override -------------------------------------------------------------


async def test_a_repeat_referral_closes_with_no_further_action_only_on_a_supervisors_override(
    api, auth, tokens, time_env, pool
):
    family, address = "Overridely-000002", "2 Override Row, Testtown TT0002"
    for n in range(3):
        submission, reference = await submitted(api, auth, time_env, pool, f"repeat-{n}", family=family,
                                                address=address)
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", reference),
            lambda c: c == 1,
        )
    state = await post(api, auth, f"/referrals/{reference}/supervisor-review", "sergeant", {"approved": True})
    assert state["screening_view"]["repeat_children"] == ["C1"]
    path = f"/referrals/{reference}"
    no_further_action = without_actor(screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))

    # A body can no longer name the supervisor.
    named = no_further_action | {"repeat_referral_override": {"supervisor_id": SCREENER.id, "rationale": "Synthetic."}}
    response = await api.post(f"{path}/screening", json=named, headers=auth("screener"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "repeat_referral_override"]]
    refused = await post(api, auth, f"{path}/screening", "screener", no_further_action, status=409)
    assert refused["field"] == "repeat_referral_override"

    # The screener asks; a supervisor decides, and never the one who asked.
    assert (await post(api, auth, f"{path}/override", "sergeant", {"granted": True, "rationale": "Synthetic."},
                       status=409))["field"] == "granted"
    assert (await post(api, auth, f"{path}/override-request", "sergeant", {"reason": "Synthetic."},
                       status=403))["field"] == "actor.role"
    asked = await post(api, auth, f"{path}/override-request", "screener", {"reason": "Synthetic reason."})
    assert asked["repeat_referral_override"] | {"requested_at": None} == {
        "requested_by": SCREENER.id, "requested_at": None, "reason": "Synthetic reason.", "decided_by": None,
        "decided_at": None, "granted": None, "rationale": None}
    override = {"granted": True, "rationale": "Synthetic rationale."}
    assert (await post(api, auth, f"{path}/override", "screener", override, status=403))["field"] == "actor.role"
    assert (await post(api, auth, f"{path}/override", "screener-as-sergeant", override,
                       status=403))["field"] == "actor.id"
    # Refused: still no closing; asked again, then granted.
    await post(api, auth, f"{path}/override", "sergeant", {"granted": False, "rationale": "Synthetic."})
    await post(api, auth, f"{path}/screening", "screener", no_further_action, status=409)
    # Asked again, on the referral's page this time: the form is offered only while no override waits or holds.
    screener = await sign_in(api, tokens["screener"])
    page = (await api.get(f"/dashboard{path}", headers=screener.headers)).text
    assert 'data-form="override-request"' in page
    again = await api.post(f"/dashboard{path}/decisions/override-request", headers=screener.headers,
                           data=screener.form(reason="Synthetic, again."))
    assert again.status_code == 303, again.text
    assert 'data-form="override-request"' not in (await api.get(f"/dashboard{path}", headers=screener.headers)).text
    # The dashboard shows the pending request; only a supervisor gets the form, and it decides under their token.
    assert 'data-override="pending"' in await dashboard(api, tokens, "screener", f"/dashboard{path}")
    assert 'action="/dashboard' not in (await dashboard(api, tokens, "screener", f"/dashboard{path}")).split(
        'data-override="pending"')[1].split("</section>")[0]
    assert 'data-form="override"' not in await dashboard(api, tokens, "screener", f"/dashboard{path}")
    assert f'action="/dashboard{path}/decisions/override"' in await dashboard(api, tokens, "inspector", f"/dashboard{path}")
    inspector = await sign_in(api, tokens["inspector"])
    refused = await api.post(f"/dashboard{path}/decisions/override", data=inspector.form(granted="true"),
                             headers=inspector.headers)
    assert refused.status_code == 422 and 'id="override-rationale-error"' in refused.text
    form = await api.post(f"/dashboard{path}/decisions/override",
                          data=inspector.form(granted="true", rationale="Synthetic rationale."), headers=inspector.headers)
    assert form.status_code == 303, form.text
    granted = (await api.get(path, headers=auth("auditor"))).json()
    assert (granted["repeat_referral_override"]["decided_by"], granted["repeat_referral_override"]["granted"]) == (
        INSPECTOR.id, True)
    assert 'data-override="pending"' not in await dashboard(api, tokens, "inspector", f"/dashboard{path}")
    screened = await post(api, auth, f"{path}/screening", "screener", no_further_action)
    # It closes once the screener has told children's social care (the screening's agreed action).
    await post(api, auth, f"/actions/{screened['actions'][0]['action_id']}/completion", "screener", {"note": "Synthetic."})
    closed = await eventually(lambda: api.get(path, headers=auth("auditor")), lambda r: r.json()["close_reason"])
    assert closed.json()["close_reason"] == "no_further_action"
    decided = await eventually(
        lambda: pool.fetch("SELECT actor_id, payload FROM referral_events WHERE reference = $1 "
                           "AND kind = 'repeat_override_decided' ORDER BY seq", reference),
        lambda rows: len(rows) == 2,
    )
    assert [(r["actor_id"], json.loads(r["payload"])["granted"]) for r in decided] == [
        (SERGEANT.id, False), (INSPECTOR.id, True)]


# --- four eyes and identity -----------------------------------------------------------------------


async def test_a_supervisor_cannot_review_the_vist_they_submitted(api, auth, time_env, pool):
    _, reference = await submitted(api, auth, time_env, pool, "self-review", user="sergeant")
    refused = await post(api, auth, f"/referrals/{reference}/supervisor-review", "sergeant", {"approved": True},
                         status=403)
    assert refused["field"] == "actor.id"
    reviewed = await post(api, auth, f"/referrals/{reference}/supervisor-review", "inspector", {"approved": True})
    assert [(h["kind"], h["actor_id"]) for h in reviewed["history"]] == [("supervisor_reviewed", INSPECTOR.id)]


async def test_a_body_naming_another_officer_is_refused(api, auth, time_env, pool, time_queue, sla_policy):
    stranger = synthetic_vist(rng=random.Random("authority:stranger"))
    stranger.officer_id = "PC-9999"
    response = await api.post("/referrals", json=form_json(stranger), headers=auth("officer"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "officer_id"]]
    assert await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1",
                               referral_reference(stranger.form_id)) == 0

    submission, reference = await submitted(api, auth, time_env, pool, "resubmission")
    await post(api, auth, f"/referrals/{reference}/supervisor-review", "sergeant",
               {"approved": False, "reasons": "Synthetic."})
    other = submission.model_copy(update={"officer_id": "PC-9999"})
    response = await api.post(f"/referrals/{reference}/resubmission", json={"submission": form_json(other)},
                              headers=auth("officer"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "submission", "officer_id"]]

    # Straight to the workflow: the resubmission's validator, and the start, refuse it too.
    handle = time_env.client.get_workflow_handle(reference)
    message = await refused_by_workflow(handle, ReferralWorkflow.resubmit, Resubmission(actor=OFFICER, submission=other))
    assert message.startswith("submission.officer_id")
    started = await time_env.client.start_workflow(
        ReferralWorkflow.run,
        StartReferral(submission=stranger, submitted_by=OFFICER, sla_policy=sla_policy),
        id=referral_reference(stranger.form_id),
        task_queue=time_queue,
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await finished(time_env, started)
    assert caught.value.cause.message.startswith("submission.officer_id")
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", started.id) == 0
