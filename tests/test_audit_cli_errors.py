"""Every audit command answers a bad input (an unknown or malformed reference, a malformed month or time, a selection
that holds nothing) with one line and its own exit code, never a traceback; the CLI finds its settings as the rest
does and names everything it still needs at once; the sample explains itself and keeps a drawn month unless redrawn."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from typer.testing import CliRunner, Result

from cli.audit import Exit, audit_app
from starter.synthetic import OFFICER
from tests.audit_helpers import GENERATIONS, KEYRING, recorded_path
from tests.conftest import TEST_KEYRING
from tests.test_audit_records import LONDON, record_referral
from tests.test_reconcile_projections import scratch_database
from workflows.audit_models import AuditWorklist, ItemStatus, SampleCategory
from workflows.models import IncidentType

runner = CliRunner()
UNKNOWN = {"REF-00000-00000": "no such referral", "MIS-00000-00000": "no such missing episode",
           "TRIAGE-1999-01-04": "no such daily triage"}
MALFORMED_REFERENCE = "REF-123"
NOT_A_TIME = "yesterday"
NOTHING_STARTED = ["--since", "2199-01-01T00:00+00:00"]
PATH = "report_in_lieu"


def audit_env(tmp_path: Path, **settings: str | None) -> dict[str, str | None]:
    """Nothing from the machine: an empty data dir (no embedded stack), then only the settings given."""
    unset = dict.fromkeys(["TEMPORAL_ADDRESS", "DATABASE_URL", "ENCRYPTION_KEYS", "ENCRYPTION_KEYS_FILE",
                           "ENCRYPTION_KEY_PROVIDER", "REFERRALS_AUDITOR_ID"])
    return unset | {"DATA_DIR": str(tmp_path / "data")} | settings


async def audit(env: dict[str, str | None], *args: str) -> Result:
    """`referrals audit ...` in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, audit_app, list(args), env=env)


def one_line(result: Result) -> str:
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def bad_inputs(out: str, known: str, folder: str) -> list[tuple[list[str], Exit, str]]:
    """Each command with each kind of bad input it can be given, the exit code and the words expected."""
    cases: list[tuple[list[str], Exit, str]] = []
    for command in (["export", "-o", out, "-r"], ["timeline"], ["reconcile", "-r"]):
        cases += [(command + [reference], Exit.UNKNOWN, words) for reference, words in UNKNOWN.items()]
        cases.append((command + [MALFORMED_REFERENCE], Exit.MALFORMED, "is not a case reference"))
    cases += [(["as-of", reference, "2026-01-01T00:00+00:00"], Exit.UNKNOWN, words) for reference, words in UNKNOWN.items()]
    cases += [
        (["as-of", MALFORMED_REFERENCE, "2026-01-01T00:00+00:00"], Exit.MALFORMED, "is not a case reference"),
        (["as-of", known, NOT_A_TIME, "--from-dir", folder], Exit.MALFORMED, "TIME: 'yesterday' is not an ISO 8601 time"),
        (["as-of", known, "2199-01-01T00:00+00:00", "--from-dir", folder], Exit.MALFORMED, "is in the future"),
        (["as-of", known, "2001-01-01T00:00+00:00", "--from-dir", folder], Exit.MALFORMED, "no facts were recorded"),
        (["timeline", known, "--at", NOT_A_TIME, "--from-dir", folder], Exit.MALFORMED, "--at: 'yesterday'"),
        (["timeline", known, "--at", "2199-01-01T00:00+00:00", "--from-dir", folder], Exit.MALFORMED, "in the future"),
        (["timeline", "MIS-00000-00000", "--from-dir", folder], Exit.UNKNOWN, "no such missing episode in the export"),
    ]
    for command in (["export", "-o", out], ["replay"], ["reconcile"]):
        cases += [
            (command + ["--since", NOT_A_TIME], Exit.MALFORMED, "--since: 'yesterday' is not an ISO 8601 time"),
            (command + ["--until", "2026-02-30"], Exit.MALFORMED, "--until: '2026-02-30'"),
            (command + NOTHING_STARTED, Exit.EMPTY, "no case was"),
        ]
    cases += [
        (["replay", "--query", "WorkflowId = 'no-such-workflow'"], Exit.EMPTY, "no case was started in that range"),
        (["sample", "--month", "2026-13"], Exit.MALFORMED, "--month: '2026-13' is not a month"),
        (["sample", "--month", "1850-01"], Exit.MALFORMED, "is not a month"),
        (["sample", "--month", "1999-01"], Exit.EMPTY, "nothing to sample"),
        (["sample", "--month", "1999-01", "--quota", "burglary=1"], Exit.MALFORMED, "--quota 'burglary=1'"),
        (["sample", "--month", "1999-01", "--quota", "cse=-1"], Exit.MALFORMED, "--quota 'cse=-1'"),
    ]
    return cases


