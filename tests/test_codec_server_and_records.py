"""The codec server's access rules (bearer tokens, the dashboard's session from the Web UI), the access log, and
retention of closed referrals' records."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from readmodel.access_log import AccessLog
from readmodel.retention import CASE_TABLES, Retention
from runtime.codec import EncryptionCodec
from auth.tokens import Authenticator, TokenHolder
from api.codec_server import DashboardSessions, create_codec_app
from auth.sessions import COOKIE, Sessions
from starter.synthetic import (
    AUDITOR, SCREENER, SERGEANT, approval, screening, synthetic_missing_report, synthetic_trigger_plan,
)
from tests.conftest import TEST_KEYRING
from tests.helpers import eventually, finished, screened_and_told, seeded, start_episode, start_plan, start_referral
from workflows.models import Agency, Role, ScreeningOutcome
from workflows.referral import ReferralWorkflow

TOKENS = {
    "auditor-token": TokenHolder(id=AUDITOR.id, role=Role.AUDITOR),
    "screener-token": TokenHolder(id=SCREENER.id, role=Role.SCREENER),
    "partner-token": TokenHolder(id="HV-5001", role=Role.PARTNER, agency=Agency.HEALTH),
}
UI = "http://localhost:8233"


@pytest.fixture
async def codec_http(pool):
    access_log = AccessLog(pool)

    async def record(who, action, detail):
        await access_log.record(who.actor, "codec_server", action, detail=detail)

    authenticator = Authenticator(TOKENS)
    sessions = DashboardSessions(COOKIE, Sessions(pool).caller)
    app = create_codec_app(EncryptionCodec(TEST_KEYRING), authenticator, [UI], record, sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://codec") as client:
        yield client


async def referral_start_payloads(time_env, time_queue, sla_policy) -> tuple[str, dict]:
    submission, handle = await start_referral(time_env.client, time_queue, sla_policy, seed=90)
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return submission.children[0].name, json_format.MessageToDict(Payloads(payloads=started.input.payloads))


async def test_codec_server_decodes_for_auditors_only(codec_http, time_env, time_queue, sla_policy, pool):
    child_name, sealed = await referral_start_payloads(time_env, time_queue, sla_policy)
    assert child_name not in str(sealed)

    assert (await codec_http.post("/decode", json=sealed)).status_code == 401
    assert (await codec_http.post("/decode", json=sealed, headers={"Authorization": "Bearer wrong"})).status_code == 401
    for token in ("screener-token", "partner-token"):
        refused = await codec_http.post("/decode", json=sealed, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403
        assert child_name not in refused.text

    opened = await codec_http.post("/decode", json=sealed, headers={"Authorization": "Bearer auditor-token", "X-Namespace": "default"})
    assert opened.status_code == 200
    data = base64.b64decode(opened.json()["payloads"][0]["data"]).decode()
    assert child_name in data

    # The read is in the access log, with who and when, and nothing about the child.
    (entry,) = [e for e in await AccessLog(pool).query(actor_id=AUDITOR.id) if e.channel == "codec_server"][:1]
    assert entry.action == "decode_payloads"
    assert entry.detail == {"payloads": 1, "namespace": "default", "credentials": "token"}
    assert datetime.now(timezone.utc) - entry.at < timedelta(minutes=5)

    # Encoding round-trips, and a malformed body is a clear 400, not a 500.
    plain = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(b'"x"').decode()}]}
    sealed_again = await codec_http.post("/encode", json=plain, headers={"Authorization": "Bearer auditor-token"})
    assert sealed_again.status_code == 200 and sealed_again.json() != plain
    broken = await codec_http.post("/decode", content=b"not json", headers={"Authorization": "Bearer auditor-token"})
    assert broken.status_code == 400
    # A payload that is not sealed by a key in the ring is refused, not shown as it is.
    unsealed = await codec_http.post("/decode", json=plain, headers={"Authorization": "Bearer auditor-token"})
    assert unsealed.status_code == 422
    assert unsealed.json()["detail"] == "payloads[0]: refused, the payload is not sealed (plaintext)"


async def test_the_web_ui_decodes_with_an_auditors_dashboard_session_and_for_nobody_else(
    codec_http, time_env, time_queue, sla_policy, pool
):
    child_name, sealed = await referral_start_payloads(time_env, time_queue, sla_policy)
    # Sessions as signing in on the dashboard opens them; one signed out since.
    sessions = Sessions(pool)
    authenticator = Authenticator(TOKENS)
    opened_for = {token: (await sessions.open(await authenticator.authenticate(token)))[0]
                  for token in ("auditor-token", "screener-token", "partner-token")}
    signed_out, _ = await sessions.open(await authenticator.authenticate("auditor-token"))
    await sessions.revoke(signed_out)

    def from_the_ui(session: str | None, origin: str | None = UI) -> dict:
        """What the Web UI's fetch with credentials sends: its origin, and the cookie the browser holds for the host."""
        cookie = opened_for.get(session, session)
        return ({"Origin": origin} if origin else {}) | ({"Cookie": f"{COOKIE}={cookie}"} if cookie else {})

    opened = await codec_http.post("/decode", json=sealed, headers=from_the_ui("auditor-token") | {"X-Namespace": "default"})
    assert opened.status_code == 200
    assert child_name in base64.b64decode(opened.json()["payloads"][0]["data"]).decode()
    (entry,) = [e for e in await AccessLog(pool).query(actor_id=AUDITOR.id) if e.channel == "codec_server"][:1]
    assert entry.detail == {"payloads": 1, "namespace": "default", "credentials": "dashboard_session"}

    refusals = {
        "nobody signed in": (from_the_ui(None), 401),
        "a session that is not one": (from_the_ui("no-such-session"), 401),
        "a session signed out": (from_the_ui(signed_out), 401),
        "an auditor's token as the cookie": ({"Origin": UI, "Cookie": f"{COOKIE}=auditor-token"}, 401),
        "a screener's session": (from_the_ui("screener-token"), 403),
        "a partner's session": (from_the_ui("partner-token"), 403),
        # Another page of the same site could make the browser send the cookie: only the Web UI may spend it.
        "an auditor's session from another page": (from_the_ui("auditor-token", "http://localhost:9999"), 403),
        "an auditor's session with no origin": (from_the_ui("auditor-token", None), 403),
    }
    for case, (headers, status) in refusals.items():
        refused = await codec_http.post("/decode", json=sealed, headers=headers)
        assert refused.status_code == status, case
        assert child_name not in refused.text, case
    # A bearer token is the request's credentials when it carries one, whatever cookie comes with it.
    mixed = await codec_http.post("/decode", json=sealed, headers=from_the_ui("auditor-token") | {"Authorization": "Bearer screener-token"})
    assert mixed.status_code == 403

    # The Web UI's preflight for a credentialed request: its own origin, with credentials, and nobody else's.
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    allowed = await codec_http.options("/decode", headers={"Origin": UI, **preflight})
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert (await codec_http.get("/health")).json() == {"status": "ok"}


