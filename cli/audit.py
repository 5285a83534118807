"""`referrals audit ...`: the auditors' commands, straight against Temporal (and PostgreSQL where records are read).

Mounted by the main CLI as `app.add_typer(audit_app, name="audit")`. Each command reads
TEMPORAL_ADDRESS, DATABASE_URL and the encryption keyring from the same settings as the
worker; `--from-dir` works from an export folder instead of the server. Every command that
reads referrals names its auditor (`--actor STAFF_ID` or REFERRALS_AUDITOR_ID) and records
its reads in the access log (channel "audit"), so it needs DATABASE_URL even with `--from-dir`.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError

from activities.audit import AuditRecords, QuotasDiffer
from audit.cases import (
    EXAMPLES,
    MalformedReference,
    NotRead,
    UnknownCase,
    case_type,
    fetch_case,
    in_the_future,
    view_of,
)
from audit.history import (
    CASE_WORKFLOWS,
    DecodedCase,
    ExportIntegrityError,
    ExportManifest,
    ReferralHistories,
    case_query,
    decode_case,
    exported_histories,
    fetch_referrals,
    group_histories,
    list_referrals,
    write_export,
)
from audit.reconcile import Problem, ReconcileReport, reconcile, reconcile_referrals
from audit.replay import ReplayReport, ReplayStatus, replay_histories
from audit.report import render_timeline_html
from audit.sample import ensure_monthly_sample_schedule, monthly_sample
from cli.connection import EXIT_CODES
from readmodel.access_log import AccessLog, record_reads
from runtime.codec import KeyringError
from runtime.settings import Settings
from runtime.temporal import connect, data_converter
from starter.stack import running_stack_settings
from workflows.audit_models import DEFAULT_QUOTAS, MAX_QUOTA, MONTH_PATTERN, AuditWorklist, SampleCategory
from workflows.models import Actor, Role, moment as as_moment

T = TypeVar("T")

audit_app = typer.Typer(
    help="Auditors: export and replay histories, reconstruct timelines and past states, reconcile records, sample cases.",
    no_args_is_help=True,
)
# Off a terminal (a pipe, a file) tables keep their full width rather than being cut at 80 columns.
console = Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=1000)


class Exit(IntEnum):
    """Each kind of answer its own exit code: the numbers the other commands give the API's statuses."""

    FOUND_PROBLEMS = 1  # a mismatch, a history the code does not explain, an altered export
    USAGE = 2  # typer's own, and no auditor named
    UNKNOWN = EXIT_CODES[404]  # no such referral, missing episode or triage
    CONFLICT = EXIT_CODES[409]  # a month already sampled under other quotas
    MALFORMED = EXIT_CODES[422]  # a reference, month, time or quota that is not one
    UNAVAILABLE = EXIT_CODES[503]  # a setting still missing, or Temporal or PostgreSQL out of reach
    EMPTY = 10  # the selection holds no case


FromDir = Annotated[
    Path | None, typer.Option("--from-dir", exists=True, file_okay=False, help="an export folder instead of the server")
]
Since = Annotated[str | None, typer.Option(help="cases started at or after (ISO 8601; local London time if no offset)")]
Until = Annotated[str | None, typer.Option(help="cases started before (ISO 8601)")]
Query = Annotated[str | None, typer.Option(help="a further Temporal visibility query, e.g. \"ExecutionStatus = 'Running'\"")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
AUDITOR_ENV = "REFERRALS_AUDITOR_ID"
Auditor = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar=AUDITOR_ENV, metavar="STAFF_ID", help="your staff ID: each read is recorded under it"
    ),
]
CaseReference = Annotated[str, typer.Argument(metavar="REFERENCE", help=f"a case: {EXAMPLES}")]


def fail(message: str, code: int = Exit.FOUND_PROBLEMS) -> NoReturn:
    Console(stderr=True, width=1000).print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(int(code))


def moment(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time given on the command line, London time when it has no offset (read as the API reads one)."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{name}: {text!r} is not an ISO 8601 time (for example 2026-11-24T09:30 or 2026-11-24T09:30+00:00)",
             Exit.MALFORMED)
    try:
        return as_moment(parsed)
    except ValueError as why:
        fail(f"{name}: {why}", Exit.MALFORMED)


