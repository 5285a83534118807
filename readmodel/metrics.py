"""The gauges a scrape reads from the read model (open cases by stage, overdue steps, open escalations, quarantine).

They are counted in PostgreSQL when scraped, not kept in a process's memory, so every API
replica and every worker reports the same figures; a short cache spares the database when
several scrapers ask at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from typing import NamedTuple

import asyncpg
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime.metrics import exposition

log = structlog.get_logger("metrics")

Clock = Callable[[], Awaitable[datetime]]
# Within a scraper's usual timeout (10 s): a slow database leaves the gauges out rather than the whole scrape.
COUNT_TIMEOUT_SECONDS = 5



class Gauge(NamedTuple):
    """One gauge: its name, help and label, and the query giving its (label value, count) rows."""

    name: str
    documentation: str
    label: str
    query: str
    at_now: bool = False  # the query takes "now" as $1


GAUGES: tuple[Gauge, ...] = (
    Gauge(
        "referral_open_referrals",
        "Open referrals, by stage",
        "stage",
        "SELECT stage, count(*) FROM referrals WHERE closed_at IS NULL GROUP BY stage",
    ),
    Gauge(
        "referral_open_missing_episodes",
        "Open missing episodes, by stage (missing, returned)",
        "stage",
        "SELECT phase, count(*) FROM missing_episodes WHERE closed_at IS NULL GROUP BY phase",
    ),
    Gauge(
        "referral_overdue_steps",
        "Steps past their deadline: an open referral's stage (by stage name), or an agreed action not completed",
        "step",
        """SELECT stage, count(*) FROM referrals WHERE closed_at IS NULL AND deadline < $1 GROUP BY stage
           UNION ALL
           SELECT 'agreed_action', count(*) FROM agreed_actions a
           WHERE a.completed_at IS NULL AND a.deadline < $1
             AND (EXISTS (SELECT 1 FROM referrals r WHERE r.reference = a.reference AND r.closed_at IS NULL)
                  OR EXISTS (SELECT 1 FROM missing_episodes m WHERE m.episode_id = a.reference AND m.closed_at IS NULL))""",
        at_now=True,
    ),
    Gauge(
        "referral_open_escalations",
        "Escalations neither acknowledged nor resolved, by rung of the ladder (0: the first)",
        "rung",
        """SELECT rung::text, count(*) FROM escalations
           WHERE acknowledged_at IS NULL AND resolved_at IS NULL GROUP BY rung""",
    ),
    Gauge(
        "referral_quarantined_facts",
        "Facts in quarantine that no administrator has re-applied yet, by kind",
        "kind",
        "SELECT kind, count(*) FROM quarantined_facts WHERE resolved_at IS NULL GROUP BY kind",
    ),
)


async def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class ReadModelGauges(Collector):
    """A prometheus_client collector over the read model: `refresh()` (async) counts, `collect()` renders."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float = 5.0, clock: Clock = wall_clock) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.counted: dict[str, list[tuple[str, int]]] = {}
        self.reachable = False
        self._counted_at: float | None = None
        self._lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    async def refresh(self) -> None:
        """Count again unless the last count is younger than the cache; a database that fails leaves `up` at 0."""
        async with self._lock:
            if self._counted_at is not None and time.monotonic() - self._counted_at < self.cache_seconds:
                return
            try:
                now = await self.clock()
                async with asyncio.timeout(COUNT_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                    self.counted = {
                        gauge.name: list(await conn.fetch(gauge.query, *([now] if gauge.at_now else [])))
                        for gauge in GAUGES
                    }
                self.reachable = True
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("metrics_read_model_unavailable", error=type(error).__name__)
                self.counted, self.reachable = {}, False
            self._counted_at = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "referral_read_model_up", "1 when the read-model gauges were counted at this scrape, 0 when PostgreSQL failed",
            value=int(self.reachable),
        )
        for gauge in GAUGES:
            if gauge.name not in self.counted:
                continue
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=[gauge.label])
            for value, count in self.counted[gauge.name]:
                family.add_metric([value], count)
            yield family

    async def scrape(self) -> bytes:
        """One process's `/metrics` body: these gauges, the domain's counters, the SDK's series."""
        await self.refresh()
        return await exposition(self.registry)
