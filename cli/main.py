"""The `referrals` command: every API action from a terminal, as tables for people or `--json` for scripts.

It talks to the HTTP API (REFERRALS_API_URL, default http://127.0.0.1:8000) with the bearer
token from REFERRALS_TOKEN or the config file (REFERRALS_CONFIG, default
~/.config/referrals/config.toml, with `api_url` and `token` keys). A failed request exits
non-zero with the API's own message; the exit code says which kind of failure it was.
Decision commands take their fields as options, or a whole JSON body with `--file`
(options override the file's fields).

This module only assembles the app: each resource's commands live in their own module
(cli/referrals.py, cli/decisions.py, cli/missing.py, cli/plans.py, cli/escalations.py, cli/operations.py,
cli/triage.py, cli/audit.py)
and join `app` with `app.add_typer(...)`, merged at the top or as a named sub-app.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from cli import decisions, escalations, missing, operations, panels, plans, referrals, triage
from cli.audit import audit_app
from cli.connection import OutputFormat, output
from cli.help import PlainHelpGroup, environment_help

DISTRIBUTION = "child-protection-referrals"

app = typer.Typer(
    cls=PlainHelpGroup,
    help="Child-protection referrals: submit VISTs, report missing children, decide, follow actions and escalations. "
    "Times print in London time, labelled GMT or BST; a time you write without an offset is London time.",
    epilog=environment_help(),
    no_args_is_help=True,
)


def print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"referrals {version(DISTRIBUTION)}")
        raise typer.Exit()


@app.callback()
def each_run(
    show_version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", callback=print_version, is_eager=True)
    ] = False,
) -> None:
    output.format = OutputFormat.TABLE  # one process may run several commands (tests do): each starts with tables


app.add_typer(decisions.actions_app, name="actions")
app.add_typer(decisions.conference_app, name="conference")
app.add_typer(missing.app, name="missing")
app.add_typer(plans.app, name="plans")
app.add_typer(audit_app, name="audit")
app.add_typer(triage.app, name="triage")
app.add_typer(panels.app, name="panels")
app.add_typer(referrals.template_app, name="template")
app.add_typer(referrals.app)
app.add_typer(decisions.app)
app.add_typer(escalations.app)
app.add_typer(operations.app)


if __name__ == "__main__":
    app()
