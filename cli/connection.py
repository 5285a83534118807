"""Talking to the HTTP API: where it is and the token (environment or config file), one request, and failing with the API's message."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG = Path("~/.config/referrals/config.toml")
TIMEOUT = 60.0

# Exit codes: 1 the API could not be reached or failed, 2 a usage error (typer's own).
EXIT_CODES = {401: 3, 403: 4, 404: 5, 409: 6, 422: 7, 503: 8, 504: 9}
KEY_HEADER = "Idempotency-Key"


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"


@dataclass
class Output:
    """How this invocation prints, results and errors alike (set by the options' callbacks, reset per run)."""

    format: OutputFormat = OutputFormat.TABLE

    @property
    def json(self) -> bool:
        return self.format is not OutputFormat.TABLE


output = Output()


def remember_json(value: bool) -> bool:
    """The `--json` option's callback: parsed before the command runs, so a failure knows how to print."""
    if value:
        output.format = OutputFormat.JSON
    return value


def remember_format(value: OutputFormat | None) -> OutputFormat | None:
    """The `-o` option's callback, likewise."""
    if value is not None:
        output.format = value
    return value


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


def fail(message: str, code: int, problem: dict[str, Any] | None = None) -> NoReturn:
    """Exit `code` after saying why on stderr: in words, or under `--json` as RFC 9457 problem details
    (the API's own, or one the CLI makes for a failure of its own)."""
    if output.json:
        problem = problem or {"type": "about:blank", "title": "The command failed", "detail": message}
        indent = 2 if output.format is OutputFormat.JSON else None  # jsonl: one line
        typer.echo(json.dumps(problem | {"exit_code": code}, indent=indent), err=True)
    else:
        Console(stderr=True).print(f"[bold red]Error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def problem_of(response: httpx.Response) -> dict[str, Any] | None:
    """The API's problem details, if the answer holds them."""
    try:
        problem = response.json()
    except ValueError:
        return None
    return problem if isinstance(problem, dict) else None


def explain(response: httpx.Response, problem: dict[str, Any] | None) -> str:
    """The API's error message: its reason, or each bad field and why."""
    if problem is None or "detail" not in problem:
        return f"HTTP {response.status_code}"
    if isinstance(problem.get("errors"), list):
        lines = [".".join(str(part) for part in item.get("loc", [])) + f": {item.get('msg')}" for item in problem["errors"]]
        return f"HTTP {response.status_code}, invalid request:\n  " + "\n  ".join(lines)
    return f"HTTP {response.status_code}: {problem['detail']}"


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
    except httpx.TimeoutException:
        fail(f"no answer from the API at {conn.url} within {TIMEOUT:.0f} seconds" + (retry if key else ""), 1)
    except httpx.HTTPError:
        fail(f"cannot reach the API at {conn.url}: is it running? (set REFERRALS_API_URL or `api_url` in the config "
             "file to use another)" + (retry if key else ""), 1)
    if response.status_code >= 400:
        unknown = key is not None and response.status_code in (503, 504)
        problem = problem_of(response)
        fail(explain(response, problem) + (retry if unknown else ""), EXIT_CODES.get(response.status_code, 1), problem)
    return response.json()


def decide(path: str, body: Any, key: str | None) -> Any:
    """POST one decision under its idempotency key: the one given, or a fresh one for this command."""
    return call("POST", path, body=body, key=key or uuid.uuid4().hex)