async def test_every_command_answers_each_bad_input_in_one_line_with_its_own_exit_code(
    dev_env, postgres_dsn, pool, tmp_path
):
    env = audit_env(tmp_path, TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
                    DATABASE_URL=postgres_dsn, ENCRYPTION_KEYS=KEYRING.to_json(), REFERRALS_AUDITOR_ID="AUD-4101")
    cases = bad_inputs(str(tmp_path / "out"), recorded_path(PATH).reference, str(GENERATIONS[0] / PATH))
    assert {args[0] for args, _, _ in cases} == {c.name or c.callback.__name__ for c in audit_app.registered_commands} - {"schedule"}
    assert {code for _, code, _ in cases} == {Exit.UNKNOWN, Exit.MALFORMED, Exit.EMPTY}
    for args, code, words in cases:
        result = await audit(env, *args)
        assert result.exit_code == code, (args, result.output)
        assert words in one_line(result), (args, result.output)
    # Nothing was read, so nothing reached the access log.
    assert await pool.fetchval("SELECT count(*) FROM access_log WHERE actor_id = 'AUD-4101'") == 0


async def test_the_cli_names_everything_it_still_needs_in_one_message(tmp_path):
    result = await audit(audit_env(tmp_path), "timeline", "REF-00000-00000")
    assert result.exit_code == Exit.UNAVAILABLE
    message = one_line(result)
    for needed in ("TEMPORAL_ADDRESS", "DATABASE_URL", "ENCRYPTION_KEYS_FILE", "--actor STAFF_ID", "make run"):
        assert needed in message, needed
    # The sample reads only the database: it asks for that alone.
    sample = one_line(await audit(audit_env(tmp_path, REFERRALS_AUDITOR_ID="AUD-4102"), "sample", "--month", "2026-01"))
    assert "DATABASE_URL" in sample and "TEMPORAL_ADDRESS" not in sample and "--actor" not in sample


