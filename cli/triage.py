"""`referrals triage show|open|decide`: a day's domestic-abuse triage from a terminal."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.connection import call, decide
from cli.inputs import AsJson, Output, DecisionKey, Reference
from cli.rendering import emit, key_values, render_escalations, rows_table, when
from workflows.triage_models import TriageOutcome

app = typer.Typer(help="The daily domestic-abuse triage: show a day's list, open it, decide on a listed referral.",
                  no_args_is_help=True)



def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise typer.BadParameter("expected a date, YYYY-MM-DD") from None


Day = Annotated[str, typer.Argument(help="the triage day, YYYY-MM-DD", callback=_day)]


def render_triage(console: Console, triage: dict[str, Any]) -> None:
    key_values(console, triage["triage_id"], [
        ("day", triage["day"]),
        ("working day", triage["working_day"]),
        ("received", f"{when(triage['received_since'])} to {when(triage['received_until'])}"),
        ("waiting", sum(1 for item in triage["items"] if item["outcome"] is None)),
    ])
    rows_table(console, "Listed referrals", ["reference", "risk", "children", "prior referrals", "episodes",
                                             "on a plan", "received", "due", "outcome", "decided by"], [
        [i["reference"], i["risk"], i["children"], len(i["history"]["prior_referrals"]),
         len(i["history"].get("missing_episodes", [])), len(i["history"].get("children_on_plans", [])),
         when(i["submitted_at"]), when(i["due_at"]), i["outcome"], i["decided_by"]]
        for i in triage["items"]
    ])
    if triage["escalations"]:
        render_escalations(console, triage["escalations"])


@app.command()
def show(day: Day, as_json: AsJson = False, output: Output = None) -> None:
    """A day's list: each referral's grade, children present, prior referrals, due time and decision."""
    emit(call("GET", f"/triage/{day}"), render_triage)


@app.command("open")
def open_triage(day: Day, as_json: AsJson = False, output: Output = None) -> None:
    """Open a day's triage now (the schedule opens it at 07:00 on working days); an open one is shown."""
    emit(call("POST", f"/triage/{day}"), render_triage)


@app.command("decide")
def decide_triage(
    day: Day,
    reference: Reference,
    outcome: Annotated[TriageOutcome, typer.Option(help="the meeting's decision")],
    rationale: Annotated[str, typer.Option(help="why")],
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Record the meeting's decision on one listed referral."""
    body = {"reference": reference, "outcome": outcome.value, "rationale": rationale}
    emit(decide(f"/triage/{day}/decisions", body, key), render_triage)
