"""`referrals submit`, `refer`, `show`, `list` and `template vist|partner`: a VIST's or a partner's referral, reading
referrals, and forms to start from."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from cli.connection import call, fail
from cli.inputs import AsJson, Output, Reference, read_json
from cli.rendering import emit, render_address_warning, render_intake, render_referral, render_referral_page
from starter.forms import partner_skeleton, vist_skeleton
from workflows.models import REFERRING_AGENCIES, Agency, IncidentType, PartnerTool, RiskGrade, Stage

app = typer.Typer()
template_app = typer.Typer(help="Forms to fill in: a valid skeleton to edit and submit.", no_args_is_help=True)


@template_app.command("vist")
def vist_template(
    incident: Annotated[IncidentType, typer.Option(help="the incident's type: what the form must hold follows it")],
) -> None:
    """Print a valid VIST form for the incident type, with a new form ID and synthetic details to replace.

    Times without an offset are London time. Domestic abuse needs each child's voice_of_the_child;
    section 46 police protection needs a high initial_risk.
    """
    typer.echo(json.dumps(vist_skeleton(incident, datetime.now(timezone.utc)), indent=2))


@template_app.command("partner")
def partner_template(
    tool: Annotated[PartnerTool, typer.Option(help="the form you refer with: a CSE screening tool marks its indicators")],
    referrer_id: Annotated[str, typer.Option(help="your own staff ID, as your credentials name you")],
    agency: Annotated[Agency, typer.Option(help="your agency: health, education or childrens_social_care")],
) -> None:
    """Print a valid partner's referral made with the tool, with a new form ID and synthetic details to replace.

    Times without an offset are London time. A CSE screening tool's concern is cse, with at least
    one of its cse_indicators; a safeguarding concern marks none.
    """
    if agency not in REFERRING_AGENCIES:
        fail(f"--agency: a partner referral comes from {', '.join(sorted(a.value for a in REFERRING_AGENCIES))}", 2)
    typer.echo(json.dumps(partner_skeleton(tool, referrer_id, agency, datetime.now(timezone.utc)), indent=2))


@app.command()
def submit(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a VIST form as JSON")],
           as_json: AsJson = False, output: Output = None) -> None:
    """Submit a VIST form; the same form again finds the same referral."""
    emit(call("POST", "/referrals", body=read_json(file)), render_intake)


@app.command()
def refer(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a partner's referral as JSON")],
          as_json: AsJson = False, output: Output = None) -> None:
    """Partner (health, education, children's social care): refer a child straight to screening; the same form again
    finds the same referral. Its referrer_id and referring_agency must be your own."""
    emit(call("POST", "/partner-referrals", body=read_json(file)), render_intake)


@app.command()
def show(reference: Reference, as_json: AsJson = False, output: Output = None) -> None:
    """A referral's stage, risk, deadlines, actions, escalations and decisions."""
    emit(call("GET", f"/referrals/{reference}"), render_referral)


@app.command("list")
def list_referrals(
    stage: Annotated[Stage | None, typer.Option()] = None,
    risk: Annotated[RiskGrade | None, typer.Option()] = None,
    overdue: Annotated[bool | None, typer.Option("--overdue/--not-overdue")] = None,
    updated_since: Annotated[str | None, typer.Option(help="a date or a time, e.g. 2026-11-24 or 2026-11-24T09:00 (London time without an offset)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Referrals, most recently updated first."""
    params = {"stage": stage.value if stage else None, "risk": risk.value if risk else None,
              "overdue": None if overdue is None else str(overdue).lower(), "updated_since": updated_since,
              "limit": limit, "cursor": cursor}
    emit(call("GET", "/referrals", params=params), render_referral_page)


@app.command("address-warning")
def address_warning(
    address: Annotated[str, typer.Argument(help="the address about to be attended (sent in the body, never kept)")],
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Before attending: whether the address has children at risk (counts only); the enquiry is access-logged."""
    emit(call("POST", "/address-warnings", body={"address": address}), render_address_warning)
