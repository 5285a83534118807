"""The `referrals` CLI against the API served over HTTP: one referral driven end to end by the CLI alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import random
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from api.app import create_app
from cli.connection import EXIT_CODES
from cli.main import app
from starter.synthetic import synthetic_vist
from tests.api_fixtures import api_app, authenticator, tokens, track  # noqa: F401
from tests.helpers import advance_to, eventually, finished, reason_of
from workflows.facts import FACTS, FactKind
from workflows.models import RiskGrade

runner = CliRunner()


@pytest.fixture(scope="module")
def logs_beside_the_cli() -> Iterator[None]:
    """structlog's default prints to whatever `sys.stdout` is at the time, and CliRunner swaps it for the CLI's.

    The served API and the worker log from this process while a command runs, so their
    lines go to the stderr the tests started with, not into the CLI's output.
    """
    before = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    yield
    structlog.configure(**before)


@contextlib.asynccontextmanager
async def served(api: FastAPI) -> AsyncIterator[str]:
    """The API served by uvicorn on a free loopback port, in the tests' event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(api, log_config=None, access_log=False, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started, bool)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await serving
    sock.close()


@pytest.fixture(scope="module")
async def api_url(api_app, logs_beside_the_cli) -> AsyncIterator[str]:
    async with served(api_app) as url:
        yield url


class Cli:
    """Runs `referrals ...` as one of the test users, in a thread so the served API keeps running."""

    def __init__(self, url: str, tokens: dict[str, str], config: str) -> None:
        self.url, self.tokens, self.config = url, tokens, config

    async def __call__(self, user: str | None, *args: object, exit_code: int = 0) -> Result:
        env = {"REFERRALS_API_URL": self.url, "REFERRALS_CONFIG": self.config,
               "REFERRALS_TOKEN": self.tokens.get(user, user) if user else None}
        result = await asyncio.to_thread(runner.invoke, app, [str(a) for a in args], env=env)
        assert result.exit_code == exit_code, (args, result.output)
        return result

    async def json(self, user: str, *args: object) -> dict:
        return json.loads((await self(user, *args, "--json")).stdout)


@pytest.fixture
def cli(api_url, tokens, tmp_path) -> Cli:
    return Cli(api_url, tokens, str(tmp_path / "no-config.toml"))


