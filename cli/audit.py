"""`referrals audit ...`: the auditors' commands, straight against Temporal (and PostgreSQL where records are read).

Mounted by the main CLI as `app.add_typer(audit_app, name="audit")`. Each command reads
TEMPORAL_ADDRESS, DATABASE_URL and the encryption keyring from the same settings as the
worker; `--from-dir` works from an export folder instead of the server. Every command that
reads referrals names its auditor (`--actor STAFF_ID` or REFERRALS_AUDITOR_ID) and records
its reads in the access log (channel "audit"), so it needs DATABASE_URL even with `--from-dir`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
import asyncpg
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client, WorkflowHistory

from readmodel.access_log import AccessLog, record_reads
from runtime.settings import Settings
from runtime.temporal import connect, data_converter
from audit.as_of import state_from_facts
from audit.history import (
    CASE_WORKFLOWS,
    DecodedReferral,
    ExportIntegrityError,
    ReferralHistories,
    case_query,
    decode_case,
    decode_referral,
    export_histories,
    exported_histories,
    fetch_referral,
    fetch_referrals,
    group_histories,
    list_referrals,
)
from audit.reconcile import ReconcileReport, reconcile, reconcile_referrals
from audit.replay import ReplayReport, ReplayStatus, replay_histories
from audit.report import render_timeline_html
from audit.sample import ensure_monthly_sample_schedule, monthly_sample
from audit.timeline import build_timeline
from starter.referrals import Referrals
from workflows.audit_models import DEFAULT_QUOTAS, SampleCategory
from workflows.models import Actor, Role

audit_app = typer.Typer(
    help="Auditors: export and replay histories, reconstruct timelines and past states, reconcile records, sample cases.",
    no_args_is_help=True,
)
console = Console()
LONDON = ZoneInfo("Europe/London")

FromDir = Annotated[
    Path | None, typer.Option("--from-dir", exists=True, file_okay=False, help="an export folder instead of the server")
]
Since = Annotated[datetime | None, typer.Option(help="referrals started at or after (ISO 8601; local London time if no offset)")]
Until = Annotated[datetime | None, typer.Option(help="referrals started before")]
Query = Annotated[str | None, typer.Option(help="a further Temporal visibility query, e.g. \"ExecutionStatus = 'Running'\"")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
AUDITOR_ENV = "REFERRALS_AUDITOR_ID"
Auditor = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar=AUDITOR_ENV, metavar="STAFF_ID", help="your staff ID: each read is recorded under it"
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    Console(stderr=True).print(f"[bold red]Error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=LONDON) if moment is not None and moment.tzinfo is None else moment


def print_json(model: BaseModel) -> None:
    print(model.model_dump_json(indent=2))


async def _client(settings: Settings) -> Client:
    if settings.temporal_address is None:
        fail("TEMPORAL_ADDRESS is not set (or use --from-dir with an export folder)")
    return await connect(settings)


async def _pool(settings: Settings):
    from readmodel.database import create_pool

    if settings.database_url is None:
        fail("DATABASE_URL is not set: audit commands record every read in the access log in PostgreSQL")
    return await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=4)


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
        fail(f"name yourself with --actor STAFF_ID or {AUDITOR_ENV}: every audit read is recorded in the access log", 2)
    try:
        actor = Actor(id=staff_id, role=Role.AUDITOR)
    except ValidationError:
        fail(f"--actor: {staff_id!r} is not a staff ID (letters, digits, '.', '_' or '-')", 2)
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


async def _decoded(settings: Settings, reference: str, folder: Path | None) -> DecodedReferral:
    if folder is not None:
        found = [r for r in _exported(folder) if r.reference == reference]
        if not found:
            fail(f"{reference} is not in the export {folder}")
        return await decode_referral(found[0], data_converter(settings))
    client = await _client(settings)
    return await decode_referral(await fetch_referral(client, reference), client.data_converter)


# --- export and replay ---------------------------------------------------------------------------


@audit_app.command()
def export(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="the folder to write")],
    reference: Annotated[list[str] | None, typer.Option("--reference", "-r", help="a referral (repeatable)")] = None,
    since: Since = None,
    until: Until = None,
    query: Query = None,
    actor: Auditor = None,
) -> None:
    """Write histories (a referral and its agreed actions) as Temporal JSON, with a manifest of SHA-256s."""

    async def run() -> None:
        settings = Settings()
        async with audited(actor, settings) as audit:
            client = await _client(settings)
            if reference:
                manifest = await export_histories(client, out, references=reference)
            else:
                manifest = await export_histories(client, out, query=case_query(aware(since), aware(until), query))
            await audit.record(
                "audit_export", [f.workflow_id for f in manifest.files if f.workflow_type in CASE_WORKFLOWS],
                histories=len(manifest.files),
            )
        console.print(f"{len(manifest.files)} histories written to {out} (manifest: {out / 'manifest.json'})")

    asyncio.run(run())


@audit_app.command()
def replay(
    from_dir: FromDir = None,
    since: Since = None,
    until: Until = None,
    query: Query = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: one per CPU core)")] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox/--no-sandbox", help="keep the workflow sandbox's restrictions (slower)")
    ] = False,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Replay histories against the current workflow code; exit 1 if any is non-deterministic or fails."""

    async def run() -> ReplayReport:
        settings = Settings()
        async with audited(actor, settings, from_dir) as audit:
            if from_dir is not None:
                histories = _exported_histories(from_dir)
            else:
                client = await _client(settings)
                runs = await list_referrals(client, case_query(aware(since), aware(until), query))
                histories = [h for referral in await fetch_referrals(client, runs) for h in referral.all()]
            with Progress(
                TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), disable=as_json,
            ) as progress:
                task = progress.add_task("replay", total=len(histories))
                report = await replay_histories(
                    histories, settings, workers=workers, sandbox=sandbox, progress=lambda n: progress.advance(task, n)
                )
            await audit.record(
                "audit_replay", [h.workflow_id for h in report.histories if h.workflow_type in CASE_WORKFLOWS],
                histories=len(report.histories),
            )
            return report

    report = asyncio.run(run())
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
        raise typer.Exit(1)


