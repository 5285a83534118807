"""Children's social care told, or a supervisor's reason why not; partners' referrals through the API and the dashboard."""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.connection import EXIT_CODES
from cli.main import app as cli_app

from starter.synthetic import (
    HEALTH_PARTNER,
    SCREENER,
    SERGEANT,
    approval,
    screening,
    synthetic_partner_referral,
    synthetic_vist,
)
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.test_cli import api_url, cli, logs_beside_the_cli  # noqa: F401
from tests.helpers import STARTED, eventually, finished, refused, seeded, sign_in, start_referral, state_when
from workflows.facts import FactKind
from workflows.models import (
    Agency,
    CloseReason,
    CscNotInformed,
    PartnerReferral,
    PartnerTool,
    ScreeningOutcome,
    Stage,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow


async def kinds(pool, reference: str) -> list[str]:
    return [r["kind"] for r in await pool.fetch(
        "SELECT kind FROM referral_events WHERE reference = $1 AND stream = reference ORDER BY seq", reference)]


# --- children's social care told, or a supervisor's reason why not ------------------------------------


async def test_a_screening_not_informing_csc_is_refused_without_a_supervisors_rationale_and_recorded_with_it(
    time_env, pool, time_queue, sla_policy
):
    """(A recorded history's flow too.)"""
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy,
                                              submission=synthetic_vist(rng=seeded("csc-not-informed")))
    await handle.execute_update(ReferralWorkflow.review, approval())
    await state_when(handle, lambda s: s.screening_view is not None)
    quiet = screening(submission, ScreeningOutcome.SINGLE_AGENCY).model_copy(update={"agencies_informed": [Agency.HEALTH]})
    await refused(handle, ReferralWorkflow.screen, quiet, "agencies_informed: children's social care must be informed")
    decided = await handle.execute_update(ReferralWorkflow.decide_csc_not_informed,
                                          CscNotInformed(actor=SERGEANT, rationale="Synthetic: known to them already."))
    assert decided.csc_not_informed.decided_by == SERGEANT.id
    closed = await handle.execute_update(ReferralWorkflow.screen, quiet)
    assert (closed.stage, closed.close_reason, closed.actions) == (Stage.CLOSED, CloseReason.SINGLE_AGENCY, [])
    await finished(time_env, handle)
    assert FactKind.CSC_NOT_INFORMED_DECIDED in await kinds(pool, handle.id)


async def test_csc_told_or_a_supervisors_reason_through_the_api(api, auth, time_env, pool):
    submission = synthetic_vist(rng=random.Random("partners:api-csc"))
    created = await api.post("/referrals", json=form_json(submission), headers=auth("officer"))
    reference = created.json()["reference"]
    track(time_env.client, reference)
    assert (await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True},
                           headers=auth("sergeant"))).status_code == 200
    quiet = screening(submission, ScreeningOutcome.EARLY_HELP).details() | {"agencies_informed": ["health"]}
    refusal = await api.post(f"/referrals/{reference}/screening", json=quiet, headers=auth("screener"))
    assert refusal.status_code == 409 and refusal.json()["field"] == "agencies_informed", refusal.text
    # The supervisor's decision under their own token, with its reason; nobody else's.
    assert (await api.post(f"/referrals/{reference}/csc-not-informed", json={"rationale": "Synthetic."},
                           headers=auth("screener"))).status_code == 403
    blank = await api.post(f"/referrals/{reference}/csc-not-informed", json={"rationale": " "}, headers=auth("sergeant"))
    assert blank.status_code == 422 and [e["loc"] for e in blank.json()["errors"]] == [["body", "rationale"]]
    decided = await api.post(f"/referrals/{reference}/csc-not-informed", json={"rationale": "Synthetic."},
                             headers=auth("sergeant"))
    assert decided.status_code == 200 and decided.json()["csc_not_informed"]["decided_by"] == SERGEANT.id

    # Told instead: the notification is the screener's agreed action, and the referral closes once it is done.
    told = screening(submission, ScreeningOutcome.EARLY_HELP).details()
    screened = await api.post(f"/referrals/{reference}/screening", json=told, headers=auth("screener"))
    assert screened.status_code == 200, screened.text
    (action,) = screened.json()["actions"]
    assert (screened.json()["stage"], action["owner"]) == ("actions", {"agency": "police", "owner": SCREENER.id,
                                                                       "supervisor": None})
    row = await eventually(lambda: pool.fetchrow("SELECT agency, owner FROM agreed_actions WHERE action_id = $1",
                                                 action["action_id"]), lambda r: r is not None)
    assert dict(row) == {"agency": "police", "owner": SCREENER.id}
    done = await api.post(f"/actions/{action['action_id']}/completion", json={"note": "Synthetic: told."},
                          headers=auth("screener"))
    assert done.status_code == 200, done.text
    closed = await finished(time_env, time_env.client.get_workflow_handle_for(ReferralWorkflow.run, reference))
    assert closed.close_reason is CloseReason.EARLY_HELP


