"""The decision commands: on a referral (review, screening, strategy, conference, risk, closure) and on its agreed actions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connection import decide, fail
from cli.inputs import ActionId, AsJson, Output, BodyFile, DecisionKey, Reference, body_from, now_iso, read_json, split_fields
from cli.rendering import emit, render_action, render_referral
from workflows.models import Agency, ChildDecision, CloseReason, RiskGrade, ScreeningOutcome

app = typer.Typer()
actions_app = typer.Typer(help="Agreed actions: complete or reassign one.", no_args_is_help=True)
conference_app = typer.Typer(help="The initial child protection conference: book it, record its outcome.",
                             no_args_is_help=True)


def decide_referral(reference: str, route: str, body: dict[str, Any], key: str | None) -> None:
    emit(decide(f"/referrals/{reference}/{route}", body, key), render_referral)

@app.command()
def review(
    reference: Reference,
    approve: Annotated[
        bool | None, typer.Option("--approve/--return", help="approve, or return to the officer")
    ] = None,
    reasons: Annotated[str | None, typer.Option(help="why it is returned")] = None,
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor review: approve the VIST or return it to the officer with reasons."""
    decide_referral(reference, "supervisor-review", body_from(file, approved=approve, reasons=reasons), key)


@app.command()
def resubmit(reference: Reference,
             form: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the corrected VIST as JSON")],
             as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Resubmit a returned VIST (same form ID)."""
    decide_referral(reference, "resubmission", {"submission": read_json(form)}, key)


@app.command()
def screen(
    reference: Reference,
    risk: Annotated[RiskGrade | None, typer.Option()] = None,
    outcome: Annotated[ScreeningOutcome | None, typer.Option()] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    child: Annotated[list[str], typer.Option(help="CHILD_ID=DECISION[:rationale], once per child")] = [],  # noqa: B006
    inform: Annotated[list[Agency], typer.Option(help="an agency informed; repeat")] = [],  # noqa: B006
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
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
    decide_referral(reference, "screening", body, key)


@app.command("override-request")
def override_request(reference: Reference,
                     reason: Annotated[str, typer.Option(help="why the repeat referral needs no further action")],
                     as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Screener: ask a supervisor to let a repeat referral close with no further action."""
    decide_referral(reference, "override-request", {"reason": reason}, key)


@app.command()
def override(
    reference: Reference,
    grant: Annotated[bool, typer.Option("--grant/--refuse", help="grant the override, or refuse it")],
    rationale: Annotated[str, typer.Option(help="the supervisor's rationale")],
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor: grant or refuse the repeat-referral override a screener asked for (never your own request)."""
    decide_referral(reference, "override", {"granted": grant, "rationale": rationale}, key)


@app.command("csc-not-informed")
def csc_not_informed(
    reference: Reference,
    rationale: Annotated[str, typer.Option(help="why children's social care need not be informed")],
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Supervisor: decide that children's social care need not be informed, so a screening may leave them out."""
    decide_referral(reference, "csc-not-informed", {"rationale": rationale}, key)


@app.command()
def strategy(
    reference: Reference,
    held_at: Annotated[str | None, typer.Option(help="e.g. 2026-11-26T10:00, London time without an offset; default now")] = None,
    section_47: Annotated[bool | None, typer.Option("--section-47/--no-section-47")] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    attendee: Annotated[
        list[str], typer.Option(help="NAME|AGENCY|ROLE[|NAMED_ROLE]; repeat (NAMED_ROLE: allocated_social_worker, "
                                     "investigating_officer)")
    ] = [],  # noqa: B006
    absent: Annotated[list[str], typer.Option(help="NAMED_ROLE|REASON: a required role that did not attend; repeat")] = [],  # noqa: B006
    action: Annotated[
        list[str], typer.Option(help="DESCRIPTION|AGENCY|OWNER|DEADLINE[|SUPERVISOR]; repeat")
    ] = [],  # noqa: B006
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Record a strategy discussion: who attended (and which named role each fills), who was absent and why,
    section 47 or not, and the agreed actions."""
    attendees = [split_fields(a, ["name", "agency", "role", "named_role?"], "--attendee") for a in attendee]
    absences = [split_fields(a, ["named_role", "reason"], "--absent") for a in absent]
    actions = []
    for item in action:
        fields = split_fields(item, ["description", "agency", "owner", "deadline", "supervisor?"], "--action")
        owner = {"agency": fields["agency"], "owner": fields["owner"], "supervisor": fields.get("supervisor")}
        actions.append({"description": fields["description"], "owner": owner, "deadline": fields["deadline"]})
    body = body_from(file, section_47=section_47, rationale=rationale, attendees=attendees, agreed_actions=actions,
                     held_at=held_at, absences=absences)
    body.setdefault("held_at", now_iso())
    decide_referral(reference, "strategy-discussion", body, key)


@conference_app.command("book")
def book_conference(
    reference: Reference,
    at: Annotated[str | None, typer.Option("--at", help="when the ICPC is held, e.g. 2026-12-10T10:00 (London time)")] = None,
    attend: Annotated[
        bool | None, typer.Option("--attend/--report-in-lieu", help="police attend, or send a report")
    ] = None,
    rationale: Annotated[str | None, typer.Option(help="the risk-based rationale for a report in lieu")] = None,
    report_owner: Annotated[str | None, typer.Option(help="who writes the report in lieu")] = None,
    late_reason: Annotated[str | None, typer.Option(help="why later than the statutory working days")] = None,
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Book the ICPC and decide police attendance."""
    attendance = None if attend is None else ("attend" if attend else "report_in_lieu")
    body = body_from(file, conference_at=at, police_attendance=attendance, attendance_rationale=rationale,
                     report_owner=report_owner, late_reason=late_reason)
    decide_referral(reference, "conference", body, key)


@conference_app.command("outcome")
def conference_outcome(
    reference: Reference,
    held_at: Annotated[str | None, typer.Option(help="e.g. 2026-11-26T10:00, London time without an offset; default now")] = None,
    plan: Annotated[bool | None, typer.Option("--plan/--no-plan", help="a child protection plan was made")] = None,
    police_attended: Annotated[bool | None, typer.Option("--police-attended/--police-absent")] = None,
    rationale: Annotated[str | None, typer.Option()] = None,
    social_worker: Annotated[
        str | None, typer.Option(help="STAFF_ID|NAME: the plan's allocated social worker (required with --plan)")
    ] = None,
    file: BodyFile = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Record the ICPC's outcome."""
    worker = split_fields(social_worker, ["staff_id", "name"], "--social-worker") if social_worker else None
    body = body_from(file, held_at=held_at, child_protection_plan=plan, police_attended=police_attended,
                     rationale=rationale, allocated_social_worker=worker)
    body.setdefault("held_at", now_iso())
    decide_referral(reference, "conference-outcome", body, key)


@app.command()
def regrade(reference: Reference, risk: Annotated[RiskGrade, typer.Argument()],
            reason: Annotated[str, typer.Option(help="why the grade changes")], as_json: AsJson = False, output: Output = None,
            key: DecisionKey = None) -> None:
    """Change the risk grade; deadlines follow at once."""
    decide_referral(reference, "risk", {"risk": risk.value, "reason": reason}, key)


@app.command()
def close(reference: Reference, reason: Annotated[CloseReason, typer.Argument()],
          note: Annotated[str | None, typer.Option()] = None, as_json: AsJson = False, output: Output = None,
          key: DecisionKey = None) -> None:
    """Close a referral with a reason."""
    decide_referral(reference, "close", body_from(None, reason=reason.value, note=note), key)


@actions_app.command("complete")
def complete_action(action_id: ActionId, note: Annotated[str, typer.Option(help="the completion evidence")],
                    as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Mark an agreed action done, with the evidence."""
    emit(decide(f"/actions/{action_id}/completion", {"note": note}, key), render_action)


@actions_app.command("reassign")
def reassign_action(
    action_id: ActionId,
    agency: Annotated[Agency, typer.Option()],
    owner: Annotated[str, typer.Option(help="the new owner's name")],
    reason: Annotated[str, typer.Option()],
    supervisor: Annotated[str | None, typer.Option(help="the new owner's supervisor")] = None,
    deadline: Annotated[str | None, typer.Option(help="a new deadline: a date (the end of that day) or a London time, e.g. 2026-11-28T17:00")] = None,
    as_json: AsJson = False, output: Output = None,
    key: DecisionKey = None,
) -> None:
    """Give an agreed action to another owner (and optionally a new deadline)."""
    body = body_from(None, owner={"agency": agency.value, "owner": owner, "supervisor": supervisor}, reason=reason,
                     deadline=deadline)
    emit(decide(f"/actions/{action_id}/reassignment", body, key), render_action)