async def test_one_referral_end_to_end_through_the_cli(cli, time_env, pool, tmp_path):
    start = await time_env.get_current_time()
    submission = synthetic_vist(rng=random.Random("cli:701"), risk=RiskGrade.HIGH)
    form = tmp_path / "vist.json"
    form.write_text(submission.model_dump_json())

    intake = await cli.json("officer", "submit", form)
    reference = intake["reference"]
    track(time_env.client, reference)
    assert intake["created"] is True and intake["stage"] == "supervisor_review"
    assert "already submitted" in (await cli("officer", "submit", form)).stdout
    assert "supervisor_review" in (await cli("auditor", "show", reference)).stdout
    assert await pool.fetchval(
        "SELECT channel FROM access_log WHERE reference = $1 AND actor_id = 'AUD-4001'", reference
    ) == "cli"

    # The high-risk review is late after two hours: the station's sergeant sees it and acknowledges.
    await advance_to(time_env, start + timedelta(hours=2, minutes=5))
    mine = await eventually(lambda: cli.json("sergeant", "escalations", "--mine", "--reference", reference),
                            lambda page: len(page["items"]) == 1)
    escalation = mine["items"][0]["escalation_id"]
    assert escalation == f"{reference}.E1"
    table = (await cli("sergeant", "escalations", "--mine")).stdout
    # Rungs count from 1, as the dashboard and the alerts count them; every time is London's, its zone named.
    assert escalation in table and "1 · sergeant" in table and ("GMT" in table or "BST" in table)
    lines = (await cli("sergeant", "escalations", "--mine", "--reference", reference, "-o", "jsonl")).stdout.splitlines()
    assert [json.loads(line)["escalation_id"] for line in lines] == [escalation]
    acknowledged = await cli.json("sergeant", "ack", escalation)
    assert acknowledged["escalations"][0]["acknowledged_by"] == "PS-2001"

    await cli("sergeant", "review", reference, "--return", "--reasons", "Synthetic: say more of what the child said.")
    corrected = tmp_path / "vist-2.json"
    corrected.write_text(submission.model_copy(update={"station": "Testtown Central"}).model_dump_json())
    assert (await cli.json("officer", "resubmit", reference, corrected))["submission_versions"] == 2
    assert (await cli.json("sergeant", "review", reference, "--approve"))["stage"] == "screening"

    screened = await cli.json("screener", "screen", reference, "--risk", "high", "--outcome", "strategy_discussion",
                              "--rationale", "Synthetic screening rationale.", "--child", "C1=strategy_discussion",
                              "--inform", "childrens_social_care", "--inform", "health")
    assert screened["stage"] == "strategy_discussion"

    now = await time_env.get_current_time()
    discussed = await cli.json(
        "screener", "strategy", reference, "--held-at", now.isoformat(), "--section-47",
        "--rationale", "Synthetic strategy rationale.",
        "--attendee", "Social Worker Synthetic|childrens_social_care|social worker|allocated_social_worker",
        "--attendee", "Health Visitor Synthetic|health|health visitor",
        "--attendee", "DC Synthetic|police|investigating officer|investigating_officer",
        "--action", f"Synthetic home visit|health|Health Visitor Synthetic|{(now + timedelta(days=3)).isoformat()}"
                    "|Health Lead Synthetic",
        "--action", f"Synthetic checks|childrens_social_care|Social Worker Synthetic|"
                    f"{(now + timedelta(days=4)).isoformat()}",
    )
    assert discussed["stage"] == "conference" and discussed["strategy_discussion_inquorate"] is False
    assert len(discussed["actions"]) == 2

    conference_at = now + timedelta(days=6)
    booked = await cli.json("sergeant", "conference", "book", reference, "--at", conference_at.isoformat(),
                            "--report-in-lieu", "--rationale", "Synthetic: officer on leave; risk managed by plan.",
                            "--report-owner", "DC Synthetic")
    assert booked["police_attendance"] == "report_in_lieu" and len(booked["actions"]) == 3
    assert (await cli.json("screener", "regrade", reference, "medium", "--reason", "Synthetic: safety plan in place."))[
        "risk"] == "medium"
    await advance_to(time_env, conference_at)  # an outcome cannot be recorded before its conference
    outcome = await cli.json("screener", "conference", "outcome", reference, "--held-at", conference_at.isoformat(),
                             "--no-plan",
                             "--police-absent", "--rationale", "Synthetic conference rationale.")
    assert outcome["stage"] == "actions"

    first, second, report = (f"{reference}.A{n}" for n in (1, 2, 3))
    reassigned = await cli.json("screener", "actions", "reassign", second, "--agency", "police", "--owner",
                                "DS Synthetic", "--reason", "Synthetic: handed to police.")
    assert reassigned["owner"] == {"agency": "police", "owner": "DS Synthetic", "supervisor": None}
    await cli("health-partner", "actions", "complete", first, "--note", "Synthetic: visit made.")
    await cli("officer", "actions", "complete", second, "--note", "Synthetic: checks done.")
    done = await cli.json("officer", "actions", "complete", report, "--note", "Synthetic: report sent.")
    assert done["completed_by"] == "PC-1001"

    await finished(time_env, time_env.client.get_workflow_handle(reference))
    final = await cli.json("auditor", "show", reference)
    assert final["stage"] == "closed" and final["close_reason"] == "no_child_protection_plan"
    table = (await cli("auditor", "show", reference)).stdout
    assert FACTS[FactKind.STRATEGY_DISCUSSION_HELD].label in table and "CRU-3001" in table and submission.children[0].name not in table
    listed = await eventually(
        lambda: cli.json("auditor", "list", "--stage", "closed", "--updated-since", start.isoformat()),
        lambda page: reference in [i["reference"] for i in page["items"]],
    )
    assert [i["stage"] for i in listed["items"] if i["reference"] == reference] == ["closed"]
    assert reference in (await cli("auditor", "list", "--updated-since", start.isoformat())).stdout


async def test_close_and_the_cli_failures_carry_the_apis_message(cli, time_env, tmp_path):
    form = tmp_path / "vist.json"
    form.write_text(synthetic_vist(rng=random.Random("cli:702")).model_dump_json())
    reference = (await cli.json("officer", "submit", form))["reference"]
    track(time_env.client, reference)

    refused = await cli("officer", "review", reference, "--approve", exit_code=4)
    assert "actor.role" in refused.stderr
    invalid = await cli("sergeant", "review", reference, "--return", exit_code=7)
    assert "body.reasons: required when the VIST is returned to the officer" in invalid.stderr
    await cli("auditor", "show", "REF-00000-00000", exit_code=5)
    await cli(None, "show", reference, exit_code=3)
    await cli("not-a-valid-token", "show", reference, exit_code=3)

    await cli("sergeant", "review", reference, "--approve")
    closed = await cli.json("screener", "close", reference, "withdrawn", "--note", "Synthetic: sent in error.")
    assert closed["stage"] == "closed" and closed["close_reason"] == "withdrawn"
    await finished(time_env, time_env.client.get_workflow_handle(reference))
    again = await cli("screener", "close", reference, "withdrawn", exit_code=6)
    assert "stage: the referral is closed" in again.stderr


