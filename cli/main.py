"""The `referrals` command: every API action from a terminal, as tables for people or `--json` for scripts.

It talks to the HTTP API (REFERRALS_API_URL, default http://127.0.0.1:8000) with the bearer
token from REFERRALS_TOKEN or the config file (REFERRALS_CONFIG, default
~/.config/referrals/config.toml, with `api_url` and `token` keys). A failed request exits
non-zero with the API's own message; the exit code says which kind of failure it was.
Decision commands take their fields as options, or a whole JSON body with `--file`
(options override the file's fields).

Sub-apps hang off `app` with `app.add_typer(...)`: `actions` and `conference` here, others
(an `audit` app) can join the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli.audit import audit_app
from workflows.facts import FACTS, FactKind
from workflows.models import Agency, ChildDecision, CloseReason, RiskGrade, ScreeningOutcome, Stage

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG = Path("~/.config/referrals/config.toml")
TIMEOUT = 60.0

# Exit codes: 1 the API could not be reached or failed, 2 a usage error (typer's own).
EXIT_CODES = {401: 3, 403: 4, 404: 5, 409: 6, 422: 7, 503: 8, 504: 9}
KEY_HEADER = "Idempotency-Key"

app = typer.Typer(help="Child-protection referrals: submit VISTs, decide, follow actions and escalations.",
                  no_args_is_help=True)
actions_app = typer.Typer(help="Agreed actions: complete or reassign one.", no_args_is_help=True)
conference_app = typer.Typer(help="The initial child protection conference: book it, record its outcome.",
                             no_args_is_help=True)
app.add_typer(actions_app, name="actions")
app.add_typer(conference_app, name="conference")
app.add_typer(audit_app, name="audit")

AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of tables")]
BodyFile = Annotated[
    Path | None, typer.Option("--file", "-f", exists=True, dir_okay=False, help="a JSON body; options override it")
]
DecisionKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="the key a timed-out attempt printed: the decision is applied once, and this returns its outcome",
    ),
]


# --- talking to the API ------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    url: str
    token: str | None


def connection() -> Connection:
    config_path = Path(os.environ.get("REFERRALS_CONFIG", DEFAULT_CONFIG)).expanduser()
    config: dict[str, Any] = {}
    if config_path.exists():
        try:
            config = tomllib.loads(config_path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as error:
            fail(f"cannot read {config_path}: {error}", 1)
    url = os.environ.get("REFERRALS_API_URL") or config.get("api_url") or DEFAULT_API_URL
    token = os.environ.get("REFERRALS_TOKEN") or config.get("token")
    return Connection(url=str(url).rstrip("/"), token=token)


def fail(message: str, code: int) -> NoReturn:
    Console(stderr=True).print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def explain(response: httpx.Response) -> str:
    """The API's error message: its reason, or each bad field and why."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
    if isinstance(detail, list):
        lines = [".".join(str(part) for part in item.get("loc", [])) + f": {item.get('msg')}" for item in detail]
        return f"HTTP {response.status_code}, invalid request:\n  " + "\n  ".join(lines)
    return f"HTTP {response.status_code}: {detail}"


def call(
    method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, key: str | None = None
) -> Any:
    """One request; a decision's carries its idempotency key, printed again whenever its outcome is unknown."""
    conn = connection()
    if conn.token is None:
        fail("no token: set REFERRALS_TOKEN or `token` in the config file", EXIT_CODES[401])
    query = {k: v for k, v in (params or {}).items() if v is not None}
    headers = {"Authorization": f"Bearer {conn.token}", "X-Referrals-Client": "cli"}
    if key:
        headers[KEY_HEADER] = key
    retry = f"\nRetry with --idempotency-key {key} to learn whether it was applied (it is applied at most once)."
    try:
        with httpx.Client(base_url=conn.url, timeout=TIMEOUT) as client:
            response = client.request(method, path, json=body, params=query, headers=headers)
    except httpx.TimeoutException as error:
        fail(f"no answer from the API at {conn.url}: {type(error).__name__}" + (retry if key else ""), 1)
    except httpx.HTTPError as error:
        fail(f"cannot reach the API at {conn.url}: {type(error).__name__}" + (retry if key else ""), 1)
    if response.status_code >= 400:
        unknown = key is not None and response.status_code in (503, 504)
        fail(explain(response) + (retry if unknown else ""), EXIT_CODES.get(response.status_code, 1))
    return response.json()