def print_json(model: BaseModel) -> None:
    print(model.model_dump_json(indent=2))


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, turning what it may meet into one line and its exit code, never a traceback."""
    try:
        return asyncio.run(main)
    except MalformedReference as error:
        fail(str(error), Exit.MALFORMED)
    except (UnknownCase, NotRead) as error:
        fail(str(error), Exit.UNKNOWN)
    except KeyringError as error:
        fail(f"cannot open the histories: {error}", Exit.UNAVAILABLE)


# --- settings ------------------------------------------------------------------------------------

TEMPORAL, DATABASE, KEYRING = "temporal", "database", "keyring"
NEEDED = {
    TEMPORAL: "TEMPORAL_ADDRESS (host:port of the Temporal frontend)",
    DATABASE: "DATABASE_URL (the PostgreSQL holding the records and the access log)",
    KEYRING: "ENCRYPTION_KEYS_FILE (or ENCRYPTION_KEYS / ENCRYPTION_KEY_PROVIDER: the keyring sealing the histories)",
}


def _reading_settings(from_dir: Path | None, actor: str | None) -> Settings:
    """What a command reading histories needs: the database and keyring, and Temporal unless from an export."""
    return audit_settings(*((DATABASE, KEYRING) if from_dir else (TEMPORAL, DATABASE, KEYRING)), actor=actor)


def audit_settings(*needs: str, actor: str | None = None, actor_needed: bool = True) -> Settings:
    """The worker's settings, completed from the embedded stack when one runs on the data dir; refused in one
    message naming everything still missing (the auditor too)."""
    settings = running_stack_settings(Settings())
    present = {
        TEMPORAL: settings.temporal_address is not None,
        DATABASE: settings.database_url is not None,
        KEYRING: bool(settings.encryption_keys or settings.encryption_keys_file or settings.encryption_key_provider),
    }
    missing = [NEEDED[need] for need in needs if not present[need]]
    if actor_needed and not actor:
        missing.append(f"your staff ID, --actor STAFF_ID or {AUDITOR_ENV} (every audit read is recorded in the access log)")
    if missing:
        where = settings.data_dir.expanduser().resolve()
        fail(
            "this command still needs " + "; ".join(missing)
            + f". No embedded stack is running on {where} to take them from (`make run` starts one)."
            * any(need in (TEMPORAL, DATABASE) and not present[need] for need in needs),
            Exit.UNAVAILABLE if any(not present[need] for need in needs) else Exit.USAGE,
        )
    return settings


async def _client(settings: Settings) -> Client:
    try:
        return await connect(settings)
    except (RuntimeError, RPCError, OSError) as error:
        fail(f"cannot reach Temporal at {settings.temporal_address}: {type(error).__name__}", Exit.UNAVAILABLE)


async def _pool(settings: Settings) -> asyncpg.Pool:
    from readmodel.database import create_pool

    assert settings.database_url is not None
    try:
        return await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=4)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as error:
        fail(f"cannot reach PostgreSQL (DATABASE_URL): {type(error).__name__}", Exit.UNAVAILABLE)


# --- the access log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditReads:
    """The auditor running a command, the database the records are in, and where the histories came from."""

    actor: Actor
    pool: asyncpg.Pool
    source: str

    async def record(self, action: str, references: Iterable[str] = (), **detail: object) -> None:
        detail = {"client": "cli", "source": self.source} | detail
        await record_reads(AccessLog(self.pool), self.actor, action, references, detail)


@asynccontextmanager
async def audited(staff_id: str | None, settings: Settings, from_dir: Path | None = None) -> AsyncIterator[AuditReads]:
    """Every reading command runs inside this: no named auditor or no database to record in, no read."""
    if not staff_id:
        fail(f"name yourself with --actor STAFF_ID or {AUDITOR_ENV}: every audit read is recorded in the access log",
             Exit.USAGE)
    try:
        actor = Actor(id=staff_id, role=Role.AUDITOR)
    except ValidationError:
        fail(f"--actor: {staff_id!r} is not a staff ID (letters, digits, '.', '_' or '-')", Exit.USAGE)
    pool = await _pool(settings)
    try:
        yield AuditReads(actor, pool, "export" if from_dir is not None else "server")
    finally:
        await pool.close()


def _exported(folder: Path) -> list[ReferralHistories]:
    return group_histories(_exported_histories(folder))


def _exported_histories(folder: Path) -> list[WorkflowHistory]:
    try:
        return exported_histories(folder)
    except ExportIntegrityError as error:
        fail(f"the export has been altered: {error}")


async def _decoded(settings: Settings, reference: str, folder: Path | None) -> DecodedCase:
    """The case decoded from the export folder or the server; MalformedReference or UnknownCase otherwise."""
    case_type(reference)
    if folder is not None:
        found = [case for case in _exported(folder) if case.reference == reference]
        if not found:
            raise UnknownCase(reference, f"in the export {folder}")
        return await decode_case(found[0], data_converter(settings))
    client = await _client(settings)
    return await decode_case(await fetch_case(client, reference), client.data_converter)


async def _selected(client: Client, since: str | None, until: str | None, query: str | None) -> list[tuple[str, str]]:
    """The case runs a range (and query) selects; none is an error of its own, not an empty success."""
    runs = await list_referrals(client, case_query(moment(since, "--since"), moment(until, "--until"), query))
    if not runs:
        fail("no case was started in that range" + (" matching that query" if query else ""), Exit.EMPTY)
    return runs


# --- export and replay ---------------------------------------------------------------------------


@audit_app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="the folder to write")],
    reference: Annotated[list[str] | None, typer.Option("--reference", "-r", help="a case (repeatable)")] = None,
    since: Since = None,
    until: Until = None,
    query: Query = None,
    actor: Auditor = None,
) -> None:
    """Write histories (a case and its agreed actions) as Temporal JSON, with a manifest of SHA-256s."""

    async def main() -> ExportManifest:
        settings = audit_settings(TEMPORAL, DATABASE, KEYRING, actor=actor)
        async with audited(actor, settings) as audit:
            client = await _client(settings)
            if reference:
                cases = [await fetch_case(client, r) for r in reference]
                manifest = write_export(out, cases)
            else:
                selection = case_query(moment(since, "--since"), moment(until, "--until"), query)
                manifest = write_export(out, await fetch_referrals(client, await _selected(client, since, until, query)),
                                        selection)
            await audit.record(
                "audit_export", [f.workflow_id for f in manifest.files if f.workflow_type in CASE_WORKFLOWS],
                histories=len(manifest.files),
            )
        return manifest

    manifest = run(main())
    console.print(f"{len(manifest.files)} histories written to {out} (manifest: {out / 'manifest.json'})")


@audit_app.command()
def replay(
    from_dir: FromDir = None,
    since: Since = None,
    until: Until = None,
    query: Query = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: one per CPU core)")] = None,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox/--no-sandbox",
            help="replay in the SDK's full sandbox, each workflow module re-imported and its calls checked (slower)",
        ),
    ] = False,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Replay histories against the current workflow code; exit 1 if any is non-deterministic or fails."""

    async def main() -> ReplayReport:
        settings = _reading_settings(from_dir, actor)
        async with audited(actor, settings, from_dir) as audit:
            if from_dir is not None:
                histories = _exported_histories(from_dir)
                if not histories:
                    fail(f"the export {from_dir} holds no history", Exit.EMPTY)
            else:
                client = await _client(settings)
                runs = await _selected(client, since, until, query)
                histories = [h for case in await fetch_referrals(client, runs) for h in case.all()]
            with Progress(
                TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), disable=as_json,
            ) as progress:
                task = progress.add_task("replay", total=len(histories))
                report = await replay_histories(
                    histories, settings, workers=workers, sandbox="reimport" if sandbox else "off",
                    progress=lambda n: progress.advance(task, n),
                )
            await audit.record(
                "audit_replay", [h.workflow_id for h in report.histories if h.workflow_type in CASE_WORKFLOWS],
                histories=len(report.histories),
            )
            return report

    report = run(main())
    if as_json:
        print_json(report)
    else:
        table = Table(title=f"Replay of {len(report.histories)} histories in {report.seconds:.1f} s on {report.workers} processes")
        for column in ("workflow", "type", "events", "result", "first mismatching event", "detail"):
            table.add_column(column)
        for h in report.histories:
            if h.status is not ReplayStatus.OK:
                event = f"{h.first_mismatch_event} {h.first_mismatch_event_type or ''}" if h.first_mismatch_event else ""
                table.add_row(h.workflow_id, h.workflow_type, str(h.events), f"[red]{h.status.value}[/]", event, h.detail or "")
        if table.row_count:
            console.print(table)
        summary = Table(title="Summary")
        summary.add_column("result")
        summary.add_column("histories", justify="right")
        for status, count in report.counts.items():
            summary.add_row(status.value, str(count))
        console.print(summary)
    if not report.passed:
        raise typer.Exit(Exit.FOUND_PROBLEMS)


