"""The `referrals` command's conventions, without an API: an example in every help, plain labels, the version, the
environment, and the token helper's data directory."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from auth.tokens import write_token_file
from cli.examples import EXAMPLES
from cli.help import ENVIRONMENT
from cli.main import app
from runtime.settings import Settings
from starter.demo_users import DEMO_USERS, main as token_helper, token_command

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
# What typer shows of a Python type: `<str>`, `<list[str]>`, `<bool>`, and `{name}` for a required argument.
RAW_TYPE_HINT = re.compile(r"<(?:str|int|bool|float|path|file|list\[[^\]]*\])>|\{[a-z_]+\}")


def commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    command = command or typer.main.get_command(app)
    for name, sub in getattr(command, "commands", {}).items():
        if hasattr(sub, "commands"):
            yield from commands(sub, (*path, name))
        else:
            yield (*path, name), sub


ALL = [" ".join(path) for path, _ in commands()]


@pytest.mark.parametrize("name", ALL)
def test_every_commands_help_has_an_example_and_no_raw_type_hints(name):
    shown = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert f"Example: referrals {name}" in text
    assert RAW_TYPE_HINT.search(shown.stdout) is None, RAW_TYPE_HINT.search(shown.stdout)


def test_every_example_is_a_command_line_the_command_takes(tmp_path, monkeypatch):
    # The files the examples name, so that options checking a file exists pass.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "export").mkdir()
    for name in ("examples/vist-domestic-abuse.json", "examples/partner-cse-screening-tool.json", "vist.json", "report.json",
                 "plan.json", "panel.json"):
        (tmp_path / name).write_text("{}")
    assert set(EXAMPLES) == set(ALL)
    for path, command in commands():
        words = shlex.split(EXAMPLES[" ".join(path)].split(" > ")[0])
        assert words[: len(path) + 1] == ["referrals", *path]
        command.make_context(" ".join(path), words[len(path) + 1:])  # raises on an option or value it does not take


def test_the_version_and_the_environment_are_in_the_top_level_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and re.fullmatch(r"referrals \d+\.\d+\.\d+\n", version.stdout)
    shown = " ".join(runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout.split())
    for variable in ENVIRONMENT:
        assert variable in shown
    assert "REFERRALS_API_URL" in ENVIRONMENT and "DATA_DIR" in ENVIRONMENT


def test_the_token_helper_reads_the_data_directory(tmp_path, monkeypatch, capsys):
    data = tmp_path / "elsewhere"
    data.mkdir()
    write_token_file(data / "tokens.json", {"synthetic-token-sergeant": DEMO_USERS["sergeant"]})
    monkeypatch.setenv("DATA_DIR", str(data))
    assert token_helper(["sergeant"]) == 0
    assert capsys.readouterr().out.strip() == "synthetic-token-sergeant"
    assert token_command(Settings(), "sergeant").startswith(f"DATA_DIR={data} ")
    monkeypatch.delenv("DATA_DIR")
    monkeypatch.chdir(tmp_path)  # no .data here: the default directory has no token file
    assert token_helper(["sergeant"]) == 1
    assert token_command(Settings(), "sergeant") == ".venv/bin/python -m starter.demo_users sergeant"


def test_json_output_of_a_local_refusal_is_problem_details():
    refused = runner.invoke(app, ["show", "not-a-reference", "-o", "jsonl"], env={"REFERRALS_TOKEN": "synthetic"})
    problem = json.loads(refused.stderr)
    assert refused.exit_code == 5 and problem["exit_code"] == 5 and "reference" in problem["detail"]
    assert len(refused.stderr.strip().splitlines()) == 1  # jsonl: one line