@pytest.mark.parametrize(
    ("user", "command", "request_", "reason"),
    [
        ("auditor", ["show", "REF-00000-0000"], ("GET", "/referrals/REF-00000-0000", None),
         "reference: no such referral"),
        ("auditor", ["show", "REF-00000-00000\n"], ("GET", "/referrals/REF-00000-00000%0A", None),
         "reference: no such referral"),
        ("officer", ["actions", "complete", "REF-00000-00000.A0", "--note", "Synthetic."],
         ("POST", "/actions/REF-00000-00000.A0/completion", {"note": "Synthetic."}), "action_id: no such agreed action"),
        ("sergeant", ["ack", "REF-00000-00000.X1"], ("POST", "/escalations/REF-00000-00000.X1/acknowledgement", None),
         "escalation_id: no such escalation"),
    ],
)
async def test_a_malformed_id_is_refused_alike_by_the_api_and_the_cli(api_url, cli, tokens, user, command, request_,
                                                                      reason):
    method, path, body = request_
    async with httpx.AsyncClient(base_url=api_url) as api:
        answer = await api.request(method, path, json=body, headers={"Authorization": f"Bearer {tokens[user]}"})
    assert (answer.status_code, reason_of(answer.json())) == (404, {"detail": reason, "field": reason.split(":")[0]})
    refused = await cli(user, *command, exit_code=EXIT_CODES[404])
    assert reason in refused.stderr


async def test_an_id_that_would_change_the_requests_path_never_leaves_the_cli(cli, tokens):
    # Refused before any request: otherwise "../.." would make it a read of another resource.
    refused = await cli("auditor", "show", "REF-00000-00000/../../access-log", exit_code=EXIT_CODES[404])
    assert "reference: no such referral" in refused.stderr
    refused = await cli("sergeant", "ack", "REF-00000-00000.E1/../../../referrals", exit_code=EXIT_CODES[404])
    assert "escalation_id: no such escalation" in refused.stderr


async def test_the_config_file_supplies_url_and_token(api_url, tokens, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'api_url = "{api_url}"\ntoken = "{tokens["auditor"]}"\n')
    env = {"REFERRALS_CONFIG": str(config), "REFERRALS_API_URL": None, "REFERRALS_TOKEN": None}
    result = await asyncio.to_thread(runner.invoke, app, ["list", "--limit", "1", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"items", "next_cursor"}


async def test_auditors_read_the_access_log_and_administrators_review_retention(cli, time_env, tmp_path):
    form = tmp_path / "vist.json"
    form.write_text(synthetic_vist(rng=random.Random("cli:703")).model_dump_json())
    reference = (await cli.json("officer", "submit", form))["reference"]
    track(time_env.client, reference)
    await cli("sergeant", "show", reference)

    entries = await cli.json("auditor", "access-log", "--reference", reference, "--actor", "PS-2001")
    assert [(e["action"], e["channel"]) for e in entries] == [("show_referral", "cli")]
    # The CLI's own reads of the access log are logged as the CLI's.
    reads = await cli.json("auditor", "access-log", "--reference", reference, "--actor", "AUD-4001")
    assert [(e["action"], e["channel"]) for e in reads] == [("read_access_log", "cli")]
    table = (await cli("auditor", "access-log", "--reference", reference, "--since", entries[0]["at"])).stdout
    assert "PS-2001" in table and "show_referral" in table
    refused = await cli("sergeant", "access-log", exit_code=4)
    assert "actor.role" in refused.stderr
    await cli("auditor", "access-log", "--since", "yesterday", exit_code=7)

    dry_run = await cli.json("admin", "retention")
    assert dry_run["dry_run"] is True and reference not in dry_run["references"]
    assert "dry run" in (await cli("admin", "retention")).stdout
    # Only an administrator purges; the purge itself is tested in tests/test_data_protection.py.
    assert "actor.role" in (await cli("auditor", "retention", "--purge", exit_code=4)).stderr


async def test_a_decision_not_confirmed_in_time_prints_its_key_and_the_retry_learns_the_outcome(
    cli, api_app, logs_beside_the_cli, time_env, pool, tmp_path
):
    form = tmp_path / "vist.json"
    form.write_text(synthetic_vist(rng=random.Random("cli:704")).model_dump_json())
    reference = (await cli.json("officer", "submit", form))["reference"]
    track(time_env.client, reference)

    # The same API, but one that waits no time at all for a decision to be confirmed.
    svc = api_app.state.services
    hasty = create_app(svc.client, pool, svc.settings.model_copy(update={"decision_timeout_seconds": 0.001}),
                       authenticator=svc.authenticator, sla_policy=svc.sla_policy, clock=svc.clock)
    async with served(hasty) as url:
        unconfirmed = await Cli(url, cli.tokens, cli.config)("sergeant", "review", reference, "--approve", exit_code=9)
    assert "HTTP 504" in unconfirmed.stderr
    key = re.search(r"--idempotency-key (\S+)", unconfirmed.stderr).group(1)

    retried = await cli.json("sergeant", "review", reference, "--approve", "--idempotency-key", key)
    assert retried["stage"] == "screening"
    # Again with the same key: the first outcome, not a second review (nor a 409).
    again = await cli.json("sergeant", "review", reference, "--approve", "--idempotency-key", key)
    assert again["history"] == retried["history"]
    reviews = await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM referral_events WHERE reference = $1 AND kind = 'supervisor_reviewed'", reference
        ),
        lambda n: n >= 1,
    )
    assert reviews == 1
    # A fresh command makes a fresh key: the same review again is a second decision, refused.
    assert "stage" in (await cli("sergeant", "review", reference, "--approve", exit_code=6)).stderr


