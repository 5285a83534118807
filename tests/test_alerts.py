"""Escalation alerts delivered for real: a local SMTP server and webhook receiver, down and back up again."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Replayer

from activities.alerts import AlertLinks, EscalationAlerts, verify_webhook, webhook_signature
from activities.directory import SupervisionDirectory
from starter.synthetic import SCREENER, SERGEANT, synthetic_vist
from audit.history import load_export, local_activity_type
from tests.audit_helpers import GENERATIONS, HISTORIES, HISTORIES_CONVERTER
from tests.helpers import eventually, start_referral, state_when
from tests.local_servers import MailServer, WebhookReceiver
from tests.scrape import scraped, series
from worker import WORKFLOWS, build_worker
from workflows.alerting import AlertDispatch
from workflows.changes import ALERTS_PATCH, GENERATION, IN_APP_WITH_FACT_PATCH
from workflows.facts import FactBatch
from workflows.models import (
    Agency,
    CloseReason,
    Closure,
    Duration,
    Escalation,
    EscalationAcknowledgement,
    EscalationAlert,
    Rank,
    SlaPolicy,
    StageDeadlines,
)
from workflows.referral import ReferralWorkflow

WEBHOOK_SECRET = b"synthetic-webhook-secret"
LINK_SECRET = "synthetic-link-secret"
CHANNELS = {"in_app", "email", "webhook"}


@pytest.fixture
def fast_policy(sla_policy: SlaPolicy) -> SlaPolicy:
    """Supervisor review due a second after submission; one rung an hour; retries every fraction of a second."""
    second = Duration(hours=1 / 3600)
    return sla_policy.model_copy(
        update={
            "supervisor_review": StageDeadlines(standard=second, medium=second, high=second),
            "escalation": sla_policy.escalation.model_copy(
                update={"grace": Duration(hours=1), "alert_retry_first_seconds": 0.2, "alert_retry_longest_seconds": 0.5}
            ),
        }
    )


@pytest.fixture
def mail() -> MailServer:
    server = MailServer()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(WEBHOOK_SECRET)


@pytest.fixture
def alert_settings(settings, tmp_path: Path, mail: MailServer, receiver: WebhookReceiver):
    directory = {
        "chains": [
            {
                "agency": "police",
                "team": "Testtown",
                "rungs": [
                    {"role": "sergeant", "name": "Duty sergeant, Testtown", "email": "sergeants.testtown@police.example",
                     "webhook": receiver.url},
                ],
            }
        ]
    }
    directory_file = tmp_path / "directory.json"
    directory_file.write_text(json.dumps(directory))
    return settings.model_copy(
        update={
            "alert_directory_file": directory_file,
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "smtp_security": "none",
            "smtp_timeout_seconds": 2.0,
            "alert_webhook_secret": SecretStr(WEBHOOK_SECRET.decode()),
            "alert_link_secret": SecretStr(LINK_SECRET),
            "dashboard_base_url": "http://referrals.example/dashboard",
        }
    )


async def deliveries(pool, escalation_id: str) -> dict[str, dict]:
    rows = await pool.fetch("SELECT * FROM alert_deliveries WHERE escalation_id = $1", escalation_id)
    return {row["channel"]: dict(row) for row in rows}


async def first_escalation(handle) -> Escalation:
    state = await state_when(handle, lambda s: len(s.escalations) == 1, timeout=15)
    return state.escalations[0]


async def close(handle) -> None:
    await handle.execute_update(
        ReferralWorkflow.close, Closure(actor=SCREENER, reason=CloseReason.WITHDRAWN, note="Synthetic: test done.")
    )
    # The workflow ends only once every alert it raised is delivered.
    await handle.result()


async def test_an_escalation_is_delivered_once_by_email_and_signed_webhook(
    dev_env, pool, task_queue, alert_settings, fast_policy, mail, receiver
):
    mail.start()
    before = await scraped(pool)
    async with receiver.serving():
        alerts = EscalationAlerts.from_settings(pool, alert_settings)
        async with build_worker(dev_env.client, pool, alert_settings, task_queue=task_queue, alerts=alerts):
            submission = synthetic_vist(rng=random.Random(601))
            _, handle = await start_referral(dev_env.client, task_queue, fast_policy, submission=submission)
            escalation = await first_escalation(handle)
            sent = await eventually(
                lambda: deliveries(pool, escalation.escalation_id),
                lambda d: set(d) == CHANNELS and all(r["delivered_at"] for r in d.values()),
            )
            assert {c: r["attempts"] for c, r in sent.items()} == {"in_app": 1, "email": 1, "webhook": 1}
            assert sent["in_app"]["team"] == "Testtown" and sent["in_app"]["agency"] == "police"
            # The dashboard's alert was written in the transaction that recorded the escalation (now() is the
            # transaction's start); email and webhook followed, through the delivery activity.
            recorded_at = await pool.fetchval(
                """SELECT recorded_at FROM referral_events WHERE kind = 'escalation_raised'
                   AND payload -> 'escalation' ->> 'escalation_id' = $1""",
                escalation.escalation_id,
            )
            assert sent["in_app"]["delivered_at"] == recorded_at
            assert sent["email"]["delivered_at"] > recorded_at and sent["webhook"]["delivered_at"] > recorded_at

            # Delivering the same alert again (a retried activity) sends nothing more.
            again = await alerts.deliver_escalation(
                EscalationAlert(escalation=escalation, agency=Agency.POLICE, team="Testtown")
            )
            assert (again.sent, set(again.already_sent)) == ([], CHANNELS)

            # The metrics count it all: the escalation by its rung, each channel's delivery and the one it spared,
            # and the read model's gauges show the escalation open and the review overdue.
            rung = str(escalation.rung)
            raised = await eventually(
                lambda: scraped(pool),
                lambda found: series(found, "referral_escalations_raised_total", rung=rung)
                >= series(before, "referral_escalations_raised_total", rung=rung) + 1,
            )
            for channel in CHANNELS:
                for outcome in ("sent", "already_sent"):
                    counted = series(raised, "referral_alert_deliveries_total", channel=channel, outcome=outcome)
                    assert counted >= series(before, "referral_alert_deliveries_total", channel=channel, outcome=outcome) + 1
            assert series(raised, "referral_overdue_steps", step="supervisor_review") >= 1
            open_at_rung = series(raised, "referral_open_escalations", rung=rung)
            assert open_at_rung >= 1

            acknowledged = await handle.execute_update(
                ReferralWorkflow.acknowledge_escalation,
                EscalationAcknowledgement(actor=SERGEANT, escalation_id=escalation.escalation_id),
            )
            assert acknowledged.escalations[0].acknowledged_by == SERGEANT.id
            await eventually(
                lambda: scraped(pool), lambda found: series(found, "referral_open_escalations", rung=rung) == open_at_rung - 1
            )
            await close(handle)

    (email,) = mail.messages
    (post,) = receiver.received
    assert email["To"] == "sergeants.testtown@police.example"
    assert email["Message-ID"] == f"<alert-{escalation.escalation_id}-email@localhost>"
    assert handle.id in email["Subject"] and "supervisor review overdue" in email["Subject"]
    assert post.signature_valid
    assert post.idempotency_key == f"alert-{escalation.escalation_id}-webhook"
    fields = json.loads(post.body)
    assert (fields["reference"], fields["rank"], fields["rung"]) == (handle.id, Rank.SERGEANT.value, 1)
    assert fields["link"] == f"http://referrals.example/dashboard/referrals/{handle.id}"

    # The email's acknowledgement link is signed for this escalation, and expires.
    body = email.get_content()
    link = next(word for word in body.split() if "/acknowledge?" in word)
    query = parse_qs(urlsplit(link).query)
    links = AlertLinks.from_settings(alert_settings)
    expires, sig = int(query["expires"][0]), query["sig"][0]
    now = datetime.now(timezone.utc)
    assert links.verify(escalation.escalation_id, expires, sig, now)
    assert not links.verify(escalation.escalation_id + "0", expires, sig, now)
    assert not links.verify(escalation.escalation_id, expires, sig, now + timedelta(hours=73))

    # Neither channel carries a child's name, date of birth or address, nor where it happened.
    personal = [c.name for c in submission.children] + [c.home_address for c in submission.children]
    personal += [submission.incident.location, *(str(c.date_of_birth) for c in submission.children)]
    for text in (str(email), post.body.decode()):
        assert not any(value and value in text for value in personal)


async def test_alerts_wait_for_a_mail_server_and_webhook_that_are_down(
    dev_env, pool, task_queue, alert_settings, fast_policy, mail, receiver
):
    before = await scraped(pool)
    async with build_worker(dev_env.client, pool, alert_settings, task_queue=task_queue):
        _, handle = await start_referral(dev_env.client, task_queue, fast_policy, seed=602)
        escalation = await first_escalation(handle)

        # Both are down: the alert is recorded (shown in the dashboard), email and webhook keep being retried.
        pending = await eventually(
            lambda: deliveries(pool, escalation.escalation_id),
            lambda d: set(d) == CHANNELS and d["email"]["attempts"] >= 3 and d["webhook"]["attempts"] >= 3,
        )
        # Each failed attempt is counted against its channel (the third's count may still be on its way).
        failing = await scraped(pool)
        for channel in ("email", "webhook"):
            failed = series(failing, "referral_alert_deliveries_total", channel=channel, outcome="failed")
            assert failed >= series(before, "referral_alert_deliveries_total", channel=channel, outcome="failed") + 2
        assert pending["in_app"]["delivered_at"] is not None
        assert pending["email"]["delivered_at"] is None and pending["webhook"]["delivered_at"] is None
        assert pending["email"]["last_error"] and pending["webhook"]["last_error"]
        assert mail.messages == [] and receiver.received == []

        # They come back: each is delivered, once.
        mail.start()
        async with receiver.serving():
            await eventually(
                lambda: deliveries(pool, escalation.escalation_id),
                lambda d: all(r["delivered_at"] for r in d.values()),
            )
            await close(handle)
    assert len(mail.messages) == 1
    assert [(p.signature_valid, p.idempotency_key) for p in receiver.received] == [
        (True, f"alert-{escalation.escalation_id}-webhook")
    ]
    final = await deliveries(pool, escalation.escalation_id)
    # The dashboard's alert was written once, with the escalation's fact; the retries never touched it.
    assert final["email"]["last_error"] is None and final["in_app"]["attempts"] == 1


async def test_an_alert_seen_only_in_the_dashboard_is_written_with_its_escalation_and_needs_no_delivery(
    dev_env, pool, task_queue, settings, fast_policy
):
    """No mail server, no webhook: the escalation's fact and its in-app alert are one transaction, and the
    referral schedules no delivery activity (two workflow tasks fewer per escalation). Each batch is written as a
    local activity."""
    async with build_worker(dev_env.client, pool, settings, task_queue=task_queue):
        _, handle = await start_referral(dev_env.client, task_queue, fast_policy, seed=603)
        escalation = await first_escalation(handle)
        sent = await eventually(
            lambda: deliveries(pool, escalation.escalation_id), lambda d: "in_app" in d and d["in_app"]["delivered_at"]
        )
        await close(handle)
    assert set(sent) == {"in_app"} and sent["in_app"]["attempts"] == 1
    recorded_at = await pool.fetchval(
        """SELECT recorded_at FROM referral_events WHERE kind = 'escalation_raised'
           AND payload -> 'escalation' ->> 'escalation_id' = $1""",
        escalation.escalation_id,
    )
    assert sent["in_app"]["delivered_at"] == recorded_at
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    written_locally = [local_activity_type(e) for e in history.events if local_activity_type(e)]
    # The only activity is the empty batch that lets the referral complete in a task after its last local write.
    assert "record_facts" in written_locally and scheduled == ["record_facts"]


def test_the_directory_picks_the_team_chain_then_the_agencys_then_the_default(tmp_path: Path):
    (tmp_path / "directory.toml").write_text(
        """
