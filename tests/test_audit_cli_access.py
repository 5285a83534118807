"""`referrals audit ...` names its auditor and records each read in the access log, or refuses to run."""

from __future__ import annotations

import asyncio
from datetime import datetime

from typer.testing import CliRunner, Result

from cli.main import app
from tests.test_audit_records import LONDON, record_referral
from workflows.models import IncidentType
from tests.audit_helpers import GENERATIONS, KEYRING, recorded_path
from workflows.audit_models import AuditWorklist

runner = CliRunner()
PATH = "report_in_lieu"


async def audit(postgres_dsn: str, *args: str, auditor: str | None = None) -> Result:
    """`referrals audit ...` in a thread: the command runs its own event loop."""
    env = {"ENCRYPTION_KEYS": KEYRING.to_json(), "DATABASE_URL": postgres_dsn, "REFERRALS_AUDITOR_ID": auditor}
    return await asyncio.to_thread(runner.invoke, app, ["audit", *args], env=env)


async def test_each_audit_read_is_recorded_under_the_named_auditor(postgres_dsn, pool, tmp_path):
    await record_referral(pool, 7600, datetime(2019, 2, 12, 10, tzinfo=LONDON), IncidentType.NEGLECT)
    reference = recorded_path(PATH).reference
    folder = str(GENERATIONS[0] / PATH)
    made = await audit(postgres_dsn, "timeline", reference, "--from-dir", folder, "--json-file", str(tmp_path / "t.json"),
                 "--actor", "AUD-7101")
    assert made.exit_code == 0, made.output
    sampled = await audit(postgres_dsn, "sample", "--month", "2019-02", "--seed", "5", "--json", auditor="AUD-7102")
    assert sampled.exit_code == 0, sampled.output
    assert AuditWorklist.model_validate_json(sampled.stdout).drawn_by == "AUD-7102"

    rows = await pool.fetch(
        """SELECT actor_id, actor_role, channel, action, reference, detail::text FROM access_log
           WHERE actor_id IN ('AUD-7101', 'AUD-7102') ORDER BY id"""
    )
    assert [(r["actor_id"], r["actor_role"], r["channel"], r["action"], r["reference"]) for r in rows] == [
        ("AUD-7101", "auditor", "audit", "audit_timeline", reference),
        ("AUD-7102", "auditor", "audit", "audit_sample", None),
    ]
    assert '"source": "export"' in rows[0]["detail"] and '"client": "cli"' in rows[0]["detail"]


async def test_an_audit_command_without_an_auditor_refuses_to_run(postgres_dsn, pool):
    before = await pool.fetchval("SELECT count(*) FROM access_log WHERE channel = 'audit'")
    folder = str(GENERATIONS[0] / PATH)
    for args in (["timeline", recorded_path(PATH).reference, "--from-dir", folder],
                 ["replay", "--from-dir", folder, "--workers", "1"],
                 ["sample", "--month", "2019-02"]):
        refused = await audit(postgres_dsn, *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "--actor STAFF_ID or REFERRALS_AUDITOR_ID" in refused.output
    not_a_staff_id = await audit(postgres_dsn, "sample", "--month", "2019-02", auditor="someone else")
    assert not_a_staff_id.exit_code == 2 and "not a staff ID" in not_a_staff_id.output
    assert await pool.fetchval("SELECT count(*) FROM access_log WHERE channel = 'audit'") == before
