"""`referrals escalations` and `ack`: the escalations list, and acknowledging one addressed to you."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.connection import call, decide
from cli.inputs import AsJson, Output, DecisionKey, EscalationId
from cli.rendering import emit, render_action, render_escalation_page, render_referral

app = typer.Typer()


@app.command()
def escalations(
    state: Annotated[str, typer.Option(help="open, acknowledged, resolved or all")] = "open",
    mine: Annotated[bool, typer.Option("--mine", help="only those addressed to me")] = False,
    reference: Annotated[str | None, typer.Option(help="only this case's: a referral or a missing episode")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: AsJson = False, output: Output = None,
) -> None:
    """Escalations, most recently raised first."""
    params = {"state": state, "mine": str(mine).lower(), "reference": reference, "limit": limit, "cursor": cursor}
    emit(call("GET", "/escalations", params=params), render_escalation_page)


@app.command()
def ack(escalation_id: EscalationId, as_json: AsJson = False, output: Output = None, key: DecisionKey = None) -> None:
    """Acknowledge an escalation addressed to you."""
    result = decide(f"/escalations/{escalation_id}/acknowledgement", None, key)
    emit(result, render_referral if "stage" in result else render_action)

