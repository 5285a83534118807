"""What the commands take: the shared options, workflow IDs checked as the API checks them, and JSON bodies from files and options."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connection import EXIT_CODES, OutputFormat, fail, remember_format, remember_json
from starter.acknowledgement import ESCALATION_ID, EXAMPLE_IDS, NO_SUCH_ESCALATION
from starter.actions import AgreedActions
from starter.missing import MissingEpisodes
from starter.plans import TriggerPlans
from starter.referrals import Referrals


def refused_unless(pattern: re.Pattern[str], reason: str) -> Callable[[str], str]:
    """An ID argument's check: one its workflow type never makes is refused here as the API refuses it (404),
    and never becomes part of a request's path."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            fail(reason, EXIT_CODES[404])
        return value

    return check


Reference = Annotated[
    str,
    typer.Argument(
        help=f"the referral's reference, {Referrals.example_id}",
        callback=refused_unless(Referrals.id_pattern, Referrals.missing().reason),
    ),
]
ActionId = Annotated[
    str,
    typer.Argument(
        help=f"the action's ID, {AgreedActions.example_id}",
        callback=refused_unless(AgreedActions.id_pattern, AgreedActions.missing().reason),
    ),
]
PlanId = Annotated[
    str,
    typer.Argument(
        help=f"the trigger plan's ID, {TriggerPlans.example_id}",
        callback=refused_unless(TriggerPlans.id_pattern, TriggerPlans.missing().reason),
    ),
]
EpisodeId = Annotated[
    str,
    typer.Argument(
        help=f"the missing episode's ID, {MissingEpisodes.example_id}",
        callback=refused_unless(MissingEpisodes.id_pattern, MissingEpisodes.missing().reason),
    ),
]
EscalationId = Annotated[
    str,
    typer.Argument(help=f"e.g. {' or '.join(EXAMPLE_IDS)}", callback=refused_unless(ESCALATION_ID, NO_SUCH_ESCALATION)),
]
AsJson = Annotated[
    bool,
    typer.Option("--json", help="the same as -o json", callback=remember_json),
]
# Read by its callback, like --json: the commands print through `emit`, which follows the choice.
Output = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output", "-o", callback=remember_format,
        help="table (the default, for people), json (the API's JSON) or jsonl (one JSON object a line: a list's "
             "items); errors under json and jsonl are JSON problem details on stderr",
    ),
]
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
