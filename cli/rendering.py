"""How the commands print: the API's JSON for scripts, or tables of referrals, actions, escalations and decisions for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.connection import OutputFormat, output
from workflows.facts import FACTS, FactKind
from workflows.models import ScreeningView, local_zone, rung_number


def emit(data: Any, render: Callable[[Console, Any], None]) -> None:
    """Print the API's answer as the command was asked to: `-o json`, `-o jsonl` (a list's items a line each), or tables."""
    if output.format is OutputFormat.JSON:
        typer.echo(json.dumps(data, indent=2))
    elif output.format is OutputFormat.JSONL:
        items = data["items"] if isinstance(data, dict) and isinstance(data.get("items"), list) else data
        for item in items if isinstance(items, list) else [items]:
            typer.echo(json.dumps(item))
    else:
        # Off a terminal (a pipe, a test) a wide fixed width keeps table rows whole.
        render(Console(width=None if sys.stdout.isatty() else 160), data)


def when(value: str | None) -> str:
    """A time the API gave, as London's clocks show it, labelled with their zone (GMT or BST), as the dashboard shows it."""
    if not value:
        return "-"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # the API gives every time with its offset; a bare one is UTC, as the API keeps time
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M %Z")


def key_values(console: Console, title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, "-" if value is None else str(value))
    console.print(table)


