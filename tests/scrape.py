"""Reading a process's metrics in tests as Prometheus reads them: the exposition text parsed by prometheus-client."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from readmodel.metrics import ReadModelGauges

Scrape = dict[str, list[Sample]]


def samples(text: str) -> Scrape:
    """Family name -> its samples, parsed as Prometheus parses them."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(found: Iterable[Sample], name: str, **labels: str) -> float | None:
    """The sum of the samples called `name` whose labels include `labels`; None when there is none."""
    matching = [s.value for s in found if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching) if matching else None


async def scraped(pool: asyncpg.Pool) -> Scrape:
    """What this process's `/metrics` shows of the domain: the counters it keeps, the gauges counted in PostgreSQL now."""
    return samples((await ReadModelGauges(pool, cache_seconds=0).scrape()).decode())


def series(found: Scrape, name: str, **labels: str) -> float:
    """A sample's value in a scrape, whatever its family; 0 when it is absent (a counter not yet counted)."""
    return value((s for family in found.values() for s in family), name, **labels) or 0
