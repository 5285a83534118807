"""The process's metrics: the domain's counters and histograms, and the Temporal SDK's own series beside them.

The SDK's Core keeps and renders its metrics (workflow task latencies, pollers, requests...)
in its own Prometheus exporter, which must be bound to an address. Each process binds it on
the loopback at a port the system picks, never reachable from outside, and `/metrics` (the
API's, the worker's) appends that text to the domain's: one scrape target per process, with
the SDK's aggregation and histogram buckets as Temporal documents them.
"""

from __future__ import annotations

import logging
import socket
from functools import cache

import httpx
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

# The SDK renders the classic text format; the domain's series are rendered in it too, so one body holds both.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The domain's series that each process counts itself; those read from PostgreSQL are readmodel/metrics.py's.
DOMAIN = CollectorRegistry(auto_describe=True)

DECISION_SECONDS = Histogram(
    "referral_decision_seconds",
    "From sending a human decision to the workflow's answer, by update and outcome "
    "(accepted, rejected, closed, not_found, refused, unconfirmed, failed)",
    ["decision", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 60),
    registry=DOMAIN,
)
OUTBOX_LAG_SECONDS = Histogram(
    "referral_outbox_lag_seconds",
    "From a fact being decided in its workflow to its row committed in PostgreSQL",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=DOMAIN,
)
FACTS_RECORDED = Counter(
    "referral_facts_recorded", "Facts written to the read model, by kind", ["kind"], registry=DOMAIN
)
FACTS_QUARANTINED = Counter(
    "referral_facts_quarantined", "Facts PostgreSQL refused for good and kept in quarantine, by kind", ["kind"],
    registry=DOMAIN,
)
ESCALATIONS_RAISED = Counter(
    "referral_escalations_raised", "Escalations recorded, by rung of the ladder (0: the first)", ["rung"],
    registry=DOMAIN,
)
ALERT_DELIVERIES = Counter(
    "referral_alert_deliveries",
    "Escalation alert deliveries, by channel and outcome (sent, already_sent, failed)",
    ["channel", "outcome"],
    registry=DOMAIN,
)


def loopback_port() -> int:
    """A free port on the loopback, for the SDK's exporter (the system picks it, so workers never collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@cache
def sdk_metrics_address() -> str:
    return f"127.0.0.1:{loopback_port()}"


@cache
def temporal_runtime() -> Runtime:
    """The process's one Temporal runtime, its metrics exported on the loopback and its Core's log lines
    forwarded to Python's logging (a runtime owns a thread pool: every client and worker of the process shares it)."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=sdk_metrics_address()),
            # Core's own lines join the process's structured log (runtime/logging.py), its fields as fields.
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(
                    logger=logging.getLogger("temporalio.core"),
                    append_target_to_name=False,
                    prepend_target_on_message=False,
                    append_log_fields_to_message=False,
                ),
            ),
        )
    )


async def sdk_series() -> bytes:
    """The SDK's exposition text, or nothing when this process has not started its runtime (or it does not answer)."""
    if temporal_runtime.cache_info().currsize == 0:
        return b""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://{sdk_metrics_address()}/metrics")
            response.raise_for_status()
            return response.content
    except httpx.HTTPError:
        return b"# the Temporal SDK's metrics did not answer\n"


async def exposition(*registries: CollectorRegistry) -> bytes:
    """The text of one scrape: the given registries', the domain's counters, then the SDK's series."""
    own = b"".join(generate_latest(registry) for registry in (*registries, DOMAIN))
    return own + await sdk_series()
