"""A new alert channel is one class and one entry in `alert_channels`: delivered once, like the built-in ones."""

from __future__ import annotations

import random

import pytest

from activities.alerts import AlertChannel, AlertMessage, EscalationAlerts
from activities.directory import Addressee, SupervisionDirectory
from runtime.settings import Settings
from starter.synthetic import synthetic_vist
from tests.helpers import eventually, start_referral
from tests.test_alerts import close, deliveries, fast_policy, first_escalation  # noqa: F401 - a fixture
from worker import build_worker


class PagerChannel(AlertChannel):
    """A channel added the documented way, keeping what it was asked to send."""

    name = "pager"
    paged: list[tuple[str, str]] = []

    @classmethod
    def from_settings(cls, settings: Settings, directory: SupervisionDirectory) -> "PagerChannel":
        return cls()

    def can_deliver(self, addressee: Addressee) -> bool:
        return True

    async def deliver(self, alert: AlertMessage, addressee: Addressee) -> None:
        self.paged.append((alert.escalation_id, alert.key(self.name)))


async def test_a_channel_named_in_the_settings_is_delivered_once_per_escalation(
    dev_env, pool, task_queue, settings, fast_policy
):
    alerts = EscalationAlerts.from_settings(pool, settings.model_copy(update={"alert_channels": ["in_app", "pager"]}))
    assert [c.name for c in alerts.channels] == ["in_app", "pager"]
    async with build_worker(dev_env.client, pool, settings, task_queue=task_queue, alerts=alerts):
        _, handle = await start_referral(dev_env.client, task_queue, fast_policy, submission=synthetic_vist(
            rng=random.Random("pager channel")))
        escalation = await first_escalation(handle)
        sent = await eventually(lambda: deliveries(pool, escalation.escalation_id),
                                lambda d: set(d) == {"in_app", "pager"} and all(r["delivered_at"] for r in d.values()))
        assert {c: r["attempts"] for c, r in sent.items()} == {"in_app": 1, "pager": 1}
        await close(handle)
    key = f"alert-{escalation.escalation_id}-pager"
    assert [p for p in PagerChannel.paged if p[0] == escalation.escalation_id] == [(escalation.escalation_id, key)]
    assert sent["pager"]["idempotency_key"] == key


def test_an_unknown_channel_is_named_in_the_error(pool, settings):
    with pytest.raises(ValueError, match="alert_channels: no channel named carrier-pigeon; known: in_app, email, webhook"):
        EscalationAlerts.from_settings(pool, settings.model_copy(update={"alert_channels": ["carrier-pigeon"]}))
