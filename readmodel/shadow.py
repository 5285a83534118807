"""What the read model should hold for some cases, made by writing their facts again through the recorder's own
projections into temporary tables that shadow the real ones, and compared with the real rows column by column.

Nothing here restates a projection: a column a projection writes is compared because the
projection wrote it in the shadow, so a new projection, column or table is reconciled the
day it is written. Each shadow row remembers which kind of fact wrote each of its columns
(a trigger), so a difference names the fact behind it. The shadow tables live inside one
transaction that is rolled back: the real tables are only read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg

from readmodel.projections import CASE_TABLES, PROJECTED_TABLES, WRITTEN_ACROSS_CASES, write_fact
from workflows.facts import RecordedEvent

WRITTEN_BY = "_written_by"  # the shadow's own column: the kind of fact that last wrote each column
EVENTS_TABLE = "referral_events"
FACT_SETTING = "audit.fact_kind"
# Refusals of a fact by the projections or PostgreSQL (as the recorder's quarantine), not a lost connection.
REFUSALS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, LookupError, TypeError)

WRITTEN_BY_TRIGGER = f"""
CREATE FUNCTION pg_temp.shadow_written_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.{WRITTEN_BY} := COALESCE(NEW.{WRITTEN_BY}, '{{}}'::jsonb) || COALESCE((
        SELECT jsonb_object_agg(n.key, current_setting('{FACT_SETTING}', true))
        FROM jsonb_each(to_jsonb(NEW)) AS n
        WHERE n.key <> '{WRITTEN_BY}'
          AND CASE TG_OP WHEN 'INSERT' THEN n.value <> 'null'::jsonb ELSE n.value IS DISTINCT FROM to_jsonb(OLD) -> n.key END
    ), '{{}}'::jsonb);
    RETURN NEW;
END $$"""


class RowProblem(StrEnum):
    MISSING_IN_DATABASE = "missing_in_database"
    MISSING_IN_HISTORY = "missing_in_history"
    DIFFERS = "differs"
    UNPROJECTABLE = "unprojectable"


@dataclass(frozen=True)
class RowDifference:
    """One row the facts and the database disagree on: its case, table, key, the fact behind it, the columns."""

    case: str
    problem: RowProblem
    table: str
    key: str
    kind: str | None = None
    fields: tuple[str, ...] = ()


class UnreconciledTable(RuntimeError):
    """A projection wrote a table `PROJECTED_TABLES` does not name: the reconciliation would not see it."""


@dataclass
class ShadowComparison:
    differences: list[RowDifference] = field(default_factory=list)
    event_rows: int = 0  # the real `referral_events` rows of the cases
    unwritten: set[tuple[str, int]] = field(default_factory=set)  # unconfirmed facts with no row yet: in flight


@dataclass(frozen=True)
class _Table:
    name: str
    case_sql: str
    key: tuple[str, ...]
    defaulted: frozenset[str]  # columns the database fills when a projection leaves them out


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _make_shadows(conn: asyncpg.Connection, schema: str) -> dict[str, _Table]:
    """A temporary table in front of every table of the schema, without its defaults, checks or foreign keys."""
    await conn.execute(WRITTEN_BY_TRIGGER)
    columns = await conn.fetch(
        """SELECT c.table_name, c.column_name, c.column_default IS NOT NULL AS defaulted,
                  c.is_nullable = 'NO' AS required,
                  EXISTS (SELECT 1 FROM information_schema.key_column_usage k
                          JOIN information_schema.table_constraints t USING (constraint_schema, constraint_name)
                          WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema
                            AND k.table_name = c.table_name AND k.column_name = c.column_name) AS in_key,
                  (SELECT k.ordinal_position FROM information_schema.key_column_usage k
                   JOIN information_schema.table_constraints t USING (constraint_schema, constraint_name)
                   WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema
                     AND k.table_name = c.table_name AND k.column_name = c.column_name) AS key_position
           FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' AND c.table_name <> 'schema_migrations'
           ORDER BY c.table_name, c.ordinal_position""",
        schema,
    )
    by_table: dict[str, list[asyncpg.Record]] = {}
    for column in columns:
        by_table.setdefault(column["table_name"], []).append(column)
    tables = {}
    for name, cols in by_table.items():
        table = _quoted(name)
        await conn.execute(
            f"CREATE TEMP TABLE {table} (LIKE {_quoted(schema)}.{table} INCLUDING INDEXES) ON COMMIT DROP;"
            f"ALTER TABLE pg_temp.{table} ADD COLUMN {WRITTEN_BY} jsonb"
            + "".join(f", ALTER COLUMN {_quoted(c['column_name'])} DROP NOT NULL"
                      for c in cols if c["required"] and not c["in_key"])
            + f";CREATE TRIGGER shadow_written_by BEFORE INSERT OR UPDATE ON pg_temp.{table}"
            " FOR EACH ROW EXECUTE FUNCTION pg_temp.shadow_written_by()"
        )
        key = tuple(c["column_name"] for c in sorted((c for c in cols if c["in_key"]), key=lambda c: c["key_position"]))
        tables[name] = _Table(name, PROJECTED_TABLES.get(name, ""), key,
                              frozenset(c["column_name"] for c in cols if c["defaulted"]))
    return tables


def _key_text(row: Mapping[str, Any], key: Sequence[str]) -> str:
    return "#".join(str(row[column]) for column in key)


async def _compare_table(
    conn: asyncpg.Connection, schema: str, table: _Table, cases: list[str], placeholders: set[str]
) -> list[RowDifference]:
    """The real rows of the cases (and any keyed like a shadow row) against the shadow's, every written column."""
    name, key = _quoted(table.name), ", ".join(_quoted(c) for c in table.key)
    real = await conn.fetch(
        f"""SELECT {table.case_sql} AS _case, * FROM {_quoted(schema)}.{name}
            WHERE {table.case_sql} = ANY($1) OR ({key}) IN (SELECT {key} FROM pg_temp.{name})""",
        cases,
    )
    shadow = await conn.fetch(f"SELECT {table.case_sql} AS _case, * FROM pg_temp.{name}")
    real_rows = {tuple(r[c] for c in table.key): r for r in real}
    differences = []
    for row_key, expected in {tuple(r[c] for c in table.key): r for r in shadow}.items():
        written_by: dict[str, str] = json.loads(expected[WRITTEN_BY] or "{}")
        case, key_text = expected["_case"], _key_text(expected, table.key)
        skipped = table.name in CASE_TABLES and case in placeholders  # a quarantined fact already explains it
        actual = real_rows.pop(row_key, None)
        if actual is None:
            if not skipped:
                differences.append(RowDifference(case, RowProblem.MISSING_IN_DATABASE, table.name, key_text,
                                                 written_by.get(table.key[0])))
            continue
        differing = tuple(
            column for column in expected.keys()
            if column not in ("_case", WRITTEN_BY)
            # A column the projections left to its default (recorded_at, a flag) is the database's own.
            and not (column in table.defaulted and expected[column] is None)
            # One another case writes is compared when that case's fact was written here too.
            and not (column in WRITTEN_ACROSS_CASES.get(table.name, ()) and column not in written_by)
            and actual[column] != expected[column]
        )
        if differing and not skipped:
            differences.append(RowDifference(case, RowProblem.DIFFERS, table.name, key_text,
                                             written_by.get(differing[0]), differing))
    for actual in real_rows.values():
        if not (table.name in CASE_TABLES and actual["_case"] in placeholders):
            differences.append(RowDifference(actual["_case"], RowProblem.MISSING_IN_HISTORY, table.name,
                                             _key_text(actual, table.key),
                                             actual["kind"] if table.name == EVENTS_TABLE else None))
    return differences