def rows_table(console: Console, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    console.print(table)


def render_escalations(console: Console, escalations: list[dict], title: str = "Escalations") -> None:
    rows_table(
        console,
        title,
        ["escalation", "subject", "reason", "rung", "addressed to", "due", "raised", "acknowledged"],
        [
            [e["escalation_id"], e["subject"], e["reason"], f"{rung_number(e['rung'])} · {e['rank']}", e["addressed_to"],
             when(e["due_at"]),
             when(e["raised_at"]),
             f"{e['acknowledged_by']} {when(e['acknowledged_at'])}" if e["acknowledged_at"] else "no"]
            for e in escalations
        ],
    )


def render_actions(console: Console, actions: list[dict]) -> None:
    rows_table(
        console,
        "Agreed actions",
        ["action", "agency", "owner", "deadline", "completed", "escalations"],
        [
            [a["action_id"], a["owner"]["agency"], a["owner"]["owner"], when(a["deadline"]),
             f"{a['completed_by']} {when(a['completed_at'])}" if a["completed_at"] else "open", len(a["escalations"])]
            for a in actions
        ],
    )


def render_referral(console: Console, state: dict) -> None:
    key_values(
        console,
        f"Referral {state['reference']}",
        [
            ("stage", state["stage"]),
            ("risk", state["risk"]),
            ("incident", state["incident_type"]),
            ("referred by", state.get("referring_agency")),
            ("submitted", when(state["submitted_at"])),
            ("deadline", when(state["deadline"])),
            ("children", ", ".join(state["children"])),
            ("screening outcome", state["screening_outcome"]),
            ("repeat-referral override", override_text(state.get("repeat_referral_override"))),
            ("children's social care not informed",
             f"decided by {state['csc_not_informed']['decided_by']}" if state.get("csc_not_informed") else None),
            ("section 47", state["section_47"]),
            ("conference due by", when(state["conference_due_by"])),
            ("conference at", when(state["conference_at"])),
            ("police attendance", state["police_attendance"]),
            ("child protection plan", state["child_protection_plan"]),
            ("close reason", state["close_reason"]),
            ("missing episodes linked (CSE)", ", ".join(state.get("linked_episodes") or []) or None),
            *known_before(state.get("screening_view")),
        ],
    )
    if state["actions"]:
        render_actions(console, state["actions"])
    render_case_records(console, state)


def known_before(view: dict | None) -> list[tuple[str, Any]]:
    """What screening sees before the referral, as flags and counts: the details are in `--json`."""
    if view is None:
        return [("known before", "none until the referral reaches screening")]
    known = ScreeningView.model_validate(view)
    return [
        ("ON A CHILD PROTECTION PLAN",
         ", ".join(f"{c.child_id} (plan made at {c.plan_reference})" for c in known.children_on_plans) or None),
        ("repeat referral", ", ".join(known.repeat_children) or None),
        ("repeat suspects", ", ".join(known.repeat_suspects) or None),
        ("known before", f"{len(known.prior_referrals)} referrals, {len(known.missing_episodes)} missing episodes, "
                         f"{len(known.conference_outcomes)} conference outcomes, {len(known.panel_decisions)} panel "
                         f"decisions, {len(known.adults)} adults seen before"),
    ]


def render_case_records(console: Console, state: dict) -> None:
    """A case's escalations, if any, and its decision history, labelled by the fact registry."""
    if state["escalations"]:
        render_escalations(console, state["escalations"])
    rows_table(
        console,
        "Decisions",
        ["#", "decision", "when", "by", "role"],
        [[h["seq"], FACTS[FactKind(h["kind"])].label, when(h["at"]), h["actor_id"], h["actor_role"]]
         for h in state["history"]],
    )


def render_episode(console: Console, state: dict) -> None:
    grade = state["grade"] + (" (a low grade awaits a supervisor)" if state["low_grade_pending"] else "")
    key_values(
        console,
        f"Missing episode {state['episode_id']}",
        [
            ("phase", state["phase"]),
            ("grade", grade),
            ("indicators", ", ".join(state["indicators"]) or None),
            ("missing since", when(state["missing_since"])),
            ("reported", f"{when(state['reported_at'])} by {state['reported_by']}"),
            ("review due", when(state["review_due"])),
            ("tracing due", when(state["tracing_due"])),
            ("last tracing", when(state["last_tracing_at"])),
            ("reviews", len(state["reviews"])),
            ("found", when(state["found_at"])),
            ("where found", state["where_found"]),
            ("return-home interview", state["interview_action_id"]),
            ("interview due", when(state["interview_due"])),
            ("interview outcome", state["interview_outcome"]),
            ("trigger plan", plan_line(state.get("trigger_plan"), state.get("trigger_plan_required"))),
            ("referrals linked (CSE)", ", ".join(state.get("linked_referrals") or []) or None),
        ],
    )
    plan = state.get("trigger_plan")
    if plan:
        render_police_activity(console, plan["police_activity"], plan["addenda"])
    if state["actions"]:
        render_actions(console, state["actions"])
    render_case_records(console, state)


def plan_line(plan: dict | None, required: bool | None) -> str | None:
    """The child's trigger plan as a report found it: its ID and version, and whether it is current or required."""
    if plan is None:
        return "NONE, and the child must have one" if required else None
    state = "current" if plan["current"] else "OUT OF DATE"
    return f"{plan['plan_id']} v{plan['version']}, {state}, review by {when(plan['review_by'])}"


def render_police_activity(console: Console, police: dict, addenda: list[str]) -> None:
    key_values(
        console,
        "What police do first",
        [
            ("where to look first", police["where_to_look_first"]),
            ("may be with", police.get("may_be_with")),
            ("places", police.get("places")),
            ("phone", police.get("phone")),
        ]
        + [(f"police addendum {n}", text) for n, text in enumerate(addenda, start=1)],
    )


def render_plan(console: Console, state: dict) -> None:
    current = state["current"]
    plan = current["plan"]
    owner = plan["owner"]
    key_values(
        console,
        f"Trigger plan {state['plan_id']}",
        [
            ("version", f"{current['version']} of {len(state['versions'])}, by {current['written_by']}"),
            ("owner", f"{owner['owner']} (manager {owner.get('supervisor')})"),
            ("review by", when(plan["review_by"]) + (" OVERDUE" if state["review_overdue"] else "")),
            ("ended", when(state["ended_at"])),
            ("triggers", plan.get("triggers")),
        ],
    )
    waiting = [a["information"] for a in state["addenda"] if a["folded_into"] is None]
    render_police_activity(console, plan["police_activity"], waiting)
    if state["actions"]:
        render_actions(console, state["actions"])
    render_case_records(console, state)


def render_plans_due(console: Console, due: dict) -> None:
    rows_table(
        console,
        f"Trigger plans due for review by {when(due['until'])}",
        ["plan", "version", "owner", "manager", "review by", "overdue", "addenda waiting"],
        [[p["plan_id"], p["version"], p["owner"], p["owner_manager"], when(p["review_by"]),
          "OVERDUE" if p["overdue"] else "", p["addenda_waiting"]] for p in due["items"]],
    )


def render_episode_intake(console: Console, intake: dict) -> None:
    verb = "opened" if intake["created"] else "already reported: the same episode"
    pending = " (treated high: a low grade awaits a supervisor)" if intake["low_grade_pending"] else ""
    console.print(f"Missing episode [bold]{intake['episode_id']}[/] {verb}; grade {intake['grade']}{pending}, "
                  f"review due {when(intake['review_due'])}, tracing due {when(intake['tracing_due'])}")
    plan = intake.get("trigger_plan")
    line = plan_line(plan, intake.get("trigger_plan_required"))
    if line:
        console.print(f"Trigger plan: {line}")
    if plan:
        render_police_activity(console, plan["police_activity"], plan["addenda"])


def render_episode_page(console: Console, page: dict) -> None:
    rows_table(
        console,
        "Missing episodes",
        ["episode", "phase", "grade", "missing since", "review due", "tracing due", "overdue", "interview"],
        [[e["episode_id"], e["phase"], e["grade"], when(e["missing_since"]), when(e["review_due"]),
          when(e["tracing_due"]), "OVERDUE" if e["overdue"] else "", e["interview_outcome"] or when(e["interview_due"])]
         for e in page["items"]],
    )
    more(console, page)


def render_most_frequently_missing(console: Console, listing: dict) -> None:
    rows_table(
        console,
        f"Most frequently missing since {when(listing['since'])}",
        ["latest episode", "episodes", "open", "missing now", "repeat-missing", "last reported"],
        [[c["latest_episode_id"], str(c["episodes"]), str(c["open_episodes"]), "MISSING" if c["missing_now"] else "",
          "REPEAT" if c["repeat_missing"] else "", when(c["last_reported_at"])] for c in listing["items"]],
    )


def render_address_warning(console: Console, warning: dict) -> None:
    if not warning["children_at_risk"]:
        console.print("No children at risk known at this address.")
        return
    console.print(
        f"[bold]CHILDREN AT RISK[/bold]: {warning['open_referrals']} open referrals, {warning['children_on_plans']} "
        f"children on a child protection plan, {warning['children_missing']} missing now. Ask the CRU before attending."
    )


def override_text(override: dict | None) -> str | None:
    if override is None:
        return None
    asked = f"asked by {override['requested_by']}"
    if override["granted"] is None:
        return f"{asked}, waiting for a supervisor"
    return f"{asked}, {'granted' if override['granted'] else 'refused'} by {override['decided_by']}"


def render_action(console: Console, action: dict) -> None:
    render_actions(console, [action])


def render_intake(console: Console, intake: dict) -> None:
    verb = "created" if intake["created"] else "already submitted: the same referral"
    console.print(f"Referral [bold]{intake['reference']}[/] {verb}; stage {intake['stage']}, risk {intake['risk']}, "
                  f"deadline {when(intake['deadline'])}")


def render_referral_page(console: Console, page: dict) -> None:
    rows_table(
        console,
        "Referrals",
        ["reference", "stage", "risk", "incident", "updated", "deadline", "overdue", "record"],
        [[r["reference"], r["stage"], r["risk"], r["incident_type"] or "-", when(r["updated_at"]), when(r["deadline"]),
          "OVERDUE" if r["overdue"] else "", "INCOMPLETE" if r.get("record_incomplete") else ""]
         for r in page["items"]],
    )
    more(console, page)


def render_escalation_page(console: Console, page: dict) -> None:
    render_escalations(console, page["items"])
    more(console, page)


def more(console: Console, page: dict) -> None:
    """How to ask for the next page, if there is one."""
    if page["next_cursor"]:
        console.print(f"More: --cursor {page['next_cursor']}")
