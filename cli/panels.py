"""`referrals panels ...`: panels and their cadence, a sitting's agenda, attendance, each case's outcome and the minutes, from a terminal."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.connection import call, decide
from cli.inputs import AsJson, Output, DecisionKey, read_json, refused_unless, split_fields
from cli.rendering import emit, key_values, render_actions, render_escalations, rows_table, when
from starter.panels import PanelSittings
from workflows.models import PANEL_ID_PATTERN
from workflows.panel_models import PanelGrade

app = typer.Typer(help="Multi-agency panels (CSE/missing MARAC): cadence, agenda, attendance, outcomes, minutes.",
                  no_args_is_help=True)

SittingId = Annotated[
    str,
    typer.Argument(help=f"the sitting's ID, {PanelSittings.example_id}",
                   callback=refused_unless(PanelSittings.id_pattern, PanelSittings.missing().reason)),
]


# A panel's code as the API checks it: never part of a request's path otherwise.
known_panel = refused_unless(re.compile(rf"^{PANEL_ID_PATTERN}$"), "panel_id: no such panel")


def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise typer.BadParameter("expected a date, YYYY-MM-DD") from None


def render_sitting(console: Console, sitting: dict[str, Any]) -> None:
    key_values(console, sitting["sitting_id"], [
        ("panel", sitting["panel_name"]),
        ("meets at", when(sitting["meets_at"])),
        ("phase", sitting["phase"]),
        ("held at", when(sitting["held_at"])),
        ("closed at", when(sitting["closed_at"])),
    ])
    rows_table(console, "Agenda", ["case", "reasons", "carried from", "referred by", "grade", "applied", "absent roles",
                                   "actions", "not reached"], [
        [i["case_id"], ", ".join(i["reasons"]), i["carried_from"], i["referred_by"], i["grade"],
         (i["grade_applied"] or {}).get("result"), ", ".join(i["absent_roles"]), len(i["action_ids"]),
         "yes" if i["not_reached"] else ""]
        for i in sitting["agenda"]
    ])
    if sitting["attendees"]:
        rows_table(console, "Attendance", ["name", "agency", "role", "named role", "for"], [
            [a["name"], a["agency"], a["role"], a["named_role"], ", ".join(a["case_ids"]) or "every case"]
            for a in sitting["attendees"]
        ])
    if sitting["actions"]:
        render_actions(console, sitting["actions"])
    if sitting["escalations"]:
        render_escalations(console, sitting["escalations"])


def render_minutes(console: Console, minutes: dict[str, Any]) -> None:
    key_values(console, f"Minutes of {minutes['sitting_id']}", [
        ("panel", minutes["panel_name"]), ("held at", when(minutes["held_at"])), ("closed at", when(minutes["closed_at"])),
        ("attended", "; ".join(f"{a['name']} ({a['agency']}, {a['role']})" for a in minutes["attendees"])),
    ])
    for case in minutes["cases"]:
        key_values(console, case["case_id"], [
            ("on the agenda for", ", ".join(case["reasons"])),
            ("grade", case["grade"]), ("live case", case["grade_applied"]),
            ("attended by", "; ".join(case["attended_by"])),
            ("absent", ", ".join(case["absent_roles"])),
            ("not reached (carried)", case["not_reached"]),
        ])
        if case["actions"]:
            render_actions(console, case["actions"])


def render_panels(console: Console, listing: list[dict[str, Any]]) -> None:
    rows_table(console, "Panels", ["panel", "name", "area", "cadence", "agenda days before", "next agenda"], [
        [p["panel"]["panel_id"], p["panel"]["name"], p["panel"]["area"], p["panel"]["cadence"],
         p["panel"]["agenda_days_before"], when(p["next_agendas"][0]) if p["next_agendas"] else None]
        for p in listing
    ])


def render_sittings(console: Console, rows: list[dict[str, Any]]) -> None:
    rows_table(console, "Sittings", ["sitting", "panel", "meets at", "phase", "cases", "decided", "carried", "not reached"], [
        [r["sitting_id"], r["panel_name"], when(r["meets_at"]), r["phase"], r["cases"], r["decided"], r["carried"],
         r["not_reached"]]
        for r in rows
    ])


def render_absences(console: Console, rows: list[dict[str, Any]]) -> None:
    rows_table(console, "Required attendees absent", ["sitting", "case", "role", "reason given", "escalation", "open"], [
        [r["sitting_id"], r["case_id"], r["named_role"], r["reason_given"], r["escalation_id"], r["open"]] for r in rows
    ])


def render_panel_actions(console: Console, rows: list[dict[str, Any]]) -> None:
    rows_table(console, "Actions set by panels", ["action", "case", "agency", "owner", "deadline", "completed"], [
        [r["action_id"], r["case_id"], r["agency"], r["owner"], when(r["deadline"]), when(r["completed_at"])] for r in rows
    ])


def decide_sitting(sitting_id: str, route: str, body: dict[str, Any], key: str | None) -> None:
    emit(decide(f"/panel-sittings/{sitting_id}/{route}", body, key), render_sitting)


@app.command("list")
def list_panels(as_json: AsJson = False, output: Output = None) -> None:
    """Every panel with a cadence, and when its next agenda is built."""
    emit(call("GET", "/panels"), render_panels)


@app.command("set")
def set_panel(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the panel as JSON (panel_id, name, area, cadence...)")],
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Set up a panel, or change its cadence, members, criteria or required roles."""
    body = read_json(file)
    panel_id = known_panel(str(body.get("panel_id", "")))
    emit(call("PUT", f"/panels/{panel_id}", body=body), lambda console, listed: render_panels(console, [listed]))


