"""What a new user meets first: example forms that work, times written as people write them, errors as problem details.

On the real time-skipping server and PostgreSQL, through the API's app and the `referrals` CLI.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from typer.testing import CliRunner

from api.app import DOCS_ASSETS, ROUTERS, create_app
from api.openapi import EXAMPLES, request_bodies, schema_name
from cli.connection import EXIT_CODES
from cli.main import app as cli_app
from starter.synthetic import synthetic_vist
from tests.api_fixtures import api, api_app, auth, authenticator, form_json, tokens, track  # noqa: F401
from tests.helpers import eventually
from tests.test_api import events, submitted
from tests.test_cli import api_url, cli, logs_beside_the_cli  # noqa: F401
from tests.test_dashboard import browser_as  # noqa: F401
from workflows.models import IncidentType, VistSubmission, local_zone

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "field"}
runner = CliRunner()


def example_files() -> dict[IncidentType, Path]:
    return {IncidentType(json.loads(path.read_text())["incident"]["type"]): path
            for path in sorted(EXAMPLES_DIR.glob("vist-*.json"))}


def test_there_is_an_example_vist_form_for_every_incident_type():
    assert set(example_files()) == set(IncidentType)


@pytest.mark.parametrize("incident", list(IncidentType))
async def test_each_example_form_validates_and_the_api_accepts_it(api, auth, time_env, pool, incident):
    form = json.loads(example_files()[incident].read_text())
    VistSubmission.model_validate(form)
    response = await api.post("/referrals", json=form, headers=auth("officer"))
    assert response.status_code in (200, 201), response.text  # 200: the schema's own example was sent before
    reference = response.json()["reference"]
    track(time_env.client, reference)
    await eventually(lambda: events(pool, reference), lambda n: n >= 2)


@pytest.mark.parametrize("incident", list(IncidentType))
def test_the_template_command_prints_a_valid_form_for_each_incident_type(incident):
    printed = runner.invoke(cli_app, ["template", "vist", "--incident", incident.value])
    assert printed.exit_code == 0, printed.output
    form = VistSubmission.model_validate(json.loads(printed.stdout))
    assert form.incident.type is incident
    assert form.incident.occurred_at < datetime.now(timezone.utc)
    again = json.loads(runner.invoke(cli_app, ["template", "vist", "--incident", incident.value]).stdout)
    assert again["form_id"] != str(form.form_id)  # each printed form is a new form


def test_every_request_body_in_the_openapi_has_an_example_that_validates(api_app):
    document = api_app.openapi()
    bodies = request_bodies(document)
    assert bodies and [name for name, media in bodies if "example" not in media] == []
    models = {
        route.body_field.field_info.annotation.__name__: route.body_field.field_info.annotation
        for router in ROUTERS for route in router.routes
        if isinstance(route, APIRoute) and route.body_field is not None
    }
    assert {schema_name(media) for _, media in bodies} == set(models)
    for name, model in models.items():
        model.model_validate(EXAMPLES[name])


def test_the_vist_schema_states_its_conditional_rules(api_app):
    schemas = api_app.openapi()["components"]["schemas"]
    assert "domestic abuse" in schemas["ChildPresent"]["properties"]["voice_of_the_child"]["description"]
    assert "high initial_risk" in schemas["VistSubmission"]["properties"]["section_46"]["description"]
    assert "domestic abuse requires each child's voice_of_the_child" in schemas["VistSubmission"]["description"]


async def test_a_vist_written_in_london_time_is_read_as_london_time(api, auth, time_env, pool):
    now = (await time_env.get_current_time()).astimezone(local_zone())
    written = (now - timedelta(days=1)).replace(hour=21, minute=40, second=0, microsecond=0)
    submission = synthetic_vist(rng=random.Random("front-door:london"), occurred_at=written)
    form = form_json(submission)
    form["incident"]["occurred_at"] = written.strftime("%Y-%m-%dT%H:%M")  # no offset, as people write it
    response = await api.post("/referrals", json=form, headers=auth("officer"))
    assert response.status_code == 201, response.text
    reference = response.json()["reference"]
    track(time_env.client, reference)
    await eventually(lambda: events(pool, reference), lambda n: n >= 2)
    recorded = await pool.fetchval("SELECT incident_at FROM referrals WHERE reference = $1", reference)
    assert recorded == written

    bare = form_json(synthetic_vist(rng=random.Random("front-door:date")))
    bare["incident"]["occurred_at"] = now.date().isoformat()
    refused = await api.post("/referrals", json=bare, headers=auth("officer"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "incident", "occurred_at"]
    assert "needs a time of day as well as the date" in refused.json()["errors"][0]["msg"]


async def test_a_query_time_without_an_offset_is_londons(api, auth, time_env, pool):
    _, reference = await submitted(api, auth, time_env, pool, 1701)
    now = (await time_env.get_current_time()).astimezone(local_zone())
    earlier = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    later = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    listed = await api.get("/referrals", params={"updated_since": earlier}, headers=auth("auditor"))
    assert reference in [r["reference"] for r in listed.json()["items"]]
    none = await api.get("/referrals", params={"updated_since": later}, headers=auth("auditor"))
    assert reference not in [r["reference"] for r in none.json()["items"]]
    skipped = await api.get("/referrals", params={"updated_since": "2026-03-29T01:30"}, headers=auth("auditor"))
    assert skipped.status_code == 422 and skipped.json()["field"] == "updated_since"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert PROBLEM_KEYS <= set(problem) and problem["status"] == status and problem["type"] == "about:blank"
    assert problem["instance"].startswith("urn:uuid:") and problem["title"] and problem["detail"]
    return problem


async def test_every_error_path_answers_problem_details(api, auth, time_env, pool):
    _, reference = await submitted(api, auth, time_env, pool, 1702)
    invalid = assert_problem(await api.post("/referrals", json={"form_id": "x"}, headers=auth("officer")), 422)
    assert invalid["errors"] and invalid["field"] == "form_id" and "body.form_id" in invalid["detail"]
    assert_problem(await api.get(f"/referrals/{reference}"), 401)
    forbidden = assert_problem(await api.post(f"/referrals/{reference}/supervisor-review", json={"approved": True},
                                              headers=auth("officer")), 403)
    assert forbidden["field"] == "actor.role"
    assert assert_problem(await api.get("/referrals/REF-00000-00000", headers=auth("auditor")), 404)["field"] == "reference"
    assert_problem(await api.get("/no-such-route", headers=auth("auditor")), 404)
    assert_problem(await api.delete("/referrals", headers=auth("auditor")), 405)
    conflict = assert_problem(await api.post(f"/referrals/{reference}/close", json={"reason": "withdrawn"},
                                             headers=auth("officer")), 403)
    assert conflict["field"] == "actor.role"
    early = assert_problem(await api.post(f"/referrals/{reference}/screening", json={
        "risk": "medium", "child_decisions": [{"child_id": "C1", "decision": "early_help", "rationale": "Synthetic."}],
        "outcome": "early_help", "rationale": "Synthetic."}, headers=auth("screener")), 409)
    assert early["field"] == "stage"


async def test_the_apis_own_fault_is_a_problem_without_its_cause(time_env, pool, settings, sla_policy, authenticator, tokens):  # noqa: F811
    async def broken_clock() -> datetime:
        raise RuntimeError("synthetic fault with a secret in it")

    app = create_app(time_env.client, pool, settings, authenticator=authenticator, sla_policy=sla_policy,
                     clock=broken_clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        form = form_json(synthetic_vist(rng=random.Random("front-door:fault")))
        response = await client.post("/referrals", json=form, headers={"Authorization": f"Bearer {tokens['officer']}"})
    assert assert_problem(response, 500)["field"] is None
    assert "secret" not in response.text


def test_the_openapi_documents_errors_as_problem_details(api_app):
    for path, operations in api_app.openapi()["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status[0] in "45":
                    assert list(answer.get("content", {})) == ["application/problem+json"], (method, path, status)


async def test_json_errors_from_the_cli_are_problem_details(cli):
    missing = await cli("auditor", "show", "REF-00000-00000", "--json", exit_code=EXIT_CODES[404])
    problem = json.loads(missing.stderr)
    assert (problem["status"], problem["field"], problem["exit_code"]) == (404, "reference", EXIT_CODES[404])
    assert missing.stdout == ""
    # Malformed before any request: the CLI's own refusal, as JSON too.
    malformed = json.loads((await cli("auditor", "show", "REF-0", "--json", exit_code=EXIT_CODES[404])).stderr)
    assert "reference: no such referral" in malformed["detail"]
    # Without --json the same failure is words.
    assert "Error:" in (await cli("auditor", "show", "REF-00000-00000", exit_code=EXIT_CODES[404])).stderr


def test_an_unreachable_api_is_named_with_its_url(tmp_path):
    url = f"http://127.0.0.1:9/{uuid.uuid4().hex[:6]}"
    env = {"REFERRALS_API_URL": url, "REFERRALS_TOKEN": "synthetic", "REFERRALS_CONFIG": str(tmp_path / "none.toml")}
    words = runner.invoke(cli_app, ["show", "REF-00000-00000"], env=env)
    assert words.exit_code == 1 and url in " ".join(words.stderr.split()) and "ConnectError" not in words.stderr
    problem = json.loads(runner.invoke(cli_app, ["show", "REF-00000-00000", "--json"], env=env).stderr)
    assert url in problem["detail"] and problem["exit_code"] == 1


async def test_the_docs_pages_use_only_assets_the_api_serves(api):
    for page in ("/docs", "/redoc"):
        html = (await api.get(page)).text
        assert "http://" not in html and "https://" not in html, page
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(asset.endswith(".js") for asset in assets), page
        for asset in assets:
            assert asset.startswith(f"{DOCS_ASSETS}/"), asset
            served = await api.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset


async def test_swagger_ui_renders_with_no_network_beyond_the_api(api_url, browser_as):  # noqa: F811
    page = await browser_as.new_page()
    elsewhere: list[str] = []

    async def only_the_api(route) -> None:
        if route.request.url.startswith(api_url):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_the_api)
    await page.goto(f"{api_url}/docs")
    await page.get_by_text("Submit a VIST").first.wait_for()
    assert elsewhere == []
    await page.close()


# What answers without credentials: the probes and the metrics a scraper reads.
PUBLIC = {"/health", "/ready", "/metrics"}


async def test_every_route_refuses_a_caller_without_a_token_with_problem_details(api):
    """Each operation of every router, called with no token (and a body and path it would refuse anyway): a 401
    problem, before anything is read or validated; only the probes answer."""
    refused = 0
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            path = re.sub(r"{[^}]+}", "REF-00000-00000", route.path)
            for method in sorted(route.methods - {"HEAD"}):
                response = await api.request(method, path, json={} if method != "GET" else None)
                if route.path in PUBLIC:
                    assert response.status_code < 500 or response.status_code == 503, (method, route.path)
                    continue
                problem = assert_problem(response, 401)
                assert problem["detail"] and "REF-00000-00000" not in problem["detail"], (method, route.path)
                refused += 1
    assert refused > 50  # every router's operations were tried, not a handful