# --- partners' referrals ------------------------------------------------------------------------------


async def test_a_partner_referral_enters_at_screening_and_runs_on_through_it(time_env, pool, time_queue, sla_policy):
    """(A recorded history's flow too.)"""
    referral = synthetic_partner_referral(rng=seeded("partner-referral"))
    handle = await time_env.client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=referral, submitted_by=HEALTH_PARTNER, sla_policy=sla_policy),
        id=referral_reference(referral.form_id), task_queue=time_queue)
    STARTED.append(handle)
    state = await state_when(handle, lambda s: s.screening_view is not None)
    assert (state.stage, state.referring_agency) == (Stage.SCREENING, Agency.HEALTH)
    row = await eventually(lambda: pool.fetchrow(
        "SELECT stage, referring_agency, referrer_id, officer_id, station FROM referrals WHERE reference = $1",
        handle.id), lambda r: r is not None)
    assert dict(row) == {"stage": "screening", "referring_agency": "health", "referrer_id": HEALTH_PARTNER.id,
                         "officer_id": None, "station": None}
    assert await pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", handle.id) == 1
    discussed = await handle.execute_update(
        ReferralWorkflow.screen, screening(referral, ScreeningOutcome.STRATEGY_DISCUSSION))
    assert discussed.stage is Stage.STRATEGY_DISCUSSION
    assert (await kinds(pool, handle.id))[:2] == ["partner_referral_received", "stage_changed"]


def partner_form(seed: str, **changes: Any) -> dict[str, Any]:
    return synthetic_partner_referral(rng=random.Random(f"partners:{seed}")).model_dump(mode="json") | changes


async def test_a_partner_refers_through_the_api_as_their_token_says(api, auth, time_env, pool):
    form = partner_form("api")
    created = await api.post("/partner-referrals", json=form, headers=auth("health-partner"))
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    track(time_env.client, reference)
    assert created.json()["stage"] == "screening"
    again = await api.post("/partner-referrals", json=form, headers=auth("health-partner"))
    assert (again.status_code, again.json()["reference"]) == (200, reference)
    state = await state_when(time_env.client.get_workflow_handle(reference), lambda s: s.screening_view is not None)
    assert (state.stage, state.referring_agency, state.history) == (Stage.SCREENING, Agency.HEALTH, [])
    # The answer, made from the start without waiting on the worker, is the workflow's own deadline.
    assert datetime.fromisoformat(created.json()["deadline"]) == state.deadline

    # Who refers is the token's: another person, another agency, a role or an agency that does not refer.
    forged = {
        "referrer_id": (partner_form("forged-id", referrer_id="HV-9999"), "health-partner", 422, ["body", "referrer_id"]),
        "referring_agency": (partner_form("forged-agency", referring_agency="education"), "health-partner", 422,
                             ["body", "referring_agency"]),
        "an officer": (partner_form("officer", referrer_id="PC-1001"), "officer", 403, None),
        "housing": (partner_form("housing", referrer_id="HO-7001", referring_agency="health"), "housing-partner", 403,
                    None),
    }
    for name, (body, user, status, loc) in forged.items():
        response = await api.post("/partner-referrals", json=body, headers=auth(user))
        assert response.status_code == status, (name, response.text)
        if loc:
            assert [e["loc"] for e in response.json()["errors"]] == [loc], name
        else:
            assert response.json()["field"] in {"actor.role", "actor.agency"}, name
        assert await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1",
                                   referral_reference(uuid.UUID(body["form_id"]))) == 0, name


