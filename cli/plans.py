"""`referrals plans ...`: write a child's trigger plan, read it, list the plans due for review, revise it, add a police addendum, end it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connection import call, decide
from cli.inputs import AsJson, Output, DecisionKey, PlanId, body_from, read_json
from cli.rendering import emit, render_plan, render_plans_due

app = typer.Typer(help="Trigger plans: a plan per child who goes missing, police addenda, reviews.", no_args_is_help=True)

JsonFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False)]


def decide_plan(plan_id: str, route: str, body: dict[str, Any], key: str | None) -> None:
    emit(decide(f"/trigger-plans/{plan_id}/{route}", body, key), render_plan)


@app.command()
def write(file: JsonFile, as_json: AsJson = False, output: Output = None) -> None:
    """Children's social care: a child's first plan, from {"child": {...}, "plan": {...}}; a child has one plan."""
    emit(call("POST", "/trigger-plans", body=read_json(file)), render_plan)


@app.command()
def show(plan_id: PlanId, as_json: AsJson = False, output: Output = None) -> None:
    """A plan's current version, what police do first, addenda waiting, actions, escalations and decisions."""
    emit(call("GET", f"/trigger-plans/{plan_id}"), render_plan)


@app.command()
def due(
    within_days: Annotated[int, typer.Option(min=0, max=366, help="due within this many days (0: overdue only)")] = 14,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Plans in use due for review, most overdue first."""
    emit(call("GET", "/trigger-plans/due", params={"within_days": within_days, "limit": limit}),
         render_plans_due)


@app.command()
def revise(
    plan_id: PlanId,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the new version of the plan, as JSON")],
    folds_in: Annotated[list[int], typer.Option("--folds-in", help="a police addendum this version takes in")] = [],  # noqa: B006
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Children's social care: a new version of the plan (a review, or addenda folded in); the old one is kept."""
    decide_plan(plan_id, "revision", body_from(None, plan=read_json(file), folds_in=folds_in), key)


@app.command()
def addendum(
    plan_id: PlanId,
    information: Annotated[str, typer.Option(help="what police have learnt, added to the plan at once")],
    fold_in: Annotated[bool, typer.Option("--fold-in/--no-fold-in", help="ask the social worker to fold it in")] = True,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Police: add information to the plan at once, and ask the social worker to fold it in (an agreed action)."""
    decide_plan(plan_id, "police-addendum", {"information": information, "fold_in": fold_in}, key)


@app.command()
def end(
    plan_id: PlanId,
    reason: Annotated[str, typer.Option()],
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Children's social care: the plan is no longer needed (a new version brings it back)."""
    decide_plan(plan_id, "end", {"reason": reason}, key)