async def test_a_repeat_referrals_override_is_asked_for_and_granted_from_the_cli(cli, time_env, pool, tmp_path):
    family, address = "Clirepeat-000003", "3 Override Row, Testtown TT0003"
    for n in range(3):
        submission = synthetic_vist(rng=random.Random(f"cli:705:{n}"), family=family, address=address)
        form = tmp_path / f"vist-{n}.json"
        form.write_text(submission.model_dump_json())
        reference = (await cli.json("officer", "submit", form))["reference"]
        track(time_env.client, reference)
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM referral_children WHERE reference = $1", reference),
            lambda c: c == 1,
        )
    assert (await cli.json("sergeant", "review", reference, "--approve"))["screening_view"]["repeat_children"] == ["C1"]

    asked = await cli.json("screener", "override-request", reference, "--reason", "Synthetic: family supported.")
    assert asked["repeat_referral_override"]["requested_by"] == "CRU-3001"
    # The person who asked cannot decide it, even holding a supervisor's token.
    refused = await cli("screener-as-sergeant", "override", reference, "--grant", "--rationale", "Synthetic.",
                        exit_code=4)
    assert "actor.id" in refused.stderr
    granted = await cli.json("inspector", "override", reference, "--grant", "--rationale", "Synthetic rationale.")
    assert (granted["repeat_referral_override"]["decided_by"], granted["repeat_referral_override"]["granted"]) == (
        "INSP-2501", True)
    shown = (await cli("auditor", "show", reference)).stdout
    assert "granted by INSP-2501" in shown
    # What screening saw is flagged in the table: the repeat child, and the two earlier referrals counted.
    assert re.search(r"repeat referral\s*│\s*C1", shown) and "2 referrals, 0 missing episodes" in shown
    no_further_action = ("screen", reference, "--risk", "medium", "--outcome", "no_further_action",
                         "--rationale", "Synthetic.", "--child", "C1=no_further_action")
    # Informing no one: only on a supervisor's own decision, with its reason, that children's social care need not be.
    quiet = await cli("screener", *no_further_action, exit_code=EXIT_CODES[409])
    assert "agencies_informed" in quiet.stderr
    decided = await cli.json("inspector", "csc-not-informed", reference, "--rationale", "Synthetic: known to them.")
    assert decided["csc_not_informed"]["decided_by"] == "INSP-2501"
    assert "children's social care not informed" in (await cli("auditor", "show", reference)).stdout
    closed = await cli.json("screener", *no_further_action)
    assert closed["close_reason"] == "no_further_action"


async def test_a_days_triage_from_the_cli(cli, time_env, sla_policy):
    today = (await time_env.get_current_time()).date()
    # A past working day (whatever date the shared clock has reached): its list holds what the read model received then.
    day = today - timedelta(days=7)
    while day.weekday() >= 5 or day in sla_policy.bank_holidays:
        day -= timedelta(days=1)
    unopened = day - timedelta(days=7)
    while unopened.weekday() >= 5 or unopened in sla_policy.bank_holidays:
        unopened -= timedelta(days=1)
    await cli("officer", "triage", "open", day.isoformat(), exit_code=EXIT_CODES[403])
    opened = await cli.json("screener", "triage", "open", day.isoformat())
    track(time_env.client, opened["triage_id"])
    assert opened["triage_id"] == f"TRIAGE-{day.isoformat()}"
    shown = (await cli("auditor", "triage", "show", day.isoformat())).stdout
    assert opened["triage_id"] in shown and "Listed referrals" in shown
    missing = await cli("auditor", "triage", "show", unopened.isoformat(), exit_code=EXIT_CODES[404])
    assert "day: no such triage" in missing.stderr
    await cli("auditor", "triage", "show", "2026-13-01", exit_code=2)
    unlisted = await cli("screener", "triage", "decide", day.isoformat(), "REF-00000-00000", "--outcome", "joint_visit",
                         "--rationale", "Synthetic.", exit_code=EXIT_CODES[409])
    assert "day:" in unlisted.stderr or "reference: not on this day's triage list" in unlisted.stderr