async def test_codec_server_cors_admits_only_the_web_ui(codec_http):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = await codec_http.options("/decode", headers={"Origin": UI, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    elsewhere = await codec_http.options("/decode", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_access_log_is_queryable_by_reference_and_actor(pool):
    log = AccessLog(pool)
    await log.record(SERGEANT, "api", "read_referral", reference="REF-AAAAA-BBBBB")
    await log.record(AUDITOR, "audit", "timeline", reference="REF-AAAAA-BBBBB", detail={"format": "html"})
    entries = await log.query(reference="REF-AAAAA-BBBBB")
    assert [(e.actor_id, e.channel, e.action) for e in entries] == [
        (AUDITOR.id, "audit", "timeline"),
        (SERGEANT.id, "api", "read_referral"),
    ]
    with pytest.raises(ValueError, match="channel: must be one of"):
        await log.record(SERGEANT, "email", "read_referral")


async def test_paging_the_access_log_newest_first_neither_repeats_nor_skips_while_reads_are_recorded(pool):
    log = AccessLog(pool)
    reference = "REF-PAGED-00001"
    for n in range(5):
        await log.record(SERGEANT, "api", f"read_{n}", reference=reference)
    pages, before = [], None
    while page := await log.query(reference=reference, limit=2, before=before):
        pages.append([e.action for e in page])
        before = page[-1].id
        # Each page read is itself recorded, newest of all: it must not push an entry onto the next page.
        await log.record(AUDITOR, "api", "read_access_log", reference=reference)
    assert pages == [["read_4", "read_3"], ["read_2", "read_1"], ["read_0"]]


async def test_retention_dry_run_then_purge_of_closed_referrals(time_env, time_queue, sla_policy, pool):
    submission, closed = await start_referral(time_env.client, time_queue, sla_policy, seed=91)
    await closed.execute_update(ReferralWorkflow.review, approval())
    await screened_and_told(time_env.client, closed, screening(submission, ScreeningOutcome.NO_FURTHER_ACTION))
    await finished(time_env, closed)
    _, still_open = await start_referral(time_env.client, time_queue, sla_policy, seed=92)
    await eventually(
        lambda: pool.fetchval("SELECT count(*) FROM referrals WHERE reference = ANY($1) AND stage IS NOT NULL",
                              [closed.id, still_open.id]),
        lambda n: n == 2,
    )
    # Pretend the closure was long ago: seven years against a six-year retention period.
    await pool.execute("UPDATE referrals SET closed_at = now() - interval '7 years' WHERE reference = $1", closed.id)

    retention = Retention(pool, retention_days=6 * 365)
    due = await retention.due()
    assert closed.id in due.references and still_open.id not in due.references
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", closed.id) > 0  # dry run

    report = await retention.purge(SERGEANT)
    assert closed.id in report.references and report.rows > 0
    for table in ("referrals", "referral_events", "referral_children", "submission_versions", "stage_transitions"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE reference = $1", closed.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = $1", still_open.id) == 1
    purge = await pool.fetchrow("SELECT actor_id, referral_count, refs FROM retention_purges ORDER BY id DESC LIMIT 1")
    assert purge["actor_id"] == SERGEANT.id and closed.id in purge["refs"]


@pytest.mark.parametrize("case_table", ["referrals", "missing_episodes", "trigger_plans"])
async def test_retention_removes_every_table_that_holds_rows_about_a_case(pool, case_table):
    # A table whose rows name a case (a triage's list, an episode's reviews, a plan's versions) and that a purge
    # skipped would block the purge.
    referring = await pool.fetch(
        """SELECT DISTINCT c.conrelid::regclass::text AS tab
           FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = $1::regclass""",
        case_table,
    )
    purged = [table for table, _ in CASE_TABLES]
    assert referring and {row["tab"] for row in referring} <= set(purged)
    assert all(purged.index(row["tab"]) < purged.index(case_table) for row in referring)


async def test_retention_removes_closed_missing_episodes_and_ended_trigger_plans(time_env, time_queue, sla_policy, pool):
    report = synthetic_missing_report(rng=seeded("retention"))
    _, episode = await start_episode(time_env.client, time_queue, sla_policy, report)
    now = await time_env.get_current_time()
    plan = await start_plan(time_env.client, time_queue, sla_policy, report.child, synthetic_trigger_plan(now + timedelta(days=30)))
    await eventually(lambda: pool.fetchval("SELECT count(*) FROM trigger_plan_versions WHERE plan_id = $1", plan.id),
                     lambda n: n == 1)
    _, kept = await start_episode(time_env.client, time_queue, sla_policy, seed="retention-kept")
    # Pretend the episode closed and the plan ended seven years ago, against a six-year retention period.
    await pool.execute("UPDATE missing_episodes SET closed_at = now() - interval '7 years' WHERE episode_id = $1", episode.id)
    await pool.execute("UPDATE trigger_plans SET ended_at = now() - interval '7 years' WHERE plan_id = $1", plan.id)

    retention = Retention(pool, retention_days=6 * 365)
    due = await retention.due()
    assert {episode.id, plan.id} <= set(due.references) and kept.id not in due.references
    purged = await retention.purge(SERGEANT)
    assert {episode.id, plan.id} <= set(purged.references)
    for table, key, case in (("missing_episodes", "episode_id", episode.id), ("referral_events", "reference", episode.id),
                             ("trigger_plans", "plan_id", plan.id), ("trigger_plan_versions", "plan_id", plan.id),
                             ("referral_events", "reference", plan.id)):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {key} = $1", case) == 0, table
    assert await pool.fetchval("SELECT count(*) FROM missing_episodes WHERE episode_id = $1", kept.id) == 1
