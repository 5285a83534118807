"""The records commands: the access log for auditors, retention and quarantined facts for administrators."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.connection import call, fail
from cli.inputs import AsJson, Output
from cli.rendering import emit, rows_table, when

app = typer.Typer()


@app.command("access-log")
def access_log(
    reference: Annotated[str | None, typer.Option(help="only reads of this referral")] = None,
    actor: Annotated[str | None, typer.Option(help="only this staff ID's reads")] = None,
    since: Annotated[str | None, typer.Option(help="a date or a time, e.g. 2026-11-24 or 2026-11-24T09:00 (London time without an offset)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    before: Annotated[int | None, typer.Option(min=1, help="the next page: entries older than this id")] = None,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Who read which referral, through which channel, and when; newest first (auditors)."""
    params = {"reference": reference, "actor_id": actor, "since": since, "limit": limit, "before": before}

    def render(console: Console, entries: list[dict]) -> None:
        rows_table(
            console,
            "Access log",
            ["id", "when", "actor", "role", "agency", "channel", "action", "reference"],
            [[str(e["id"]), when(e["at"]), e["actor_id"], e["actor_role"], e["actor_agency"], e["channel"],
              e["action"], e["reference"]] for e in entries],
        )
        if len(entries) == limit:
            console.print(f"Older entries: --before {entries[-1]['id']}")

    emit(call("GET", "/access-log", params=params), render)


@app.command()
def retention(
    purge: Annotated[bool, typer.Option("--purge", help="remove them; without it, only list them")] = False,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Closed referrals past the retention period: a dry run, or with --purge their removal (administrators)."""

    def render(console: Console, report: dict) -> None:
        verb = ("would be removed (dry run; --purge removes them)" if report["dry_run"]
                else f"removed ({report['rows']} rows)")
        console.print(f"Closed before {when(report['closed_before'])}: {len(report['references'])} referrals {verb}")
        if report["references"]:
            rows_table(console, "Referrals", ["reference"], [[reference] for reference in report["references"]])

    emit(call("POST", "/retention/purge") if purge else call("GET", "/retention"), render)


@app.command()
def quarantine(
    reference: Annotated[str | None, typer.Option(help="only this referral's facts")] = None,
    reapply: Annotated[bool, typer.Option("--reapply", help="write them again, once the cause is fixed")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="list re-applied facts too")] = False,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Facts PostgreSQL refused, with why; --reapply records them once the cause is fixed (administrators)."""
    params = {"reference": reference}

    def render_listed(console: Console, facts: list[dict]) -> None:
        rows_table(
            console,
            "Quarantined facts",
            ["reference", "fact", "kind", "reason", "quarantined", "re-applied", "resolved"],
            [[f["reference"], f"{f['stream']}#{f['seq']}", f["kind"], f["reason"], when(f["quarantined_at"]),
              f["reapply_attempts"], when(f["resolved_at"])] for f in facts],
        )

    def render_reapplied(console: Console, outcomes: list[dict]) -> None:
        rows_table(
            console,
            "Re-applied",
            ["reference", "fact", "kind", "outcome"],
            [[o["reference"], f"{o['stream']}#{o['seq']}", o["kind"], "recorded" if o["resolved"] else o["reason"]]
             for o in outcomes],
        )
        still = sum(not o["resolved"] for o in outcomes)
        if still:
            fail(f"{still} of {len(outcomes)} facts are still refused", 1)

    if reapply:
        emit(call("POST", "/quarantine/reapply", params=params), render_reapplied)
    else:
        emit(call("GET", "/quarantine", params=params | {"resolved": resolved}), render_listed)
