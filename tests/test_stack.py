"""`make run DEMO=once`, twice on one data dir: the second run finds the first run's referrals.

Runs the real embedded stack (Temporal dev server, PostgreSQL, the worker) as a subprocess,
in a temporary data dir and on free ports, so it never meets a `make run` on the defaults.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from starter.synthetic import FAMILY_NAMES, FIRST_NAMES, STREETS
from tests.local_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"REF-[0-9A-Z]{5}-[0-9A-Z]{5}")
RUN_TIMEOUT = 150


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_stack_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "starter.stack", "--demo", "once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def this_runs_references(stdout: str) -> set[str]:
    return {ref for line in stdout.splitlines() if "this run" in line for ref in REFERENCE.findall(line)}


@pytest.fixture
def stack_data_dir() -> Iterator[Path]:
    # Not under pytest's tmp root: that is owner-only (0700), and embedded PostgreSQL runs as
    # its own system user, which must reach the data directory through every parent.
    root = Path(tempfile.mkdtemp(prefix="referrals-stack-"))
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def test_make_run_twice_keeps_the_first_runs_referrals(stack_data_dir: Path) -> None:
    data_dir = stack_data_dir
    port, ui_port, api_port, codec_port = free_port(), free_port(), free_port(), free_port()
    while len({port, ui_port, api_port, codec_port}) < 4:
        ui_port, api_port, codec_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL", "COLUMNS"}}
    env |= {
        "DATA_DIR": str(data_dir),
        "TEMPORAL_DEV_PORT": str(port),
        "TEMPORAL_UI_PORT": str(ui_port),
        "API_PORT": str(api_port),
        "WORKER_METRICS_PORT": str(free_port()),
        "CODEC_SERVER_PORT": str(codec_port),
        "LOG_FORMAT": "json",
    }

    first = run_stack_once(env)
    first_refs = this_runs_references(first.stdout)
    assert len(first_refs) == 4, first.stdout  # three referrals and the escalating one
    assert "closed" in first.stdout and "inspector" in first.stdout  # walked to closure; escalated twice

    # The API served too; everything the run started has stopped.
    assert f"API: http://127.0.0.1:{api_port}" in first.stdout
    assert f"Codec server: http://localhost:{codec_port}" in first.stdout
    assert not any(listening(p) for p in (port, ui_port, api_port, codec_port))
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "stack.json").exists()
    # The dev server's file keeps a write-ahead log (each commit synced), and its data is all in the file once stopped.
    with sqlite3.connect(f"file:{data_dir / 'temporal.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    second = run_stack_once(env)
    second_refs = this_runs_references(second.stdout)
    assert len(second_refs) == 4 and not second_refs & first_refs
    listed = set(REFERENCE.findall(second.stdout))
    assert first_refs <= listed, f"the second run does not list {sorted(first_refs - listed)}"
    assert "8 referrals in PostgreSQL" in second.stdout
    assert not listening(port) and not (data_dir / "postgres" / "postmaster.pid").exists()

    # No personal data on screen or in the stack's log lines, synthetic or not.
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        for word in [*FAMILY_NAMES, *FIRST_NAMES, *STREETS, "Synthetic"]:
            assert word not in output, f"{word!r} appears in the stack's output"
