"""How `--help` reads: an example for each command, parameters labelled as people read them (REFERENCE, TEXT,
[standard|medium|high]), and the environment.

Typer labels each parameter with its Python type (`<list[str]>`, `<bool>`, `{reference}`);
`PlainHelpGroup`, the root command's class, relabels every command's parameters and adds its
example (cli/examples.py) once per run.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

from cli.examples import EXAMPLES

# Python's type names as a command line names the value.
VALUE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "datetime": "DATETIME", "file": "FILE",
               "path": "PATH", "directory": "DIRECTORY", "uuid": "UUID"}
# What every command reads from the environment, shown at the foot of the top-level help.
ENVIRONMENT = {
    "REFERRALS_API_URL": "the API's address (default http://127.0.0.1:8000)",
    "REFERRALS_TOKEN": "your bearer token (the embedded stack's: python -m starter.demo_users NAME)",
    "REFERRALS_CONFIG": "a TOML file with api_url and token (default ~/.config/referrals/config.toml)",
    "DATA_DIR": "where the embedded stack keeps its data and tokens (default .data); the token helper reads it",
    "DATABASE_URL, TEMPORAL_ADDRESS": "what `referrals audit` reads directly (see docs/audit.md)",
}


def environment_help() -> str:
    return "Environment:\n\n" + "\n\n".join(f"{name}: {what}" for name, what in ENVIRONMENT.items())


def value_word(typed: str | None) -> str | None:
    """`<list[str]>` -> TEXT, `<standard|medium>` -> [standard|medium], `<bool>` -> nothing."""
    if not typed:
        return None
    inner = typed.strip("<>")
    listed = re.fullmatch(r"list\[(.*)\]", inner)
    inner = listed[1] if listed else inner
    if inner == "bool":
        return None
    if "|" in inner:
        return f"[{inner}]"
    return VALUE_WORDS.get(inner, inner.upper())


class PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar or None
        return None if self.is_flag else value_word(self.display_type(ctx))


class PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's name says what it is

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def relabel(command: Any, path: tuple[str, ...] = ()) -> None:
    """Every parameter of `command` and its subcommands read as above (arguments by their names in capitals), and
    each command ends its help with its example."""
    example = EXAMPLES.get(" ".join(path))
    if example is not None:
        command.epilog = f"Example: {example}"
    # --help itself is made on first use: made here, so it is relabelled too.
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperArgument):
            param.__class__ = PlainArgument
            param.metavar = param.metavar or param.name.upper()
        elif isinstance(param, TyperOption):
            param.__class__ = PlainOption
    for name, subcommand in getattr(command, "commands", {}).items():
        relabel(subcommand, (*path, name))


class PlainHelpGroup(TyperGroup):
    """The root command: relabels the whole tree before it parses or prints help."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        relabel(self)
        return super().main(*args, **kwargs)
