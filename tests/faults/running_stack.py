"""`python -m starter.stack --demo skip` in a temporary data dir on free ports, for tests that break its parts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from starter.demo_users import DEMO_USERS
from starter.processes import live_process
from tests.local_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 240.0
CONDITION_TIMEOUT = 120.0
STOP_TIMEOUT = 120.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = CONDITION_TIMEOUT) -> Any:
    """Poll `condition()` until it returns something truthy; fail naming `what` after a generous timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


async def until(condition: Callable[[], Any], what: str, timeout: float = CONDITION_TIMEOUT) -> Any:
    """`wait_for` for a test whose own tasks must go on meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def alive(pid: int) -> bool:
    """Running, not merely not yet reaped."""
    return live_process(pid) is not None


class RunningStack:
    """The real embedded stack as `make run` starts it, with the means to kill its parts and watch them return."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # Not under pytest's tmp root: that is owner-only (0700), and embedded PostgreSQL runs as
        # its own system user, which must reach the data directory through every parent.
        self.root = Path(tempfile.mkdtemp(prefix="referrals-faults-"))
        self.data_dir = self.root / "data"
        self.temporal_port, self.ui_port, self.api_port = free_port(), free_port(), free_port()
        self.codec_port = free_port()
        base = {k: v for k, v in os.environ.items() if k not in {"TEMPORAL_ADDRESS", "DATABASE_URL", "COLUMNS"}}
        self.env = base | {
            "DATA_DIR": str(self.data_dir),
            "TEMPORAL_DEV_PORT": str(self.temporal_port),
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "API_PORT": str(self.api_port),
            "WORKER_METRICS_PORT": str(free_port()),
            "CODEC_SERVER_PORT": str(self.codec_port),
            "LOG_FORMAT": "json",
        } | (env or {})
        self.stdout = self.root / "stack.out"
        self.stderr = self.root / "stack.err"
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def start(self) -> None:
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "starter.stack", "--demo", "skip"], cwd=ROOT, env=self.env, stdout=out, stderr=err
            )
        wait_for(self._serving, "the stack serving", START_TIMEOUT)

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the stack exited with {self.process.returncode}:\n{self.output()}")
        return "Serving" in self.stdout.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")[-6000:]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The stack's own structured log lines with this event name."""
        lines = []
        for line in self.stderr.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == name:
                lines.append(record)
        return lines

    def pid(self, part: str) -> int:
        """The pid of the stack's part now, from its state file (postgres from its postmaster.pid)."""
        if part == "postgres":
            return int((self.data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0])
        return json.loads((self.data_dir / "stack.json").read_text())[part]

    def kill(self, part: str) -> int:
        pid = self.pid(part)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, part: str, old_pid: int) -> int:
        """Wait until the stack has started `part` again and the API answers ready; return the new pid."""

        def restarted() -> int | None:
            try:
                pid = self.pid(part)
            except (OSError, ValueError, KeyError, IndexError):
                return None
            return pid if pid != old_pid and alive(pid) else None

        pid = wait_for(restarted, f"{part} restarted by the stack")
        wait_for(self.ready, "the API ready again")
        return pid

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_started_count(self) -> int:
        return (self.data_dir / "worker.log").read_text(errors="replace").count('"worker_started"')

    def token(self, user: str) -> str:
        """The bearer token the stack made for one of the demo users."""
        tokens = json.loads((self.data_dir / "tokens.json").read_text())
        return next(token for token, holder in tokens.items() if holder["id"] == DEMO_USERS[user].id)

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; the stack's exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the stack did not stop on SIGTERM:\n{self.output()}") from None

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running(env: dict[str, str] | None = None) -> Iterator[RunningStack]:
    """A stack serving for the block, stopped by SIGTERM at its end (which must stop it cleanly), removed whatever happens."""
    stack = RunningStack(env)
    try:
        stack.start()
        yield stack
        assert stack.stop() == 0, stack.output()
    finally:
        stack.remove()