# --- one referral ---------------------------------------------------------------------------------


@audit_app.command()
def timeline(
    reference: Annotated[str, typer.Argument(help=f"the referral, {Referrals.example_id}")],
    html: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    json_file: Annotated[Path | None, typer.Option("--json-file", help="write the timeline JSON here")] = None,
    from_dir: FromDir = None,
    actor: Auditor = None,
) -> None:
    """The referral's decision timeline: HTML report with a Gantt chart, and JSON (stdout unless --json-file/--html)."""

    async def run() -> None:
        settings = Settings()
        async with audited(actor, settings, from_dir) as audit:
            result = build_timeline(await _decoded(settings, reference, from_dir))
            await audit.record("audit_timeline", [reference])
        if html is not None:
            html.write_text(render_timeline_html(result))
            console.print(f"HTML report: {html}")
        if json_file is not None:
            json_file.write_text(result.model_dump_json(indent=2))
            console.print(f"JSON: {json_file}")
        if html is None and json_file is None:
            print_json(result)

    asyncio.run(run())


@audit_app.command("as-of")
def as_of(
    reference: Annotated[str, typer.Argument(help="the referral")],
    moment: Annotated[datetime, typer.Argument(metavar="TIME", help="ISO 8601; local London time if no offset")],
    from_dir: FromDir = None,
    actor: Auditor = None,
) -> None:
    """The referral's state as it stood at TIME (what the decider could see then), as JSON."""

    async def run() -> None:
        settings = Settings()
        async with audited(actor, settings, from_dir) as audit:
            try:
                state = state_from_facts(await _decoded(settings, reference, from_dir), aware(moment))
            except ValueError as error:
                fail(str(error))
            await audit.record("audit_as_of", [reference], at=aware(moment).isoformat())
        print_json(state)

    asyncio.run(run())


# --- the records ----------------------------------------------------------------------------------