# --- one case -------------------------------------------------------------------------------------


@audit_app.command()
def timeline(
    reference: CaseReference,
    html: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    json_file: Annotated[Path | None, typer.Option("--json-file", help="write the timeline JSON here")] = None,
    at: Annotated[str | None, typer.Option(metavar="TIME", help="as it stood then (ISO 8601)")] = None,
    from_dir: FromDir = None,
    actor: Auditor = None,
) -> None:
    """The case's decision timeline, open steps measured to now (or --at): HTML report with a Gantt chart, and JSON."""

    async def main() -> BaseModel:
        return await _read_case(reference, from_dir, actor, at, "--at", "timeline", "audit_timeline")

    result = run(main())
    if html is not None:
        html.write_text(render_timeline_html(result))
        console.print(f"HTML report: {html}")
    if json_file is not None:
        json_file.write_text(result.model_dump_json(indent=2))
        console.print(f"JSON: {json_file}")
    if html is None and json_file is None:
        print_json(result)


async def _read_case(
    reference: str,
    from_dir: Path | None,
    actor: str | None,
    when: str | None,
    name: str,
    view: str,
    action: str,
) -> BaseModel:
    """One case read as its kind reads it (its timeline, its state) at `when` (a TIME or --at), recorded as read."""
    settings = _reading_settings(from_dir, actor)
    at = moment(when, name)
    async with audited(actor, settings, from_dir) as audit:
        decoded = await _decoded(settings, reference, from_dir)
        if in_the_future(decoded, at):
            fail(f"{name}: {at.isoformat()} is in the future: nothing is recorded after now "
                 "(the current state is `referrals show`)", Exit.MALFORMED)
        try:
            result = view_of(decoded, view)(decoded, at)
        except ValueError as error:
            fail(f"{name}: {error}", Exit.MALFORMED)
        await audit.record(action, [reference], **({"at": at.isoformat()} if at else {}))
    return result