async def compare_with_shadow(
    pool: asyncpg.Pool,
    cases: Mapping[str, Sequence[RecordedEvent]],
    pending: set[tuple[str, int]] = frozenset(),  # type: ignore[assignment]
    placeholders: set[str] = frozenset(),  # type: ignore[assignment]
) -> ShadowComparison:
    """Every difference between the cases' rows and those their facts make.

    `cases`: each case's facts in the order they were recorded, quarantined ones left out;
    `pending`: facts whose write the history has not confirmed, written in the shadow only when
    their event row is already there; `placeholders`: cases whose own row stands for a quarantined fact.
    """
    references = list(cases)
    result = ShadowComparison()
    async with pool.acquire() as conn:
        transaction = conn.transaction(isolation="repeatable_read")
        await transaction.start()
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            written = {
                (r["stream"], r["seq"])
                for r in await conn.fetch(
                    f"SELECT stream, seq FROM {_quoted(schema)}.referral_events WHERE reference = ANY($1)", references
                )
            }
            result.event_rows = len(written)
            result.unwritten = {fact for fact in pending if fact not in written}
            tables = await _make_shadows(conn, schema)
            # In the order they happened across the cases, as the recorder met them: one case's fact may touch
            # another's rows (a conference ending an earlier referral's plan).
            in_order = sorted(((fact, case) for case, facts in cases.items() for fact in facts), key=lambda f: f[0].at)
            for fact, case in in_order:
                if (fact.stream, fact.seq) in result.unwritten:
                    continue
                await conn.execute(f"SELECT set_config('{FACT_SETTING}', $1, true)", fact.kind)
                try:
                    async with conn.transaction():
                        await write_fact(conn, fact)
                except REFUSALS:
                    result.differences.append(RowDifference(case, RowProblem.UNPROJECTABLE, EVENTS_TABLE,
                                                            f"{fact.stream}#{fact.seq}", fact.kind))
            stray = [
                name for name in tables
                if name not in PROJECTED_TABLES and await conn.fetchval(f"SELECT EXISTS (SELECT FROM pg_temp.{_quoted(name)})")
            ]
            if stray:
                raise UnreconciledTable(f"projections wrote {', '.join(stray)}, which PROJECTED_TABLES does not name")
            for name in PROJECTED_TABLES:
                result.differences += await _compare_table(conn, schema, tables[name], references, set(placeholders))
        finally:
            await transaction.rollback()
            # Its cached statement plans name the dropped shadow tables: the pool makes a fresh connection instead.
            await conn.close()
    return result
