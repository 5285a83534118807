"""Escalation alerts delivered to supervisors: in the dashboard, by email over SMTP, and by signed webhook.

The escalation is already in PostgreSQL when `deliver_escalation` runs (the workflow records
it first). Each channel is delivered at most once: its row in `alert_deliveries` is written
and locked before sending and marked once sent, so a retried activity skips what went out.
The idempotency key also travels with the alert (the email's Message-ID, the webhook's
`Idempotency-Key` header), so a receiver can drop the duplicate left by a crash between
sending and marking. An alert carries the referral reference, what is late, how late, and
links: never a child's name or any other personal data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiosmtplib
import asyncpg
import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.directory import Addressee, SupervisionDirectory
from runtime.metrics import ALERT_DELIVERIES
from runtime.settings import Settings
from workflows.missing_models import EPISODE_STEPS
from workflows.plan_models import PLAN_STEPS
from workflows.models import AlertDelivery, Escalation, EscalationAlert, Stage

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Referrals-Signature"
TIMESTAMP_HEADER = "X-Referrals-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WEBHOOK_TIMEOUT = httpx.Timeout(15.0)
STAGE_NAMES = frozenset(stage.value for stage in Stage)
CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


# --- what an alert says ----------------------------------------------------------------


def what_is_late(escalation: Escalation) -> str:
    if escalation.reason == "child_on_plan":
        return f"a new referral about a child on the child protection plan made at {escalation.subject}"
    if escalation.reason == "recording_failed":
        return f"recording of fact {escalation.subject} (quarantined)"
    if escalation.reason == "inquorate":
        return "strategy discussion held without children's social care, health and police"
    if escalation.reason == "no_trigger_plan":
        return "a current trigger plan for a missing child who must have one"
    if escalation.reason == "no_cse_referral":
        return "a referral about a child missing with a CSE concern"
    if escalation.subject in STAGE_NAMES:
        return escalation.subject.replace("_", " ")
    if escalation.subject in EPISODE_STEPS:
        return EPISODE_STEPS[escalation.subject]
    if escalation.subject in PLAN_STEPS:
        return PLAN_STEPS[escalation.subject]
    return f"agreed action {escalation.subject}"


def late_by(escalation: Escalation) -> timedelta:
    """How late the step was when this rung was raised."""
    return max(escalation.raised_at - escalation.due_at, timedelta(0))


def describe_duration(duration: timedelta) -> str:
    """"2 d 5 h", "3 h 07 min", "12 min": to the minute within a day, to the hour beyond."""
    minutes = int(duration.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def idempotency_key(escalation_id: str, channel: str) -> str:
    return f"alert-{escalation_id}-{channel}"


# --- signed links and webhook signatures ---------------------------------------------------


def link_secret(settings: Settings) -> bytes:
    """The key signing acknowledgement links: configured, or made once under the data directory."""
    return settings.secret(settings.alert_link_secret, "alert-link-secret")


@dataclass(frozen=True)
class AlertLinks:
    """Links in alerts: the referral's page, and an acknowledgement link signed with an expiry."""

    base_url: str
    secret: bytes
    valid_for: timedelta = timedelta(hours=72)

    @classmethod
    def from_settings(cls, settings: Settings) -> "AlertLinks":
        return cls(settings.dashboard_base_url.rstrip("/"), link_secret(settings), timedelta(hours=settings.alert_link_hours))

    def referral(self, reference: str) -> str:
        return f"{self.base_url}/referrals/{reference}"

    def acknowledge(self, escalation_id: str, now: datetime) -> str:
        expires = int((now + self.valid_for).timestamp())
        query = urlencode({"expires": expires, "sig": self._signature(escalation_id, expires)})
        return f"{self.base_url}/escalations/{escalation_id}/acknowledge?{query}"

    def verify(self, escalation_id: str, expires: int, signature: str, now: datetime) -> bool:
        if now.timestamp() > expires:
            return False
        return hmac.compare_digest(signature, self._signature(escalation_id, expires))

    def _signature(self, escalation_id: str, expires: int) -> str:
        mac = hmac.new(self.secret, f"acknowledge|{escalation_id}|{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def webhook_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over "<timestamp>.<raw body>": the timestamp is signed too."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_webhook(secret: bytes, timestamp: str, body: bytes, signature: str, now: float, tolerance: float = 300) -> bool:
    """What a receiver checks: the signature, and a timestamp recent enough to refuse a replay."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature, webhook_signature(secret, timestamp, body))


# --- what every channel sends ----------------------------------------------------------------


def alert_fields(alert: EscalationAlert, addressee: Addressee, links: AlertLinks, now: datetime) -> dict[str, Any]:
    """The alert's content, the same for every channel: identifiers, times and links only."""
    e = alert.escalation
    return {
        "escalation_id": e.escalation_id,
        "reference": e.reference,
        "what": what_is_late(e),
        "reason": e.reason,
        "rung": e.rung_number,
        "rank": e.rank.value,
        "addressed_to": addressee.role,
        "due_at": e.due_at.astimezone(timezone.utc).isoformat(),
        "raised_at": e.raised_at.astimezone(timezone.utc).isoformat(),
        "late_by_minutes": int(late_by(e).total_seconds() // 60),
        "link": links.referral(e.reference),
        "acknowledge_link": links.acknowledge(e.escalation_id, now),
    }


def alert_email(fields: dict[str, Any], sender: str, recipient: str, key: str) -> EmailMessage:
    message = EmailMessage()
    domain = sender.rsplit("@", 1)[-1]
    message["Message-ID"] = f"<{key}@{domain}>"
    message["From"] = sender
    message["To"] = recipient
    if fields["reason"] == "recording_failed":
        message["Subject"] = f"Referral {fields['reference']}: recording failed, a fact is quarantined"
    elif fields["reason"] == "inquorate":
        message["Subject"] = f"Referral {fields['reference']}: inquorate strategy discussion"
    elif fields["reason"] == "child_on_plan":
        message["Subject"] = f"Referral {fields['reference']}: a child on your child protection plan is referred again"
    elif fields["reason"] == "no_trigger_plan":
        message["Subject"] = f"Missing episode {fields['reference']}: no current trigger plan"
    elif fields["reason"] == "no_cse_referral":
        message["Subject"] = f"Missing episode {fields['reference']}: CSE concern and no open referral"
    else:
        message["Subject"] = f"Referral {fields['reference']}: {fields['what']} overdue (rung {fields['rung']}, {fields['rank']})"
    late = describe_duration(timedelta(minutes=fields["late_by_minutes"]))
    message.set_content(
        f"Escalation {fields['escalation_id']} for the {fields['addressed_to']}.\n\n"
        f"Referral:  {fields['reference']}\n"
        f"Late:      {fields['what']}\n"
        f"Due:       {fields['due_at']}\n"
        f"Late by:   {late} when raised (rung {fields['rung']} of the ladder, {fields['rank']})\n\n"
        f"Open the referral: {fields['link']}\n"
        f"Acknowledge (sign-in required): {fields['acknowledge_link']}\n\n"
        + (
            "The fact is kept in quarantine with its reason: fix the cause, then re-apply it "
            "(`referrals quarantine --reapply`). "
            if fields["reason"] == "recording_failed"
            else "Acknowledging stops this rung of the escalation ladder. "
        )
        + "This message holds no personal data: the referral's details are behind sign-in.\n"
    )
    return message


@dataclass(frozen=True)
class AlertMessage:
    """One alert ready to send: its fields (the same on every channel) and the escalation it is for."""

    escalation_id: str
    fields: dict[str, Any]

    def key(self, channel: str) -> str:
        return idempotency_key(self.escalation_id, channel)


# --- the channels ---------------------------------------------------------------------------


class AlertChannel(ABC):
    """One way an alert reaches its addressee; each subclass is registered under its `name`.

    `deliver` must be idempotent: it sends `alert.key(name)` along (a Message-ID, a header), so
    a receiver drops the duplicate a retry sends after a crash between sending and marking.
    """

    name: ClassVar[str]
    registry: ClassVar[dict[str, type["AlertChannel"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The name keys its delivery rows and idempotency keys: the shape `alert_deliveries` accepts.
        if not CHANNEL_NAME.fullmatch(cls.name):
            raise ValueError(f"name: an alert channel's name is lowercase letters, digits and _ (got {cls.name!r})")
        AlertChannel.registry[cls.name] = cls

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, directory: SupervisionDirectory) -> "AlertChannel | None":
        """The channel as configured, or None when the settings leave it off."""

    @abstractmethod
    def can_deliver(self, addressee: Addressee) -> bool:
        """Whether the addressee has this channel (an email address, a webhook)."""

    def recipient(self, addressee: Addressee) -> str | None:
        """Where the alert goes, kept with its delivery row; none for the dashboard."""
        return None

    @abstractmethod
    async def deliver(self, alert: AlertMessage, addressee: Addressee) -> None:
        """Send the alert once more; a failure raises and the activity retries."""


class InAppChannel(AlertChannel):
    """The dashboard: the delivery row itself is what the addressee sees."""

    name = "in_app"

    @classmethod
    def from_settings(cls, settings: Settings, directory: SupervisionDirectory) -> "InAppChannel":
        return cls()

    def can_deliver(self, addressee: Addressee) -> bool:
        return True

    async def deliver(self, alert: AlertMessage, addressee: Addressee) -> None:
        return None


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    security: str
    username: str | None
    password: str | None
    sender: str
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "SmtpMailer | None":
        if settings.smtp_host is None:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            sender=settings.smtp_sender,
            timeout=settings.smtp_timeout_seconds,
        )

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            timeout=self.timeout,
        )


class EmailChannel(AlertChannel):
    """Email over SMTP to the addressee's address; the Message-ID is the idempotency key."""

    name = "email"

    def __init__(self, mailer: SmtpMailer) -> None:
        self.mailer = mailer

    @classmethod
    def from_settings(cls, settings: Settings, directory: SupervisionDirectory) -> "EmailChannel | None":
        mailer = SmtpMailer.from_settings(settings)
        return cls(mailer) if mailer is not None else None

    def can_deliver(self, addressee: Addressee) -> bool:
        return bool(addressee.email)

    def recipient(self, addressee: Addressee) -> str | None:
        return addressee.email

    async def deliver(self, alert: AlertMessage, addressee: Addressee) -> None:
        assert addressee.email is not None
        await self.mailer.send(alert_email(alert.fields, self.mailer.sender, addressee.email, alert.key(self.name)))


class WebhookChannel(AlertChannel):
    """A signed JSON POST to the addressee's webhook, with an `Idempotency-Key` header."""

    name = "webhook"

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    @classmethod
    def from_settings(cls, settings: Settings, directory: SupervisionDirectory) -> "WebhookChannel | None":
        if settings.alert_webhook_secret is None:
            if directory.has_webhooks:
                raise ValueError("alert_webhook_secret: required when the supervision directory names a webhook")
            return None
        return cls(settings.alert_webhook_secret.get_secret_value().encode())

    def can_deliver(self, addressee: Addressee) -> bool:
        return addressee.webhook is not None

    def recipient(self, addressee: Addressee) -> str | None:
        return str(addressee.webhook)

    async def deliver(self, alert: AlertMessage, addressee: Addressee) -> None:
        key = alert.key(self.name)
        body = json.dumps(alert.fields | {"idempotency_key": key}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(self.secret, timestamp, body),
        }
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
            response = await client.post(str(addressee.webhook), content=body, headers=headers)
        response.raise_for_status()


def channels_from_settings(settings: Settings, directory: SupervisionDirectory) -> list[AlertChannel]:
    """The channels `alert_channels` lists, in its order, less those the settings leave off."""
    unknown = [name for name in settings.alert_channels if name not in AlertChannel.registry]
    if unknown:
        raise ValueError(f"alert_channels: no channel named {', '.join(unknown)}; known: {', '.join(AlertChannel.registry)}")
    built = (AlertChannel.registry[name].from_settings(settings, directory) for name in settings.alert_channels)
    return [channel for channel in built if channel is not None]


# --- the activity -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InAppWithFact:
    """An in-app alert written with its escalation's fact: whether it was written now (not by an earlier attempt),
    and whether the addressee has other channels for `deliver_escalation`."""

    sent: bool
    others_left: bool


class AlertNotDelivered(Exception):
    """A channel failed this attempt; the activity is retried (the row keeps the error's type)."""


class EscalationAlerts:
    """Delivers escalation alerts through every configured channel the addressee has."""

    def __init__(
        self, pool: asyncpg.Pool, directory: SupervisionDirectory, links: AlertLinks, channels: list[AlertChannel]
    ) -> None:
        self.pool = pool
        self.directory = directory
        self.links = links
        self.channels = channels

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> "EscalationAlerts":
        directory = SupervisionDirectory.load(settings.alert_directory_file)
        return cls(pool, directory, AlertLinks.from_settings(settings), channels_from_settings(settings, directory))

    @activity.defn
    async def deliver_escalation(self, alert: EscalationAlert) -> AlertDelivery:
        """Deliver the alert on each configured channel the addressee has, in the configured order."""
        addressee = self.directory.addressee(alert)
        message = AlertMessage(
            alert.escalation.escalation_id, alert_fields(alert, addressee, self.links, datetime.now(timezone.utc))
        )
        outcome = AlertDelivery(escalation_id=alert.escalation.escalation_id)
        failed = []
        for channel in self.channels:
            if not channel.can_deliver(addressee):
                continue
            try:
                sent = await self._once(alert, addressee, channel, message)
            except AlertNotDelivered:
                failed.append(channel.name)
                continue
            (outcome.sent if sent else outcome.already_sent).append(channel.name)
        if failed:
            raise ApplicationError(f"not delivered: {', '.join(failed)}; retrying", type="AlertNotDelivered")
        log.info(
            "alert_delivered",
            reference=alert.escalation.reference,
            escalation_id=outcome.escalation_id,
            sent=outcome.sent,
            already_sent=outcome.already_sent,
        )
        return outcome

    async def deliver_with_fact(self, conn: asyncpg.Connection, alert: EscalationAlert) -> InAppWithFact:
        """The dashboard's alert written in the caller's transaction, the one recording its escalation, so the
        addressee sees it the moment the escalation is recorded: no activity and no workflow task of its own.

        The other channels the addressee has are left to `deliver_escalation`, which finds the in-app row
        delivered and goes on with them; a dashboard the settings leave off leaves every channel to it.
        """
        addressee = self.directory.addressee(alert)
        in_app = next((c for c in self.channels if c.name == InAppChannel.name), None)
        others = any(c.can_deliver(addressee) for c in self.channels if c is not in_app)
        if in_app is None:
            return InAppWithFact(sent=False, others_left=True)
        e = alert.escalation
        sent = await conn.fetchval(
            """INSERT INTO alert_deliveries
                   (escalation_id, channel, idempotency_key, reference, agency, team, addressee, recipient, delivered_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, now())
               ON CONFLICT (escalation_id, channel) DO NOTHING
               RETURNING true""",
            e.escalation_id,
            in_app.name,
            idempotency_key(e.escalation_id, in_app.name),
            e.reference,
            alert.agency.value,
            alert.team,
            addressee.name or addressee.role,
        )
        return InAppWithFact(sent=bool(sent), others_left=others)

    async def _once(
        self, alert: EscalationAlert, addressee: Addressee, channel: AlertChannel, message: AlertMessage
    ) -> bool:
        """Send on one channel unless already sent; True when sent now.

        The row stays locked while sending, so an overlapping attempt waits and then finds it sent. A row
        already delivered (an earlier attempt, or the in-app alert written with its fact) counts no attempt.
        """
        e = alert.escalation
        async with self.pool.acquire() as conn, conn.transaction():
            delivered_at = await conn.fetchval(
                """INSERT INTO alert_deliveries
                       (escalation_id, channel, idempotency_key, reference, agency, team, addressee, recipient)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (escalation_id, channel) DO UPDATE
                       SET attempts = alert_deliveries.attempts + (alert_deliveries.delivered_at IS NULL)::int,
                           last_attempt_at = CASE WHEN alert_deliveries.delivered_at IS NULL THEN now()
                                                  ELSE alert_deliveries.last_attempt_at END,
                           recipient = EXCLUDED.recipient, addressee = EXCLUDED.addressee
                   RETURNING delivered_at""",
                e.escalation_id,
                channel.name,
                message.key(channel.name),
                e.reference,
                alert.agency.value,
                alert.team,
                addressee.name or addressee.role,
                channel.recipient(addressee),
            )
            if delivered_at is not None:
                ALERT_DELIVERIES.labels(channel.name, "already_sent").inc()
                return False
            error: Exception | None = None
            try:
                await channel.deliver(message, addressee)
            except Exception as failure:  # noqa: BLE001 - any failure is retried; its type is kept
                error = failure
            if error is None:
                await conn.execute(
                    """UPDATE alert_deliveries SET delivered_at = now(), last_error = NULL
                       WHERE escalation_id = $1 AND channel = $2""",
                    e.escalation_id,
                    channel.name,
                )
                ALERT_DELIVERIES.labels(channel.name, "sent").inc()
                return True
            await conn.execute(
                "UPDATE alert_deliveries SET last_error = $3 WHERE escalation_id = $1 AND channel = $2",
                e.escalation_id,
                channel.name,
                type(error).__name__,
            )
        ALERT_DELIVERIES.labels(channel.name, "failed").inc()
        # Only the error's type is logged: a server's message may quote addresses.
        log.warning(
            "alert_not_delivered",
            reference=e.reference,
            escalation_id=e.escalation_id,
            channel=channel.name,
            error=type(error).__name__,
        )
        raise AlertNotDelivered(channel.name) from error