[[chains]]
agency = "police"
team = "CRU"
rungs = [{ role = "CRU sergeant", email = "cru@police.example" }, { role = "CRU inspector" }]

[[chains]]
agency = "health"
rungs = [{ role = "named nurse", email = "safeguarding@health.example" }]

[default]
rungs = [{ role = "duty supervisor" }]
"""
    )
    directory = SupervisionDirectory.load(tmp_path / "directory.toml")

    def alert(agency: Agency, team: str | None, rung: int) -> EscalationAlert:
        now = datetime.now(timezone.utc)
        escalation = Escalation(
            escalation_id="REF-AAAAA-AAAAA.E1", reference="REF-AAAAA-AAAAA", subject="screening", rung=rung,
            rank=Rank.SERGEANT, addressed_to="sergeant, CRU", due_at=now, raised_at=now,
        )
        return EscalationAlert(escalation=escalation, agency=agency, team=team)

    assert directory.addressee(alert(Agency.POLICE, "CRU", 0)).email == "cru@police.example"
    # Rungs past the end of a chain go to its last addressee.
    assert directory.addressee(alert(Agency.POLICE, "CRU", 2)).role == "CRU inspector"
    assert directory.addressee(alert(Agency.HEALTH, None, 1)).role == "named nurse"
    assert directory.addressee(alert(Agency.POLICE, "Testtown", 0)).role == "duty supervisor"
    # Without a file: the ladder's ranks, in the dashboard only.
    built_in = SupervisionDirectory.load(None)
    assert [built_in.addressee(alert(Agency.POLICE, "MASH", r)).role for r in range(3)] == [
        "sergeant", "inspector", "superintendent"
    ]
    assert not built_in.has_webhooks


def test_a_webhook_signature_covers_the_body_and_the_timestamp():
    body = b'{"reference":"REF-AAAAA-AAAAA"}'
    signature = webhook_signature(WEBHOOK_SECRET, "1800000000", body)
    assert verify_webhook(WEBHOOK_SECRET, "1800000000", body, signature, now=1800000060)
    assert not verify_webhook(WEBHOOK_SECRET, "1800000000", body + b" ", signature, now=1800000060)
    assert not verify_webhook(WEBHOOK_SECRET, "1800000001", body, signature, now=1800000060)
    assert not verify_webhook(b"another secret", "1800000000", body, signature, now=1800000060)
    # An old post replayed later is refused.
    assert not verify_webhook(WEBHOOK_SECRET, "1800000000", body, signature, now=1800003600)


def patches_in(history) -> set[str]:
    return {
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and e.marker_recorded_event_attributes.marker_name == "core_patch"
    }


def scheduled_activities(history, name: str) -> list:
    return [e.activity_task_scheduled_event_attributes for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == name]


async def test_histories_from_before_alerts_replay_because_delivery_is_patched_in(monkeypatch):
    (before,) = load_export(GENERATIONS[0] / "escalation_acknowledged")
    (delivered,) = load_export(GENERATIONS[1] / "escalation_acknowledged")
    (after,) = load_export(HISTORIES / "v10-in-app-alert-with-fact" / "escalation_acknowledged")
    (newest,) = load_export(GENERATIONS[-1] / "escalation_acknowledged")
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=HISTORIES_CONVERTER)
    for history in (before, delivered, after, newest):
        await replayer.replay_workflow(history.referral)

    # A history recorded with alerts holds the patch marker and one delivery per escalation (three rungs).
    assert ALERTS_PATCH in patches_in(delivered.referral)
    assert len(scheduled_activities(delivered.referral, "deliver_escalation")) == 3
    # Since the in-app alert is written with its fact, a dashboard-only worker's history holds each rung's alert in
    # the recording activity's input, and no delivery.
    assert {ALERTS_PATCH, IN_APP_WITH_FACT_PATCH} <= patches_in(after.referral)
    assert scheduled_activities(after.referral, "deliver_escalation") == []
    batches = [(await HISTORIES_CONVERTER.decode(a.input.payloads, [FactBatch]))[0]
               for a in scheduled_activities(after.referral, "record_facts")]
    alerted = [alert.escalation.rung for batch in batches for alert in batch.alerts.values()]
    assert alerted == [0, 1, 2]
    # A referral started since asks once for every change: its one marker is the generation's, and it alerts the same.
    assert patches_in(newest.referral) == {GENERATION}
    assert scheduled_activities(newest.referral, "deliver_escalation") == []

    # Without the patch the same code would schedule, in an old history, a delivery it never had.
    def unguarded(self, alert, policy):
        self._deliveries.append(asyncio.create_task(self._deliver(alert, self._outbox.last_seq, policy, False)))

    monkeypatch.setattr(AlertDispatch, "send", unguarded)
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(before.referral)
