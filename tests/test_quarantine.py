"""A fact the database refuses is never lost in silence: quarantined, flagged, alerted, reconciled, re-applied."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.alerts import EscalationAlerts
from activities.records import ReferralRecords, fact_bytes
from api.app import create_app
from audit.reconcile import Problem, reconcile
from starter.synthetic import OFFICER, SCREENER, approval, synthetic_vist
from tests.api_fixtures import USERS, auth, authenticator, tokens  # noqa: F401
from tests.helpers import eventually, sign_in, start_referral, state_when
from tests.local_servers import MailServer
from tests.scrape import scraped, series
from worker import build_worker
from workflows.facts import FactBatch, RecordedEvent
from workflows.models import (
    Actor,
    CloseReason,
    Closure,
    RecordOutcome,
    RiskGrade,
    Role,
    Stage,
)
from workflows.referral import ReferralWorkflow

ADMIN_EMAIL = "records-admin@police.example"
ADMIN = Actor(id="ADM-9001", role=Role.ADMIN)


def fact(reference: str, seq: int, kind: str, payload: dict, at: datetime | None = None) -> RecordedEvent:
    """A fact built without validation: what a worker running older, laxer code might hand the activity."""
    return RecordedEvent.model_construct(
        stream=reference, seq=seq, reference=reference, kind=kind, at=at or datetime.now(timezone.utc),
        actor=OFFICER, stage=Stage.SUPERVISOR_REVIEW, risk=None, payload=payload,
    )


def fresh_reference() -> str:
    code = uuid.uuid4().hex[:10].upper().replace("I", "J").replace("L", "M").replace("O", "P").replace("U", "V")
    return f"REF-{code[:5]}-{code[5:]}"


async def test_a_batch_written_again_locally_keeps_its_first_write_and_a_different_fact_in_its_place_is_quarantined(pool):
    """A local activity commits before its workflow task completes, and a task that did not complete runs again and
    writes its batch again, each fact with the later task's time. The database keeps the first write, and the result
    (the history's marker) echoes the facts as written; a different fact at a place already taken is quarantined."""
    records = ReferralRecords(pool)
    local = ActivityEnvironment()
    local.info = dataclasses.replace(local.info, is_local=True)
    reference = fresh_reference()
    submission = synthetic_vist(rng=random.Random(f"rewritten:{reference}"))
    first_at = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    opened = fact(reference, 1, "vist_submitted", {"version": 1, "submission": submission.model_dump(mode="json")},
                  at=first_at).model_copy(update={"risk": submission.initial_risk})
    closed = fact(reference, 2, "closed", {"reason": "withdrawn", "note": "fine"}, at=first_at)

    written = await local.run(records.record_facts, FactBatch(events=[opened, closed]))
    assert [o.recorded for o in written.outcomes] == [True, True] and written.written == [opened, closed]

    later = first_at + timedelta(seconds=7)
    again = await local.run(records.record_facts, FactBatch(events=[e.model_copy(update={"at": later}) for e in (opened, closed)]))
    assert [(o.recorded, o.quarantined) for o in again.outcomes] == [(False, False), (False, False)]
    assert again.written == [opened, closed]  # the first times, as the database holds them
    assert await pool.fetchval("SELECT at FROM referral_events WHERE stream = $1 AND seq = 2", reference) == first_at

    # An activity's input is in the history already: its result echoes nothing.
    remote = await ActivityEnvironment().run(records.record_facts, FactBatch(events=[closed]))
    assert remote.written is None and not remote.outcomes[0].recorded

    other = fact(reference, 2, "closed", {"reason": "withdrawn", "note": "a different closure"}, at=later)
    taken = await local.run(records.record_facts, FactBatch(events=[other]))
    assert taken.outcomes[0].quarantined and "holds a different fact" in taken.outcomes[0].quarantine_reason
    row = await pool.fetchrow("SELECT fact, reason FROM quarantined_facts WHERE stream = $1 AND seq = 2", reference)
    assert bytes(row["fact"]) == fact_bytes(other) and row["reason"].startswith("PlaceTaken: ")
    assert await pool.fetchval("SELECT record_incomplete FROM referrals WHERE reference = $1", reference)


@pytest.mark.parametrize(
    "poison",
    [
        {"note": "nul \x00 character"},
        {"note": "lone surrogate \ud800"},
        {"at": "0001-01-01T05:00:00+14:00"},
    ],
    ids=["nul", "surrogate", "year-one-at-plus-14"],
)
async def test_a_fact_postgresql_refuses_is_quarantined_whole_with_its_reason(pool, poison):
    records = ReferralRecords(pool)
    reference = fresh_reference()
    submission = synthetic_vist(rng=random.Random(f"quarantine:{reference}"))
    first = fact(reference, 1, "vist_submitted", {"version": 1, "submission": submission.model_dump(mode="json")})
    first = first.model_copy(update={"risk": submission.initial_risk})
    assert (await records.record_event(first)).recorded
    at = datetime.fromisoformat(poison["at"]) if "at" in poison else None
    refused = fact(reference, 2, "closed", {"reason": "withdrawn", "note": poison.get("note", "fine")}, at=at)

    outcome = await records.record_event(refused)

    assert outcome.quarantined and not outcome.recorded
    row = await pool.fetchrow("SELECT * FROM quarantined_facts WHERE stream = $1 AND seq = 2", reference)
    assert row["kind"] == "closed" and row["resolved_at"] is None
    # The reason names the error, never the value; the fact is kept byte for byte.
    assert re.fullmatch(r"[A-Za-z]+Error( \[[0-9A-Z]{5}\])?: [a-zA-Z ]+", row["reason"]), row["reason"]
    assert "\x00" not in row["reason"] and "0001" not in row["reason"]
    assert bytes(row["fact"]) == fact_bytes(refused)
    assert json.loads(bytes(row["fact"]))["payload"]["note"] == refused.payload["note"]
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE stream = $1", reference) == 1
    assert await pool.fetchval("SELECT record_incomplete FROM referrals WHERE reference = $1", reference)
    # A retried activity quarantines the same fact once.
    assert (await records.record_event(refused)).quarantined
    assert await pool.fetchval("SELECT count(*) FROM quarantined_facts WHERE stream = $1", reference) == 1


async def test_in_one_batch_a_refused_fact_is_quarantined_alone_and_the_rest_are_recorded(pool):
    """A decision's facts go in one activity: the refused ones (a value PostgreSQL cannot store, a fact naming
    no case) are quarantined each alone, the others recorded, and a retried batch writes nothing twice."""
    records = ReferralRecords(pool)
    reference, nowhere = fresh_reference(), fresh_reference()
    submission = synthetic_vist(rng=random.Random(f"quarantine-batch:{reference}"))
    first = fact(reference, 1, "vist_submitted", {"version": 1, "submission": submission.model_dump(mode="json")})
    first = first.model_copy(update={"risk": submission.initial_risk})
    unstorable = fact(reference, 2, "closed", {"reason": "withdrawn", "note": "nul \x00 character"})
    regraded = fact(reference, 3, "risk_regraded", {"from_risk": "medium", "to_risk": "high", "reason": "Synthetic."})
    # A fact about a referral the read model does not hold: refused by the case check, at its own savepoint's end.
    orphan = fact(nowhere, 1, "risk_regraded", {"from_risk": "medium", "to_risk": "high", "reason": "Synthetic."})
    orphan = orphan.model_copy(update={"stage": None})

    outcomes = await records.record_events([first, unstorable, regraded, orphan])

    assert [(o.recorded, o.quarantined) for o in outcomes] == [(True, False), (False, True), (True, False), (False, True)]
    assert "ForeignKeyViolation" in outcomes[3].quarantine_reason
    kept = await pool.fetch("SELECT stream, seq FROM referral_events WHERE stream = ANY($1) ORDER BY seq",
                            [reference, nowhere])
    assert [(r["stream"], r["seq"]) for r in kept] == [(reference, 1), (reference, 3)]
    assert await pool.fetchval("SELECT risk FROM referrals WHERE reference = $1", reference) == "high"
    quarantined = await pool.fetch("SELECT stream, seq FROM quarantined_facts WHERE stream = ANY($1) ORDER BY stream",
                                   [reference, nowhere])
    assert sorted((r["stream"], r["seq"]) for r in quarantined) == sorted([(reference, 2), (nowhere, 1)])

    again = await records.record_events([first, unstorable, regraded, orphan])
    assert [(o.recorded, o.quarantined) for o in again] == [(False, False), (False, True), (False, False), (False, True)]
    assert await pool.fetchval("SELECT count(*) FROM referral_events WHERE stream = $1", reference) == 2


def test_results_of_workers_from_before_quarantine_decode_as_recorded():
    assert RecordOutcome.model_validate_json("true") == RecordOutcome(recorded=True)
    assert RecordOutcome.model_validate_json("false") == RecordOutcome(recorded=False)
    assert not RecordOutcome.model_validate_json("false").quarantined


async def listed(api, headers: dict[str, str], reference: str) -> dict:
    """The referral as the list shows it, page after page (the database may hold many referrals)."""
    params: dict[str, str | int] = {"limit": 200}
    while True:
        page = (await api.get("/referrals", params=params, headers=headers)).json()
        found = [item for item in page["items"] if item["reference"] == reference]
        if found or page["next_cursor"] is None:
            assert found, f"{reference} is not in the list"
            return found[0]
        params["cursor"] = page["next_cursor"]


@pytest.fixture
def mail():
    server = MailServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin_settings(settings, tmp_path, mail):
    directory = tmp_path / "directory.toml"
    directory.write_text(f'[administrators]\nrungs = [{{ role = "records administrator", email = "{ADMIN_EMAIL}" }}]\n')
    return settings.model_copy(
        update={
            "alert_directory_file": directory,
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "smtp_security": "none",
            "smtp_timeout_seconds": 2.0,
        }
    )


async def test_a_refused_submission_is_flagged_alerted_reconciled_and_reapplied(
    dev_env, pool, task_queue, admin_settings, sla_policy, mail, auth, authenticator, tokens
):
    # The cause: a column narrower than the product writes (a migration gone wrong). The fix widens it again.
    await pool.execute("ALTER TABLE referrals ALTER COLUMN station TYPE varchar(8)")
    before = await scraped(pool)
    app = create_app(dev_env.client, pool, admin_settings.model_copy(update={"task_queue": task_queue}),
                     authenticator=authenticator, sla_policy=sla_policy)
    as_user = auth
    try:
        async with (
            build_worker(dev_env.client, pool, admin_settings, task_queue=task_queue,
                         alerts=EscalationAlerts.from_settings(pool, admin_settings)),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=60) as api,
        ):
            # High risk: due within hours, so among the 50 nearest their deadline the dashboard lists per stage,
            # however many referrals the suite has left in review before it.
            submission = synthetic_vist(rng=random.Random("quarantine:e2e"), risk=RiskGrade.HIGH).model_copy(
                update={"station": "Testtown Quarantine Annexe"}
            )
            _, handle = await start_referral(dev_env.client, task_queue, sla_policy, submission=submission)
            reference = handle.id

            # The submission's fact is quarantined with its reason, and the outbox went on.
            quarantined = await eventually(
                lambda: api.get("/quarantine", params={"reference": reference}, headers=as_user("admin")),
                lambda r: r.status_code == 200 and len(r.json()) == 1,
                timeout=30,
            )
            (entry,) = quarantined.json()
            assert (entry["stream"], entry["seq"], entry["kind"]) == (reference, 1, "vist_submitted")
            assert entry["reason"].startswith("StringDataRightTruncationError [22001]")
            assert "Annexe" not in quarantined.text
            # The metrics show it: counted as it was refused, and in quarantine until re-applied.
            found = await scraped(pool)
            assert series(found, "referral_quarantined_facts", kind="vist_submitted") == (
                series(before, "referral_quarantined_facts", kind="vist_submitted") + 1
            )
            assert series(found, "referral_facts_quarantined_total", kind="vist_submitted") >= (
                series(before, "referral_facts_quarantined_total", kind="vist_submitted") + 1
            )

            # The referral is in the list, marked record incomplete (a placeholder from safe fields).
            mine = await listed(api, as_user("screener"), reference)
            assert mine["record_incomplete"] is True
            assert mine["incident_type"] == submission.incident.type.value and mine["stage"] == "supervisor_review"
            # And on the dashboard: in its stage's list, and on its own page.
            browser = (await sign_in(api, tokens["screener"])).headers
            board = await api.get("/dashboard/referrals", headers=browser)
            row = next(line for line in board.text.splitlines() if f'data-reference="{reference}"' in line)
            assert board.status_code == 200 and "record incomplete" in board.text.split(row, 1)[1].split("</tr>")[0]
            page = await api.get(f"/dashboard/referrals/{reference}", headers=browser)
            assert page.status_code == 200 and "data-record-incomplete" in page.text

            # The administrators are alerted by the workflow, through the alert channels.
            state = await state_when(handle, lambda s: any(e.reason == "recording_failed" for e in s.escalations),
                                     timeout=30)
            escalation = next(e for e in state.escalations if e.reason == "recording_failed")
            assert escalation.subject == f"{reference}#1" and escalation.addressed_to == "records administrators"
            await eventually(lambda: mail.messages, lambda m: len(m) == 1, timeout=30)
            (email,) = mail.messages
            assert email["To"] == ADMIN_EMAIL and "recording failed" in email["Subject"]
            assert reference in email["Subject"]
            body = email.get_content()
            for personal in [c.name for c in submission.children] + [submission.incident.location, submission.station]:
                assert personal not in body and personal not in email["Subject"]
            channels = await eventually(
                lambda: pool.fetch("SELECT channel, delivered_at FROM alert_deliveries WHERE escalation_id = $1",
                                   escalation.escalation_id),
                lambda rows: {r["channel"] for r in rows if r["delivered_at"]} == {"in_app", "email"},
            )
            assert channels

            # Reconciliation names the quarantined fact: not a fact in flight, not a silent gap.
            report = await reconcile(dev_env.client, pool, references=[reference])
            assert [(m.problem, m.key, m.kind) for m in report.mismatches] == [
                (Problem.QUARANTINED, f"{reference}#1", "vist_submitted")
            ]
            assert report.mismatches[0].reason == entry["reason"]

            # The next decision does not hang on the refused fact: it is recorded and answered.
            reviewed = await asyncio.wait_for(handle.execute_update(ReferralWorkflow.review, approval()), 120)
            assert reviewed.stage is Stage.SCREENING
            assert await pool.fetchval("SELECT stage FROM referrals WHERE reference = $1", reference) == "screening"

            # Re-applying before the cause is fixed changes nothing but the count of attempts.
            refused_again = await api.post("/quarantine/reapply", params={"reference": reference},
                                           headers=as_user("admin"))
            assert refused_again.status_code == 200 and refused_again.json()[0]["resolved"] is False
            # Only administrators re-apply.
            assert (await api.post("/quarantine/reapply", headers=as_user("sergeant"))).status_code == 403

            await pool.execute("ALTER TABLE referrals ALTER COLUMN station TYPE text")
            reapplied = await api.post("/quarantine/reapply", params={"reference": reference},
                                       headers=as_user("admin"))
            assert [(o["seq"], o["resolved"]) for o in reapplied.json()] == [(1, True)]
            row = await pool.fetchrow("SELECT station, record_incomplete, stage FROM referrals WHERE reference = $1",
                                      reference)
            assert (row["station"], row["record_incomplete"], row["stage"]) == (submission.station, False, "screening")
            history = await pool.fetchrow("SELECT * FROM quarantined_facts WHERE stream = $1", reference)
            assert history["reapply_attempts"] == 2 and history["resolved_by"] == USERS["admin"].id
            assert (await api.get("/quarantine", params={"reference": reference}, headers=as_user("admin"))).json() == []
            assert series(await scraped(pool), "referral_quarantined_facts", kind="vist_submitted") == (
                series(before, "referral_quarantined_facts", kind="vist_submitted")
            )
            logged = await pool.fetchval(
                "SELECT count(*) FROM access_log WHERE reference = $1 AND action = 'reapply_quarantined'", reference
            )
            assert logged == 2
            report = await reconcile(dev_env.client, pool, references=[reference])
            assert report.passed, report.mismatches

            await handle.execute_update(
                ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN, note="Synthetic.")
            )
            await handle.result()
    finally:
        await pool.execute("ALTER TABLE referrals ALTER COLUMN station TYPE text")