@app.command("open")
def open_sitting(
    panel_id: Annotated[str, typer.Argument(help="the panel's code, e.g. CSENORTH", callback=lambda v: known_panel(v))],
    day: Annotated[str, typer.Argument(help="the sitting's date, YYYY-MM-DD", callback=_day)],
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Open a panel's sitting now, its agenda built from its criteria (its schedule does this ahead of each sitting)."""
    emit(call("POST", f"/panels/{panel_id}/sittings/{day}"), render_sitting)


@app.command()
def sittings(upcoming: Annotated[bool, typer.Option(help="only those meeting from today")] = False,
             as_json: AsJson = False, output: Output = None) -> None:
    """Panel sittings, soonest first, with their agenda's counts."""
    emit(call("GET", "/panel-sittings", params={"upcoming": upcoming}), render_sittings)


@app.command()
def show(sitting_id: SittingId, as_json: AsJson = False, output: Output = None) -> None:
    """A sitting's agenda, register, actions and escalations."""
    emit(call("GET", f"/panel-sittings/{sitting_id}"), render_sitting)


@app.command()
def agenda(
    sitting_id: SittingId,
    reason: Annotated[str, typer.Option(help="why the agenda changes")],
    add: Annotated[list[str], typer.Option(help="a case a member agency refers: CASE_ID|AGENCY")] = [],  # noqa: B006
    remove: Annotated[list[str], typer.Option(help="a case taken off the agenda")] = [],  # noqa: B006
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Before the meeting: add cases referred by member agencies, take cases off."""
    additions = []
    for item in add:
        fields = split_fields(item, ["case_id", "referred_by"], "--add")
        additions.append({"case_id": fields["case_id"], "referred_by": fields["referred_by"]})
    decide_sitting(sitting_id, "agenda", {"add": additions, "remove": remove, "reason": reason}, key)


@app.command()
def meeting(sitting_id: SittingId, as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Chair: open the meeting; the agenda is fixed from here."""
    decide_sitting(sitting_id, "meeting", {}, key)


@app.command()
def attendance(
    sitting_id: SittingId,
    attendee: Annotated[list[str], typer.Option(help="NAME|AGENCY|ROLE[|NAMED_ROLE[|CASE_ID,CASE_ID]]")] = [],  # noqa: B006
    absent: Annotated[list[str], typer.Option(help="CASE_ID|NAMED_ROLE|REASON")] = [],  # noqa: B006
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Record who attended, by name, agency and role (and the named role they fill), and known absences."""
    attendees = []
    for item in attendee:
        fields = split_fields(item, ["name", "agency", "role", "named_role?", "case_ids?"], "--attendee")
        attendees.append({"name": fields["name"], "agency": fields["agency"], "role": fields["role"],
                          "named_role": fields.get("named_role"),
                          "case_ids": [c for c in fields.get("case_ids", "").split(",") if c]})
    absences = [split_fields(item, ["case_id", "named_role", "reason"], "--absent") for item in absent]
    decide_sitting(sitting_id, "attendance", {"attendees": attendees, "absences": absences}, key)


@app.command()
def outcome(
    sitting_id: SittingId,
    case_id: Annotated[str, typer.Argument(help="the case decided on")],
    rationale: Annotated[str, typer.Option()],
    grade: Annotated[PanelGrade | None, typer.Option(help="the grade decided: applied at once to the live case")] = None,
    action: Annotated[list[str], typer.Option(help="an agreed action: AGENCY|OWNER|DEADLINE|DESCRIPTION[|SUPERVISOR]")] = [],  # noqa: B006
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Chair: the panel's decision on one case: its grade, rationale and actions (each with an owner and a deadline)."""
    actions = []
    for item in action:
        fields = split_fields(item, ["agency", "owner", "deadline", "description", "supervisor?"], "--action")
        owner = {"agency": fields["agency"], "owner": fields["owner"], "supervisor": fields.get("supervisor")}
        actions.append({"owner": owner, "deadline": fields["deadline"], "description": fields["description"]})
    body = {"case_id": case_id, "rationale": rationale, "grade": grade.value if grade else None, "agreed_actions": actions}
    decide_sitting(sitting_id, "outcomes", body, key)


@app.command()
def close(sitting_id: SittingId, as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Chair: close the meeting; the minutes are made and cases not reached are carried to the next sitting."""
    emit(decide(f"/panel-sittings/{sitting_id}/minutes", {}, key), render_sitting)


@app.command()
def minutes(sitting_id: SittingId, as_json: AsJson = False, output: Output = None) -> None:
    """A sitting's minutes, produced from its record."""
    emit(call("GET", f"/panel-sittings/{sitting_id}/minutes"), render_minutes)


@app.command()
def absences(as_json: AsJson = False, output: Output = None) -> None:
    """Required attendees absent when their case was decided, with the escalation each raised."""
    emit(call("GET", "/panel-sittings/absences"), render_absences)


@app.command()
def actions(open_only: Annotated[bool, typer.Option("--open/--all")] = True, as_json: AsJson = False, output: Output = None) -> None:
    """The actions panels set, soonest deadline first."""
    emit(call("GET", "/panel-sittings/actions", params={"open": open_only}), render_panel_actions)