async def test_a_partners_bad_input_is_refused_naming_the_field_and_nothing_is_started(api, auth, time_env, pool):
    good = partner_form("bad")
    incident, child = good["incident"], good["children"][0]
    cases = {
        ("body", "incident", "summary"): good | {"incident": incident | {"summary": "nul\x00here"}},
        ("body", "incident", "occurred_at"): good | {"incident": incident | {"occurred_at": "0001-01-01T00:00:00+14:00"}},
        ("body", "children", 0, "date_of_birth"): good | {"children": [child | {"date_of_birth": "9999-12-31"}]},
        ("body", "cse_indicators", 0): good | {"cse_indicators": [10 ** 400]},
        ("body", "initial_risk"): good | {"initial_risk": 1e308},
        ("body", "cse_indicators"): good | {"cse_indicators": []},
        ("body", "officer_id"): good | {"officer_id": HEALTH_PARTNER.id},
    }
    for loc, body in cases.items():
        response = await api.post("/partner-referrals", json=body, headers=auth("health-partner"))
        assert response.status_code == 422, (loc, response.text)
        assert list(loc) in [e["loc"] for e in response.json()["errors"]], (loc, response.json())
        assert "nul\x00here" not in response.text
    ahead = await time_env.get_current_time() + timedelta(days=2)
    future = good | {"incident": incident | {"occurred_at": ahead.isoformat()}}
    response = await api.post("/partner-referrals", json=future, headers=auth("health-partner"))
    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["body", "incident", "occurred_at"]
    assert await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1",
                               referral_reference(uuid.UUID(good["form_id"]))) == 0


async def test_a_partner_refers_on_the_dashboard_with_each_refusal_beside_its_field(api, tokens, time_env, pool):
    social_worker = await sign_in(api, tokens["social-worker"])
    partner = social_worker.headers
    page = await api.get("/dashboard/partner-referral", headers=partner)
    assert page.status_code == 200 and 'action="/dashboard/partner-referral"' in page.text
    form_id = re.search(r'name="form_id" value="([0-9a-f-]+)"', page.text).group(1)
    officer = await sign_in(api, tokens["officer"])
    assert (await api.get("/dashboard/partner-referral", headers=officer.headers)).status_code == 403
    housing = await sign_in(api, tokens["housing-partner"])  # a partner of an agency that does not refer
    assert (await api.get("/dashboard/partner-referral", headers=housing.headers)).status_code == 403
    # A post without the session's CSRF token is refused before the form is read.
    assert (await api.post("/dashboard/partner-referral", data={"form_id": form_id}, headers=partner)).status_code == 403

    fields = {
        "form_id": form_id, "tool": "safeguarding_concern", "incident.type": "neglect",
        "incident.occurred_at": "05/01/2026 09:30", "incident.location": "Synthetic School, Testtown",
        "incident.summary": "Synthetic: arrives hungry most days.", "children.0.name": "Dune Synthton-445566",
        "children.0.date_of_birth": "30/02/2030", "children.0.observed": "Synthetic: thin, tired.",
        "initial_risk": "medium", "cse_indicators.0": "missing_episodes",
    }
    # Each refusal beside its field: a date that is none, then an indicator only a CSE screening tool marks.
    for field, change in [("children-0-date_of_birth", {}),
                          ("cse_indicators", {"children.0.date_of_birth": "03/02/2019"})]:
        fields |= change
        refused_page = await api.post("/dashboard/partner-referral", data=social_worker.form(**fields), headers=partner)
        assert refused_page.status_code == 422
        assert re.findall(r'class="field-error" id="partner-referral-([a-z0-9_-]+)-error"', refused_page.text) == [field]
    assert await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1",
                               referral_reference(uuid.UUID(form_id))) == 0

    del fields["cse_indicators.0"]
    reference = referral_reference(uuid.UUID(form_id))
    for _ in range(2):  # sent twice: the same form, the same referral
        received = await api.post("/dashboard/partner-referral", data=social_worker.form(**fields), headers=partner)
        assert received.status_code == 303, received.text
        assert received.headers["location"] == f"/dashboard/partner-referral/{reference}"
    track(time_env.client, reference)
    state = await state_when(time_env.client.get_workflow_handle(reference), lambda s: s.screening_view is not None)
    assert (state.stage, state.referring_agency) == (Stage.SCREENING, Agency.CHILDRENS_SOCIAL_CARE)
    opened = await api.get(received.headers["location"], headers=partner)
    assert opened.status_code == 200 and reference in opened.text and "screening" in opened.text
    assert "Dune Synthton" not in opened.text