async def test_the_cli_finds_the_running_embedded_stacks_settings(dev_env, postgres_dsn, pool, tmp_path):
    """As `make run` leaves them: its state file with this (live) process as the stack, its keyring beside it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "stack.json").write_text(json.dumps({
        "stack": os.getpid(), "temporal_address": dev_env.client.service_client.config.target_host,
        "database_url": postgres_dsn}))
    (data / "encryption-keys.json").write_text(TEST_KEYRING.to_json())
    result = await audit(audit_env(tmp_path, REFERRALS_AUDITOR_ID="AUD-4103"), "reconcile", "-r", "REF-00000-00000")
    # It reached Temporal and PostgreSQL: the reference is unknown, not a setting.
    assert result.exit_code == Exit.UNKNOWN and "no such referral" in one_line(result)
    # A stack no longer running is not taken for one.
    (data / "stack.json").write_text(json.dumps({"stack": 2**22 + 7, "database_url": postgres_dsn}))
    stopped = await audit(audit_env(tmp_path, REFERRALS_AUDITOR_ID="AUD-4103"), "reconcile", "-r", "REF-00000-00000")
    assert stopped.exit_code == Exit.UNAVAILABLE and "DATABASE_URL" in one_line(stopped)


async def test_the_sample_draws_each_case_once_explains_shortfalls_and_keeps_a_drawn_month_unless_redrawn(
    postgres_dsn, pool, tmp_path
):
    month = "2019-03"
    start = datetime(2019, 3, 4, 10, tzinfo=LONDON)
    # Two CSE referrals, one of them with section 47 enquiries, and two other section 47 referrals.
    cse = {await record_referral(pool, 7700 + n, start + timedelta(days=n), IncidentType.CSE, section_47=n == 0)
           for n in range(2)}
    for n in range(2):
        await record_referral(pool, 7710 + n, start + timedelta(days=5 + n), IncidentType.NEGLECT, section_47=True)
    env = audit_env(tmp_path, DATABASE_URL=postgres_dsn, REFERRALS_AUDITOR_ID="AUD-4104")
    quotas = ["--quota", "cse=2", "--quota", "section_47_vist=2", "--quota", "vist=0", "--quota", "section_46=0",
              "--quota", "missing=1"]
    drawn = await audit(env, "sample", "--month", month, *quotas, "--json")
    assert drawn.exit_code == 0, drawn.output
    worklist = AuditWorklist.model_validate_json(drawn.stdout)
    # Section 47 is drawn first, but leaves alone the CSE referral CSE needs: both CSE referrals are drawn as CSE.
    assert {i.reference for i in worklist.items if i.category is SampleCategory.CSE} == cse
    assert len({i.reference for i in worklist.items}) == len(worklist.items) == 4
    assert all(item.status is ItemStatus.TO_REVIEW for item in worklist.items)
    assert worklist.shortfall == {SampleCategory.MISSING: 1}
    assert worklist.shortfall_reasons[SampleCategory.MISSING].explained() == "1 fewer than the quota of 1: none in the month"

    table = await audit(env, "sample", "--month", month)
    assert table.exit_code == 0 and "to review" in table.output and "open" not in table.output
    assert "missing: 1 fewer than the quota of 1: none in the month" in table.output

    # Other quotas for the month drawn: refused, naming the way to redraw; the worklist stays.
    more = ["--quota", "cse=3", "--quota", "section_47_vist=3", "--quota", "vist=0", "--quota", "section_46=0",
            "--quota", "missing=0"]
    refused = await audit(env, "sample", "--month", month, *more)
    assert refused.exit_code == Exit.CONFLICT and "--redraw" in one_line(refused)
    redrawn = await audit(env, "sample", "--month", month, *more, "--redraw", "--json")
    assert redrawn.exit_code == 0, redrawn.output
    again = AuditWorklist.model_validate_json(redrawn.stdout)
    assert again.redraw_of == worklist.worklist_id and again.worklist_id != worklist.worklist_id
    # Three of each asked for: section 47 needs all three of its own, so CSE falls short and says where its other went.
    assert {c: r.explained() for c, r in again.shortfall_reasons.items()} == {
        SampleCategory.CSE: "2 fewer than the quota of 3: 2 in the month, already drawn 1 as section_47_vist"}
    superseded = await pool.fetchrow("SELECT superseded_at, superseded_by FROM audit_worklists WHERE id = $1",
                                     worklist.worklist_id)
    assert superseded["superseded_at"] is not None and superseded["superseded_by"] == "AUD-4104"
    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM access_log WHERE actor_id = 'AUD-4104' ORDER BY id")]
    assert actions == ["audit_sample", "audit_sample", "audit_sample_redraw"]
    assert OFFICER.id not in redrawn.output


async def test_the_reconciliation_table_piped_keeps_every_column_whole_and_names_each_rows_fact(
    pool, postgres_dsn, tmp_path
):
    """A recorded referral against an empty read model: every fact is missing from it, each named by its kind."""
    async with scratch_database(pool, postgres_dsn) as empty:
        folder = GENERATIONS[0] / PATH
        env = audit_env(tmp_path, DATABASE_URL=urlsplit(postgres_dsn)._replace(path="/recorded_paths").geturl(),
                        ENCRYPTION_KEYS=KEYRING.to_json(), REFERRALS_AUDITOR_ID="AUD-4105")
        result = await audit(env, "reconcile", "--from-dir", str(folder))
        assert result.exit_code == Exit.FOUND_PROBLEMS, result.output
        reference = recorded_path(PATH).reference
        row = next(line for line in result.output.splitlines() if f"{reference}#1 " in line)
        assert "missing_in_database" in row and "referral_events" in row and "vist_submitted" in row
        assert max(len(line) for line in result.output.splitlines()) > 80  # not cut to a terminal's width
        assert await empty.fetchval("SELECT count(*) FROM referral_events") == 0