@audit_app.command("reconcile")
def reconcile_command(
    since: Since = None,
    until: Until = None,
    reference: Annotated[list[str] | None, typer.Option("--reference", "-r", help="a referral (repeatable)")] = None,
    from_dir: FromDir = None,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Compare the facts in histories with the PostgreSQL records; exit 1 on any mismatch."""

    async def run() -> ReconcileReport:
        settings = Settings()
        async with audited(actor, settings, from_dir) as audit:
            if from_dir is not None:
                from activities.audit import AuditRecords

                converter = data_converter(settings)
                decoded = [await decode_case(r, converter) for r in _exported(from_dir)]
                report = await reconcile_referrals(decoded, AuditRecords(audit.pool))
                read = [r.reference for r in decoded]
            else:
                client = await _client(settings)
                report = await reconcile(
                    client, audit.pool, since=aware(since), until=aware(until), references=reference or None
                )
                # A range is recorded as one read with its count: the report does not list the referrals.
                read = reference or []
            await audit.record("audit_reconcile", read, referrals=report.referrals)
            return report

    report = asyncio.run(run())
    if as_json:
        print_json(report)
    else:
        table = Table(title=f"{report.referrals} referrals, {report.facts} facts, {report.rows} event rows")
        for column in ("referral", "problem", "table", "key", "kind", "fields"):
            table.add_column(column)
        for m in report.mismatches:
            table.add_row(m.reference, m.problem.value, m.table, m.key, m.kind or "", ", ".join(m.fields) or m.reason or "")
        console.print(table if report.mismatches else "[green]No mismatches.[/]")
        if report.in_flight:
            console.print(f"{report.in_flight} facts still being written (not mismatches).")
        if report.purged:
            console.print(f"{len(report.purged)} referrals removed by a retention purge (not mismatches).")
        if report.refused:
            console.print(
                f"{len(report.refused)} workflows refused at their start, not sealed by the keyring (not referrals): "
                + ", ".join(report.refused)
            )
    if not report.passed:
        raise typer.Exit(1)


def _quotas(values: list[str] | None) -> dict[SampleCategory, int] | None:
    if not values:
        return None
    quotas = dict(DEFAULT_QUOTAS)
    for value in values:
        name, _, count = value.partition("=")
        try:
            quotas[SampleCategory(name)] = int(count)
        except ValueError:
            fail(f"--quota {value!r}: expected CATEGORY=N with CATEGORY one of {', '.join(c.value for c in SampleCategory)}", 2)
    return quotas


@audit_app.command()
def sample(
    month: Annotated[str, typer.Option(help="YYYY-MM")],
    seed: Annotated[int, typer.Option(help="the same month and seed always give the same cases")] = 0,
    quota: Annotated[list[str] | None, typer.Option(help="CATEGORY=N, e.g. missing=5 (repeatable)")] = None,
    as_json: AsJson = False,
    actor: Auditor = None,
) -> None:
    """Draw the month's quality-assurance sample and record it as an audit worklist, drawn by the auditor."""

    async def run():
        async with audited(actor, Settings()) as audit:
            worklist = await monthly_sample(audit.pool, month, seed, _quotas(quota), audit.actor.id)
            await audit.record("audit_sample", month=month, seed=seed, items=len(worklist.items))
            return worklist

    worklist = asyncio.run(run())
    if as_json:
        print_json(worklist)
        return
    table = Table(title=f"Audit worklist {worklist.worklist_id}: {worklist.month} (seed {worklist.seed})")
    for column in ("#", "category", "referral", "status"):
        table.add_column(column)
    for item in worklist.items:
        table.add_row(str(item.position), item.category.value, item.reference, item.status)
    console.print(table)
    for category, missing in worklist.shortfall.items():
        console.print(f"[yellow]{category.value}: {missing} fewer than the quota (not enough cases that month)[/]")


@audit_app.command()
def schedule(seed: Annotated[int, typer.Option()] = 0) -> None:
    """Create or update the Temporal Schedule that draws the sample on each month's first working day."""

    async def run() -> str:
        from activities.policy import build_sla_policy

        settings = Settings()
        return await ensure_monthly_sample_schedule(
            await _client(settings), settings, build_sla_policy(settings.sla_policy_file), seed
        )

    console.print(f"Schedule {asyncio.run(run())} is in place.")


if __name__ == "__main__":
    audit_app()