# --- partners' referrals through the CLI, from the examples and the template ------------------------------

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def partner_examples() -> dict[PartnerTool, Path]:
    return {PartnerTool(json.loads(path.read_text())["tool"]): path for path in sorted(EXAMPLES_DIR.glob("partner-*.json"))}


def test_there_is_an_example_partner_referral_for_every_tool():
    assert set(partner_examples()) == set(PartnerTool)
    for path in partner_examples().values():
        PartnerReferral.model_validate_json(path.read_text())


@pytest.mark.parametrize("tool", list(PartnerTool))
def test_the_template_command_prints_a_valid_partner_referral_for_each_tool(tool):
    words = ["template", "partner", "--tool", tool.value, "--referrer-id", "SW-6001", "--agency", "childrens_social_care"]
    printed = CliRunner().invoke(cli_app, words)
    assert printed.exit_code == 0, printed.output
    form = PartnerReferral.model_validate(json.loads(printed.stdout))
    assert (form.tool, form.referrer_id, form.referring_agency) == (tool, "SW-6001", Agency.CHILDRENS_SOCIAL_CARE)
    assert form.incident.occurred_at < datetime.now(timezone.utc)
    assert json.loads(CliRunner().invoke(cli_app, words).stdout)["form_id"] != str(form.form_id)
    police = CliRunner().invoke(cli_app, [*words[:-1], "police"])
    assert police.exit_code == 2 and "--agency" in police.stderr


async def test_a_partner_refers_each_example_through_the_cli_into_screening(cli, time_env, pool):
    for tool, path in partner_examples().items():
        intake = await cli.json("health-partner", "refer", path)
        reference = intake["reference"]
        track(time_env.client, reference)
        assert intake["stage"] == "screening", tool
        assert "already submitted" in (await cli("health-partner", "refer", path)).stdout
        row = await eventually(lambda: pool.fetchrow(
            "SELECT stage, referring_agency, referrer_id FROM referrals WHERE reference = $1", reference),
            lambda r: r is not None)
        assert dict(row) == {"stage": "screening", "referring_agency": "health", "referrer_id": HEALTH_PARTNER.id}
    # The example names the health partner: anyone else is refused, the field named.
    refused_form = await cli("social-worker", "refer", partner_examples()[PartnerTool.SAFEGUARDING_CONCERN], "--json",
                             exit_code=EXIT_CODES[422])
    assert json.loads(refused_form.stderr)["field"] == "referrer_id"
    await cli("officer", "refer", partner_examples()[PartnerTool.SAFEGUARDING_CONCERN], exit_code=EXIT_CODES[403])