def decide(path: str, body: Any, key: str | None) -> Any:
    """POST one decision under its idempotency key: the one given, or a fresh one for this command."""
    return call("POST", path, body=body, key=key or uuid.uuid4().hex)


def emit(data: Any, as_json: bool, render: Callable[[Console, Any], None]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        # Off a terminal (a pipe, a test) a wide fixed width keeps table rows whole.
        render(Console(width=None if sys.stdout.isatty() else 160), data)


def read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        fail(f"{path}: not a JSON file ({type(error).__name__})", 2)
    if not isinstance(data, dict):
        fail(f"{path}: the JSON must be an object", 2)
    return data


def body_from(file: Path | None, **fields: Any) -> dict[str, Any]:
    """The file's body with every option given on the command line laid over it."""
    return read_json(file) | {name: value for name, value in fields.items() if value is not None and value != []}


def split_fields(value: str, names: list[str], option: str) -> dict[str, str]:
    """'a|b|c' -> {names[0]: a, ...}; the trailing names are optional."""
    parts = [p.strip() for p in value.split("|")]
    required = [n for n in names if not n.endswith("?")]
    if not len(required) <= len(parts) <= len(names):
        fail(f"{option}: expected {'|'.join(n.rstrip('?') for n in names)}", 2)
    return {name.rstrip("?"): part for name, part in zip(names, parts) if part}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


# --- rendering ---------------------------------------------------------------------------------


def when(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


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
            [e["escalation_id"], e["subject"], e["reason"], e["rung"], e["addressed_to"], when(e["due_at"]),
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
            ("submitted", when(state["submitted_at"])),
            ("deadline", when(state["deadline"])),
            ("children", ", ".join(state["children"])),
            ("screening outcome", state["screening_outcome"]),
            ("repeat-referral override", override_text(state.get("repeat_referral_override"))),
            ("section 47", state["section_47"]),
            ("conference due by", when(state["conference_due_by"])),
            ("conference at", when(state["conference_at"])),
            ("police attendance", state["police_attendance"]),
            ("child protection plan", state["child_protection_plan"]),
            ("close reason", state["close_reason"]),
        ],
    )
    if state["actions"]:
        render_actions(console, state["actions"])
    if state["escalations"]:
        render_escalations(console, state["escalations"])
    rows_table(
        console,
        "Decisions",
        ["#", "decision", "when", "by", "role"],
        [[h["seq"], FACTS[FactKind(h["kind"])].label, when(h["at"]), h["actor_id"], h["actor_role"]]
         for h in state["history"]],
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
    if page["next_cursor"]:
        console.print(f"More: --cursor {page['next_cursor']}")


# --- commands ----------------------------------------------------------------------------------


Reference = Annotated[str, typer.Argument(help="the referral's reference, REF-XXXXX-XXXXX")]


def decide_referral(reference: str, route: str, body: dict[str, Any], as_json: bool, key: str | None) -> None:
    emit(decide(f"/referrals/{reference}/{route}", body, key), as_json, render_referral)


@app.command()
def submit(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a VIST form as JSON")],
           as_json: AsJson = False) -> None:
    """Submit a VIST form; the same form again finds the same referral."""
    emit(call("POST", "/referrals", body=read_json(file)), as_json, render_intake)


@app.command()
def show(reference: Reference, as_json: AsJson = False) -> None:
    """A referral's stage, risk, deadlines, actions, escalations and decisions."""
    emit(call("GET", f"/referrals/{reference}"), as_json, render_referral)


@app.command("list")
def list_referrals(
    stage: Annotated[Stage | None, typer.Option()] = None,
    risk: Annotated[RiskGrade | None, typer.Option()] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue")] = None,
    updated_since: Annotated[str | None, typer.Option(help="ISO 8601 time with offset")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False,
) -> None:
    """Referrals, most recently updated first."""
    params = {"stage": stage.value if stage else None, "risk": risk.value if risk else None,
              "overdue": None if overdue is None else str(overdue).lower(), "updated_since": updated_since,
              "limit": limit, "cursor": cursor}
    emit(call("GET", "/referrals", params=params), as_json, render_referral_page)


@app.command()
def review(
    reference: Reference,
    approve: Annotated[
        bool | None, typer.Option("--approve/--return", help="approve, or return to the officer")
    ] = None,
    reasons: Annotated[str | None, typer.Option(help="why it is returned")] = None,
    file: BodyFile = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Supervisor review: approve the VIST or return it to the officer with reasons."""
    decide_referral(reference, "supervisor-review", body_from(file, approved=approve, reasons=reasons), as_json, key)


@app.command()
def resubmit(reference: Reference,
             form: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the corrected VIST as JSON")],
             as_json: AsJson = False, key: DecisionKey = None) -> None:
    """Resubmit a returned VIST (same form ID)."""
    decide_referral(reference, "resubmission", {"submission": read_json(form)}, as_json, key)


@app.command()
def screen(
    reference: Reference,
    risk: Annotated[RiskGrade | None, typer.Option()] = None,
    outcome: Annotated[ScreeningOutcome | None, typer.Option()] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    child: Annotated[list[str], typer.Option(help="CHILD_ID=DECISION[:rationale], once per child")] = [],  # noqa: B006
    inform: Annotated[list[Agency], typer.Option(help="an agency informed; repeat")] = [],  # noqa: B006
    file: BodyFile = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """CRU/MASH screening: risk grade, a decision for every child, the outcome and its rationale."""
    decisions = []
    for item in child:
        child_id, _, rest = item.partition("=")
        decision, _, why = rest.partition(":")
        if not child_id or decision not in {d.value for d in ChildDecision}:
            fail(f"--child: expected CHILD_ID=DECISION[:rationale], DECISION one of "
                 f"{', '.join(d.value for d in ChildDecision)}", 2)
        decisions.append({"child_id": child_id.strip(), "decision": decision, "rationale": why or rationale})
    body = body_from(file, risk=risk and risk.value, outcome=outcome and outcome.value, rationale=rationale,
                     child_decisions=decisions, agencies_informed=[a.value for a in inform])
    decide_referral(reference, "screening", body, as_json, key)


@app.command("override-request")
def override_request(reference: Reference,
                     reason: Annotated[str, typer.Option(help="why the repeat referral needs no further action")],
                     as_json: AsJson = False, key: DecisionKey = None) -> None:
    """Screener: ask a supervisor to let a repeat referral close with no further action."""
    decide_referral(reference, "override-request", {"reason": reason}, as_json, key)


@app.command()
def override(
    reference: Reference,
    grant: Annotated[bool, typer.Option("--grant/--refuse", help="grant the override, or refuse it")],
    rationale: Annotated[str, typer.Option(help="the supervisor's rationale")],
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Supervisor: grant or refuse the repeat-referral override a screener asked for (never your own request)."""
    decide_referral(reference, "override", {"granted": grant, "rationale": rationale}, as_json, key)


@app.command()
def strategy(
    reference: Reference,
    held_at: Annotated[str | None, typer.Option(help="ISO 8601; default now")] = None,
    section_47: Annotated[bool | None, typer.Option("--section-47/--no-section-47")] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    attendee: Annotated[list[str], typer.Option(help="NAME|AGENCY|ROLE; repeat")] = [],  # noqa: B006
    action: Annotated[
        list[str], typer.Option(help="DESCRIPTION|AGENCY|OWNER|DEADLINE[|SUPERVISOR]; repeat")
    ] = [],  # noqa: B006
    file: BodyFile = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Record a strategy discussion: who attended, section 47 or not, and the agreed actions."""
    attendees = [split_fields(a, ["name", "agency", "role"], "--attendee") for a in attendee]
    actions = []
    for item in action:
        fields = split_fields(item, ["description", "agency", "owner", "deadline", "supervisor?"], "--action")
        owner = {"agency": fields["agency"], "owner": fields["owner"], "supervisor": fields.get("supervisor")}
        actions.append({"description": fields["description"], "owner": owner, "deadline": fields["deadline"]})
    body = body_from(file, section_47=section_47, rationale=rationale, attendees=attendees, agreed_actions=actions,
                     held_at=held_at)
    body.setdefault("held_at", now_iso())
    decide_referral(reference, "strategy-discussion", body, as_json, key)


@conference_app.command("book")
def book_conference(
    reference: Reference,
    at: Annotated[str | None, typer.Option("--at", help="when the ICPC is held, ISO 8601")] = None,
    attend: Annotated[
        bool | None, typer.Option("--attend/--report-in-lieu", help="police attend, or send a report")
    ] = None,
    rationale: Annotated[str | None, typer.Option(help="the risk-based rationale for a report in lieu")] = None,
    report_owner: Annotated[str | None, typer.Option(help="who writes the report in lieu")] = None,
    late_reason: Annotated[str | None, typer.Option(help="why later than the statutory working days")] = None,
    file: BodyFile = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Book the ICPC and decide police attendance."""
    attendance = None if attend is None else ("attend" if attend else "report_in_lieu")
    body = body_from(file, conference_at=at, police_attendance=attendance, attendance_rationale=rationale,
                     report_owner=report_owner, late_reason=late_reason)
    decide_referral(reference, "conference", body, as_json, key)


@conference_app.command("outcome")
def conference_outcome(
    reference: Reference,
    held_at: Annotated[str | None, typer.Option(help="ISO 8601; default now")] = None,
    plan: Annotated[bool | None, typer.Option("--plan/--no-plan", help="a child protection plan was made")] = None,
    police_attended: Annotated[bool | None, typer.Option("--police-attended/--police-absent")] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    file: BodyFile = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Record the ICPC's outcome."""
    body = body_from(file, held_at=held_at, child_protection_plan=plan, police_attended=police_attended,
                     rationale=rationale)
    body.setdefault("held_at", now_iso())
    decide_referral(reference, "conference-outcome", body, as_json, key)


@app.command()
def regrade(reference: Reference, risk: Annotated[RiskGrade, typer.Argument()],
            reason: Annotated[str, typer.Option(help="why the grade changes")], as_json: AsJson = False,
            key: DecisionKey = None) -> None:
    """Change the risk grade; deadlines follow at once."""
    decide_referral(reference, "risk", {"risk": risk.value, "reason": reason}, as_json, key)


@app.command()
def close(reference: Reference, reason: Annotated[CloseReason, typer.Argument()],
          note: Annotated[str | None, typer.Option()] = None, as_json: AsJson = False,
          key: DecisionKey = None) -> None:
    """Close a referral with a reason."""
    decide_referral(reference, "close", body_from(None, reason=reason.value, note=note), as_json, key)


ActionId = Annotated[str, typer.Argument(help="the action's ID, REF-XXXXX-XXXXX.A1")]


@actions_app.command("complete")
def complete_action(action_id: ActionId, note: Annotated[str, typer.Option(help="the completion evidence")],
                    as_json: AsJson = False, key: DecisionKey = None) -> None:
    """Mark an agreed action done, with the evidence."""
    emit(decide(f"/actions/{action_id}/completion", {"note": note}, key), as_json, render_action)


@actions_app.command("reassign")
def reassign_action(
    action_id: ActionId,
    agency: Annotated[Agency, typer.Option()],
    owner: Annotated[str, typer.Option(help="the new owner's name")],
    reason: Annotated[str, typer.Option()],
    supervisor: Annotated[str | None, typer.Option(help="the new owner's supervisor")] = None,
    deadline: Annotated[str | None, typer.Option(help="a new deadline, ISO 8601")] = None,
    as_json: AsJson = False,
    key: DecisionKey = None,
) -> None:
    """Give an agreed action to another owner (and optionally a new deadline)."""
    body = body_from(None, owner={"agency": agency.value, "owner": owner, "supervisor": supervisor}, reason=reason,
                     deadline=deadline)
    emit(decide(f"/actions/{action_id}/reassignment", body, key), as_json, render_action)


@app.command()
def escalations(
    state: Annotated[str, typer.Option(help="open, acknowledged, resolved or all")] = "open",
    mine: Annotated[bool, typer.Option("--mine", help="only those addressed to me")] = False,
    reference: Annotated[str | None, typer.Option(help="only this referral's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False,
) -> None:
    """Escalations, most recently raised first."""
    params = {"state": state, "mine": str(mine).lower(), "reference": reference, "limit": limit, "cursor": cursor}

    def render(console: Console, page: dict) -> None:
        render_escalations(console, page["items"])
        if page["next_cursor"]:
            console.print(f"More: --cursor {page['next_cursor']}")

    emit(call("GET", "/escalations", params=params), as_json, render)


@app.command()
def ack(escalation_id: Annotated[str, typer.Argument(help="e.g. REF-XXXXX-XXXXX.E1 or REF-XXXXX-XXXXX.A1.E1")],
        as_json: AsJson = False, key: DecisionKey = None) -> None:
    """Acknowledge an escalation addressed to you."""
    result = decide(f"/escalations/{escalation_id}/acknowledgement", None, key)
    emit(result, as_json, render_referral if "stage" in result else render_action)



# --- the records: the access log for auditors, retention for administrators ---------------------


@app.command("access-log")
def access_log(
    reference: Annotated[str | None, typer.Option(help="only reads of this referral")] = None,
    actor: Annotated[str | None, typer.Option(help="only this staff ID's reads")] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time with offset")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: AsJson = False,
) -> None:
    """Who read which referral, through which channel, and when; newest first (auditors)."""
    params = {"reference": reference, "actor_id": actor, "since": since, "limit": limit, "offset": offset}

    def render(console: Console, entries: list[dict]) -> None:
        rows_table(
            console,
            "Access log",
            ["when", "actor", "role", "agency", "channel", "action", "reference"],
            [[when(e["at"]), e["actor_id"], e["actor_role"], e["actor_agency"], e["channel"], e["action"],
              e["reference"]] for e in entries],
        )

    emit(call("GET", "/access-log", params=params), as_json, render)


@app.command()
def retention(
    purge: Annotated[bool, typer.Option("--purge", help="remove them; without it, only list them")] = False,
    as_json: AsJson = False,
) -> None:
    """Closed referrals past the retention period: a dry run, or with --purge their removal (administrators)."""

    def render(console: Console, report: dict) -> None:
        verb = ("would be removed (dry run; --purge removes them)" if report["dry_run"]
                else f"removed ({report['rows']} rows)")
        console.print(f"Closed before {when(report['closed_before'])}: {len(report['references'])} referrals {verb}")
        if report["references"]:
            rows_table(console, "Referrals", ["reference"], [[reference] for reference in report["references"]])

    emit(call("POST", "/retention/purge") if purge else call("GET", "/retention"), as_json, render)


@app.command()
def quarantine(
    reference: Annotated[str | None, typer.Option(help="only this referral's facts")] = None,
    reapply: Annotated[bool, typer.Option("--reapply", help="write them again, once the cause is fixed")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="list re-applied facts too")] = False,
    as_json: AsJson = False,
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
        emit(call("POST", "/quarantine/reapply", params=params), as_json, render_reapplied)
    else:
        emit(call("GET", "/quarantine", params=params | {"resolved": resolved}), as_json, render_listed)


if __name__ == "__main__":
    app()