@audit_app.command("as-of")
def as_of(
    reference: CaseReference,
    when: Annotated[str, typer.Argument(metavar="TIME", help="ISO 8601; local London time if no offset")],
    from_dir: FromDir = None,
    actor: Auditor = None,
) -> None:
    """The case's state as it stood at TIME (what the decider could see then), as JSON."""

    async def main() -> BaseModel:
        return await _read_case(reference, from_dir, actor, when, "TIME", "state_at", "audit_as_of")

    print_json(run(main()))


# --- the records ----------------------------------------------------------------------------------


@audit_app.command("reconcile")
def reconcile_command(
    since: Since = None,
    until: Until = None,
    reference: Annotated[list[str] | None, typer.Option("--reference", "-r", help="a case (repeatable)")] = None,
    from_dir: FromDir = None,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Compare the facts in histories with the PostgreSQL records, every column; exit 1 on any mismatch."""

    async def main() -> ReconcileReport:
        settings = _reading_settings(from_dir, actor)
        for named in reference or []:
            case_type(named)
        async with audited(actor, settings, from_dir) as audit:
            if from_dir is not None:
                converter = data_converter(settings)
                decoded = [await decode_case(r, converter) for r in _exported(from_dir)]
                if not decoded:
                    fail(f"the export {from_dir} holds no case", Exit.EMPTY)
                report = await reconcile_referrals(decoded, AuditRecords(audit.pool))
                read = [r.reference for r in decoded]
            else:
                client = await _client(settings)
                report = await reconcile(
                    client, audit.pool, since=moment(since, "--since"), until=moment(until, "--until"),
                    references=reference or None,
                )
                unknown = [m.reference for m in report.mismatches if m.problem is Problem.NO_HISTORY
                           and not await _has_rows(audit.pool, m.reference)]
                if unknown:
                    raise UnknownCase(unknown[0], "on the server or in the records")
                if not report.referrals:
                    fail("no case was submitted or reported in that range", Exit.EMPTY)
                # A range is recorded as one read with its count: the report does not list the cases.
                read = reference or []
            await audit.record("audit_reconcile", read, referrals=report.referrals)
            return report

    report = run(main())
    if as_json:
        print_json(report)
    else:
        table = Table(title=f"{report.referrals} cases, {report.facts} facts, {report.rows} event rows")
        for column in ("case", "problem", "table", "key", "kind", "fields"):
            table.add_column(column, overflow="fold")
        for m in report.mismatches:
            table.add_row(m.reference, m.problem.value, m.table, m.key, m.kind or "no fact",
                          ", ".join(m.fields) or m.reason or "")
        console.print(table if report.mismatches else "[green]No mismatches.[/]")
        if report.in_flight:
            console.print(f"{report.in_flight} facts still being written (not mismatches).")
        if report.purged:
            console.print(f"{len(report.purged)} cases removed by a retention purge (not mismatches).")
        if report.imported:
            console.print(f"{len(report.imported)} cases imported from an archive, never run as workflows (not mismatches).")
        if report.refused:
            console.print(
                f"{len(report.refused)} workflows refused at their start, not sealed by the keyring (not referrals): "
                + ", ".join(report.refused)
            )
    if not report.passed:
        raise typer.Exit(Exit.FOUND_PROBLEMS)


async def _has_rows(pool: asyncpg.Pool, reference: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM referral_events WHERE reference = $1", reference))


def _quotas(values: list[str] | None) -> dict[SampleCategory, int] | None:
    if not values:
        return None
    quotas = dict(DEFAULT_QUOTAS)
    for value in values:
        name, _, count = value.partition("=")
        try:
            quotas[SampleCategory(name)] = int(count)
            if not 0 <= quotas[SampleCategory(name)] <= MAX_QUOTA:
                raise ValueError
        except ValueError:
            fail(f"--quota {value!r}: expected CATEGORY=N with N from 0 to {MAX_QUOTA} and CATEGORY one of "
                 f"{', '.join(c.value for c in SampleCategory)}", Exit.MALFORMED)
    return quotas


@audit_app.command()
def sample(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1, help="the same month and seed always give the same cases")] = 0,
    quota: Annotated[list[str] | None, typer.Option(help="CATEGORY=N, e.g. missing=5 (repeatable)")] = None,
    redraw: Annotated[bool, typer.Option("--redraw", help="draw a month already drawn again, under these quotas "
                                         "(the earlier worklist is kept, superseded, and the redraw recorded)")] = False,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Draw the month's quality-assurance sample and record it as an audit worklist, drawn by the auditor."""
    if not re.fullmatch(MONTH_PATTERN, month):
        fail(f"--month: {month!r} is not a month: YYYY-MM, from 1900-01 to 2999-12", Exit.MALFORMED)
    quotas = _quotas(quota)

    async def main() -> AuditWorklist:
        settings = audit_settings(DATABASE, actor=actor)
        async with audited(actor, settings) as audit:
            records = AuditRecords(audit.pool)
            if await records.worklist(month, seed) is None and not any((await records.sample_candidates(month)).values()):
                fail(f"no referral was submitted and no missing episode reported in {month}: nothing to sample",
                     Exit.EMPTY)
            try:
                worklist = await monthly_sample(audit.pool, month, seed, quotas, audit.actor.id, redraw=redraw)
            except QuotasDiffer as error:
                fail(f"{error} (--redraw)", Exit.CONFLICT)
            await audit.record("audit_sample_redraw" if redraw else "audit_sample", month=month, seed=seed,
                               items=len(worklist.items), worklist=worklist.worklist_id)
            return worklist

    worklist = run(main())
    if as_json:
        print_json(worklist)
        return
    redrawn = f", drawn again in place of worklist {worklist.redraw_of}" if worklist.redraw_of else ""
    table = Table(title=f"Audit worklist {worklist.worklist_id}: {worklist.month} (seed {worklist.seed}), "
                        f"drawn by {worklist.drawn_by}{redrawn}")
    for column in ("#", "category", "case", "review"):
        table.add_column(column)
    for item in worklist.items:
        table.add_row(str(item.position), item.category.value, item.reference, item.status.value.replace("_", " "))
    console.print(table)
    for category, missing in worklist.shortfall.items():
        reason = worklist.shortfall_reasons.get(category)
        console.print(f"[yellow]{category.value}: "
                      f"{reason.explained() if reason else f'{missing} fewer than the quota'}[/]")


@audit_app.command()
def schedule(seed: Annotated[int, typer.Option()] = 0) -> None:
    """Create or update the Temporal Schedule that draws the sample on each month's first working day."""

    async def main() -> str:
        from activities.policy import build_sla_policy

        settings = audit_settings(TEMPORAL, actor_needed=False)
        return await ensure_monthly_sample_schedule(
            await _client(settings), settings, build_sla_policy(settings.sla_policy_file), seed
        )

    console.print(f"Schedule {run(main())} is in place.")


if __name__ == "__main__":
    audit_app()
