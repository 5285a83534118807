"""Every stage, decision and workflow type reaches each place that must know it: deadlines, teams, routes, commands, docs.

Each test enumerates the source (the Stage enum, the SLA policy, the workflows the worker
runs and the updates each defines) and asserts the consumer covers it, so a new stage or
decision that misses one fails here by name. Each was seen to fail with its entry removed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
import typer.main

import api.routes
import workflows
from api.app import ROUTERS
from cli.main import app as cli_app
from cli.rendering import render_referral
from starter.acknowledgement import ESCALATING
from tests.helpers import decision_route, deciding_workflows, updates_of, workflow_clients
from worker import WORKFLOWS
from workflows.models import ReferralState, SlaPolicy, Stage, StageDeadlines
from workflows.referral import STAGE_TEAMS

ROOT = Path(__file__).resolve().parents[2]
DESIGN = (ROOT / "docs" / "design.md").read_text()
README = (ROOT / "README.md").read_text()

# The stages whose deadline is not the SLA policy's per-stage timescale, and why.
DUE_OTHERWISE = {
    Stage.CONFERENCE: "due by working days from the strategy discussion, then the day after the booked conference",
    Stage.ACTIONS: "each agreed action has its own deadline and ladder",
    Stage.CLOSED: "nothing is due",
}


def cli_commands() -> dict[str, str]:
    """Each command of the `referrals` app (`conference book`, ...) and its function's source."""
    found: dict[str, str] = {}

    def walk(command, name: str) -> None:
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())
        if command.callback is not None and not hasattr(command, "commands"):
            found[name] = inspect.getsource(command.callback)

    walk(typer.main.get_command(cli_app), "")
    return found


# What a referral's state holds that the CLI's table leaves to `--json`, and why.
NOT_IN_THE_CLI_TABLE = {
    "stage_entered_at": "the deadline is what a reader acts on",
    "submission_versions": "the form's versions, for intake's conflict check",
    "form_id": "the form's identity, for intake's conflict check",
    "form_digest": "the form's identity, for intake's conflict check",
    "strategy_discussion_inquorate": "raised as an escalation, which the table lists",
    "conference_late_reason": "free text",
}


def test_every_stage_has_a_deadline_that_escalates_to_a_team():
    policy = SlaPolicy()
    for stage in Stage:
        if stage in DUE_OTHERWISE:
            assert policy.deadlines_for(stage) is None, f"{stage}: has a policy timescale, yet is declared due otherwise"
            continue
        assert policy.deadlines_for(stage) is not None, f"{stage}: no SlaPolicy timescale (SlaPolicy.deadlines_for)"
    # Every stage that can be late (all but the actions' and the closed) names the team its first rung alerts.
    late_able = set(Stage) - {Stage.ACTIONS, Stage.CLOSED}
    assert late_able - set(STAGE_TEAMS) == set(), "a stage with a deadline and no team in STAGE_TEAMS"


def test_the_design_names_every_stage_every_update_and_every_default_timescale():
    for stage in Stage:
        assert f"`{stage.value}`" in DESIGN, f"docs/design.md does not name the stage `{stage.value}`"
    for workflow_class in deciding_workflows():
        for name in updates_of(workflow_class):
            assert f"`{name}`" in DESIGN, f"docs/design.md does not name the update `{name}`"
    defaults = next(p for p in DESIGN.split("\n\n") if p.startswith("Defaults"))
    for field, info in SlaPolicy.model_fields.items():
        if info.annotation is StageDeadlines:
            assert field.replace("_", " ") in " ".join(defaults.split()), f"the SLA defaults omit `{field}`"


def test_every_workflow_that_takes_decisions_has_a_client_with_every_update():
    clients = {client.workflow: client for client in workflow_clients()}
    for workflow_class in deciding_workflows():
        assert workflow_class in clients, f"{workflow_class.__name__}: no WorkflowClient in starter/"
        mapped = {update.__name__ for update in clients[workflow_class].updates.values()}
        assert mapped == set(updates_of(workflow_class)), f"{workflow_class.__name__}: the client's `updates` differ"


@pytest.mark.parametrize("client", workflow_clients(), ids=lambda c: c.__name__)
def test_every_decision_has_an_api_route_a_cli_command_and_a_readme_line(client):
    commands = cli_commands()
    for decision, update in client.updates.items():
        route = decision_route(decision, update.__name__)
        assert route is not None, f"{decision.__name__}: no POST route in api/routes/ takes it"
        segment = route.path.rsplit("/", 1)[-1]
        # A command names its route's last segment: `decide_referral(reference, "screening", ...)` or `f".../completion"`.
        named = re.compile(rf'(/{re.escape(segment)}"|, "{re.escape(segment)}",)')
        assert any(named.search(source) for source in commands.values()), (
            f"{decision.__name__}: no command in the `referrals` CLI posts to {route.path}")
        assert f"/{segment}`" in README or f"/{segment}," in README, f"README.md does not list {route.path}"

def rendered_by(function) -> str:
    """The source of `function` and of every function of its module it calls, so a shared helper counts."""
    module = inspect.getmodule(function)
    helpers = {name: value for name, value in vars(module).items()
               if inspect.isfunction(value) and value.__module__ == module.__name__}
    sources: dict[str, str] = {}
    waiting = [function]
    while waiting:
        current = waiting.pop()
        if current.__name__ not in sources:
            sources[current.__name__] = inspect.getsource(current)
            waiting += [f for name, f in helpers.items() if re.search(rf"\b{name}\(", sources[current.__name__])]
    return "\n".join(sources.values())


def test_the_cli_shows_every_field_of_a_referrals_state():
    shown = rendered_by(render_referral)
    for field in ReferralState.model_fields:
        if field not in NOT_IN_THE_CLI_TABLE:
            assert re.search(rf"""state(\[|\.get\()["']{field}["']""", shown), f"render_referral omits `{field}`"


def modules_of(package) -> list:
    return [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]


def test_the_worker_runs_every_workflow_and_the_app_includes_every_router():
    defined = {value for module in modules_of(workflows) for value in vars(module).values()
               if isinstance(value, type) and hasattr(value, "__temporal_workflow_definition")
               and value.__module__ == module.__name__}
    assert {w.__name__ for w in defined - set(WORKFLOWS)} == set(), "a workflow worker.py's WORKFLOWS does not run"
    routers = [module.__name__ for module in modules_of(api.routes) if getattr(module, "router", None) not in ROUTERS]
    assert routers == [], "a router of api/routes/ that api/app.py's ROUTERS leaves out"


def test_every_workflow_that_escalates_is_one_an_acknowledgement_can_reach():
    escalating = {client for client in workflow_clients() if "acknowledge_escalation" in updates_of(client.workflow)}
    assert escalating - set(ESCALATING) == set(), "a client missing from starter/acknowledgement.py's ESCALATING"


def test_every_workflow_that_escalates_keeps_its_escalations_in_one_book():
    escalating = [client.workflow for client in workflow_clients()
                  if "acknowledge_escalation" in updates_of(client.workflow)]
    assert escalating, "no escalating workflow found: the check would pass vacuously"
    without_book = [w.__name__ for w in escalating if "EscalationBook(" not in inspect.getsource(w)]
    assert without_book == [], "a workflow raising escalations without an EscalationBook (workflows/escalation.py)"
    numbering_its_own = [w.__name__ for w in escalating if "escalation_id_for(" in inspect.getsource(w)]
    assert numbering_its_own == [], "a workflow numbering escalations itself instead of through its book"
