"""The benchmarks: the referral engine beside the naive floor, on the embedded stack, in one run.

Starts its own embedded stack (the Temporal dev server persisting to its file, embedded
PostgreSQL, the worker and the API) in a scratch directory on free ports, plus a worker
for the floor (bench/floor.py), and measures:

- lifecycle throughput and decision latency, 10 at a time and one at a time, for the
  referral (5 decisions on the referral, 1 on each of its 3 agreed actions) and for the
  floor of the same shape;
- intake: VIST forms posted to the API all at once (latency, duplicates, errors);
- escalation lateness: referrals whose first deadline falls in the same minute, lateness
  being the escalation's recording in PostgreSQL minus its deadline (the deadline runs
  from the submission), and the in-app alert's delivery minus the deadline;
- audit replay: the parallel sandboxed replay against the sequential `Replayer`;
- the same lifecycle against a dev server holding its data in memory (`--in-memory-too`).

Prints a table of every figure beside its baseline with the ratio, and writes JSON.

    python -m bench.run                  the full run (minutes)
    python -m bench.run --quick          a few of each, to prove the benchmark works
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError

from activities.policy import build_sla_policy
from bench.floor import FLOOR_QUEUE, TABLE, FloorChildWorkflow, FloorDecision, FloorParentWorkflow
from bench.profile import Profiler, ProfileSummary
from bench.table import render
from runtime.settings import Settings
from starter.demo_users import ensure_demo_tokens
from starter.processes import ChildProcess
from starter.stack import ROOT, Stack
from starter.synthetic import (
    ALLOCATED_SOCIAL_WORKER,
    OFFICER,
    SCREENER,
    approval,
    screening,
    strategy_discussion,
    synthetic_vist,
)
from workflows.action import AgreedActionWorkflow
from workflows.models import (
    ActionCompletion,
    ConferenceBooking,
    ConferenceOutcome,
    Duration,
    PoliceAttendance,
    RiskGrade,
    ScreeningOutcome,
    SlaPolicy,
    StageDeadlines,
    StartReferral,
    referral_reference,
)
from workflows.referral import ReferralWorkflow

ACTIONS = 3
# The lifecycles of each kind are run in this many alternating rounds (the floor's, then the referral's).
ROUNDS = 4


@dataclass
class Sizes:
    lifecycles: int = 40
    concurrency: int = 10
    one_at_a_time: int = 10
    forms: int = 200
    deadlines: int = 1000
    # Long enough that every referral is started before the first deadline falls; the deadlines then fall
    # evenly over `deadline_spread` seconds: "1,000 deadlines in the same minute".
    deadline_seconds: int = 120
    deadline_spread: int = 60
    replay_histories: int = 480
    # The scale run (`--only scale`, make bench-scale): open referrals held at once, measured at each checkpoint.
    open_referrals: int = 10000
    scale_checkpoint: int = 1000
    scale_samples: int = 20

    @classmethod
    def quick(cls) -> Sizes:
        return cls(lifecycles=4, concurrency=2, one_at_a_time=2, forms=10, deadlines=10, deadline_seconds=15, deadline_spread=5,
                   replay_histories=24, open_referrals=20, scale_checkpoint=10, scale_samples=3)


@dataclass
class Figure:
    name: str
    unit: str
    engine: float
    baseline: float | None = None
    baseline_name: str = ""
    # Whether more is better (throughput) or less is (latency): the ratio reads "engine is N x the baseline".
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.engine == 0:
            return None
        return self.engine / self.baseline


@dataclass
class Report:
    machine: dict[str, Any]
    sizes: dict[str, int]
    figures: list[Figure] = field(default_factory=list)
    profile: ProfileSummary | None = None

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- the two lifecycles -----------------------------------------------------------------


class Timed:
    """Each decision's latency as the client saw it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []

    async def __call__(self, send: Awaitable[Any]) -> Any:
        began = time.perf_counter()
        result = await send
        self.latencies.append(time.perf_counter() - began)
        return result


async def referral_lifecycle(client: Client, queue: str, policy: SlaPolicy, timed: Timed, seed: int) -> None:
    """A referral from submission to closure: review, screening, a section 47 discussion agreeing 3 actions,
    a conference booked and held with a plan, and each action completed by its owner."""
    submission = synthetic_vist(rng=random.Random(f"bench:{seed}:{uuid.uuid4()}"))
    handle = await client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=policy),
        id=referral_reference(submission.form_id), task_queue=queue,
    )
    await timed(handle.execute_update(ReferralWorkflow.review, approval()))
    await timed(handle.execute_update(ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)))
    now = datetime.now(UTC)
    await timed(handle.execute_update(
        ReferralWorkflow.record_strategy_discussion, strategy_discussion(now, section_47=True, actions=ACTIONS)
    ))
    # Booked a minute ahead and recorded as held then: within the clock skew an outcome may run ahead.
    conference_at = now + timedelta(minutes=1)
    await timed(handle.execute_update(
        ReferralWorkflow.book_conference,
        ConferenceBooking(actor=SCREENER, conference_at=conference_at, police_attendance=PoliceAttendance.ATTEND),
    ))
    state = await timed(handle.execute_update(
        ReferralWorkflow.record_conference_outcome,
        ConferenceOutcome(actor=SCREENER, held_at=conference_at, child_protection_plan=True, police_attended=True,
                          allocated_social_worker=ALLOCATED_SOCIAL_WORKER, rationale="Synthetic conference rationale."),
    ))
    for action in state.actions:
        await timed(client.get_workflow_handle(action.action_id).execute_update(
            AgreedActionWorkflow.complete, ActionCompletion(actor=SCREENER, note="Synthetic completion note.")
        ))
    await handle.result()


async def floor_lifecycle(client: Client, timed: Timed, seed: int) -> None:
    handle = await client.start_workflow(FloorParentWorkflow.run, id=f"floor-{seed}-{uuid.uuid4().hex[:8]}",
                                         task_queue=FLOOR_QUEUE)
    for n in range(1, 6):
        await timed(handle.execute_update(FloorParentWorkflow.decide, FloorDecision(n=n)))
    for child in range(1, ACTIONS + 1):
        await timed(client.get_workflow_handle(f"{handle.id}.A{child}").execute_update(
            FloorChildWorkflow.decide, FloorDecision(n=child)
        ))
    await handle.result()


async def run_many(lifecycle: Callable[[int], Awaitable[None]], n: int, concurrency: int) -> float:
    """Run `n` lifecycles, `concurrency` at a time; their throughput per second."""
    gate = asyncio.Semaphore(concurrency)

    async def one(seed: int) -> None:
        async with gate:
            await lifecycle(seed)

    began = time.perf_counter()
    await asyncio.gather(*(one(seed) for seed in range(n)))
    return n / (time.perf_counter() - began)


def cpu_seconds(pid: int | None) -> float:
    """The CPU time a process has used so far (user and system): what its work costs, whatever else the machine runs."""
    import psutil

    if pid is None:
        return float("nan")
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def lifecycles(bench: BenchStack, policy: SlaPolicy, sizes: Sizes, label: str = "") -> list[Figure]:
    """The referral's and the floor's lifecycles, in alternating rounds so that a change in the machine's load
    falls on both alike; throughput, decision latency, and each worker's CPU time per lifecycle."""
    client, queue = bench.client, bench.settings.task_queue
    worker_pid = bench.stack.worker.pid
    floor_pid = bench.floor.pid
    figures: list[Figure] = []
    for concurrency, n in ((sizes.concurrency, sizes.lifecycles), (1, sizes.one_at_a_time)):
        engine, floor = Timed(), Timed()
        seconds = {"engine": 0.0, "floor": 0.0}
        cpu = {"engine": 0.0, "floor": 0.0}
        rounds = max(1, min(ROUNDS, n // max(concurrency, 1)))
        for round_number in range(rounds):
            share = n // rounds + (1 if round_number < n % rounds else 0)
            for side, pid, lifecycle in (
                ("floor", floor_pid, lambda seed: floor_lifecycle(client, floor, seed)),
                ("engine", worker_pid, lambda seed: referral_lifecycle(client, queue, policy, engine, seed)),
            ):
                used = cpu_seconds(pid)
                seconds[side] += share / await run_many(lifecycle, share, concurrency)
                cpu[side] += cpu_seconds(pid) - used
        at = f"{concurrency} at a time" if concurrency > 1 else "one at a time"
        figures += [
            Figure(f"{label}lifecycles/s, {n} lifecycles {at}", "/s", n / seconds["engine"], n / seconds["floor"],
                   "floor", True),
            Figure(f"{label}decision p50, {at}", "ms", 1000 * percentile(engine.latencies, 50),
                   1000 * percentile(floor.latencies, 50), "floor"),
            Figure(f"{label}decision p95, {at}", "ms", 1000 * percentile(engine.latencies, 95),
                   1000 * percentile(floor.latencies, 95), "floor"),
            Figure(f"{label}worker CPU per lifecycle, {at}", "ms", 1000 * cpu["engine"] / n, 1000 * cpu["floor"] / n,
                   "floor"),
        ]
    return figures


async def footprint(bench: BenchStack, sizes: Sizes, policy: SlaPolicy) -> list[Figure]:
    """What each closed referral leaves behind (the dev server's file, PostgreSQL) and the worker's memory."""
    import psutil

    def temporal_bytes() -> int:
        return sum(p.stat().st_size for p in bench.stack.data_dir.glob("temporal.db*"))

    async def database_bytes() -> int:
        assert bench.pool is not None
        return await bench.pool.fetchval("SELECT pg_database_size(current_database())")

    n = sizes.lifecycles
    file_before, database_before = temporal_bytes(), await database_bytes()
    await run_many(lambda seed: referral_lifecycle(bench.client, bench.settings.task_queue, policy, Timed(), seed),
                   n, sizes.concurrency)
    file_per, database_per = (temporal_bytes() - file_before) / n, (await database_bytes() - database_before) / n
    assert bench.stack.worker.pid is not None
    worker_mb = psutil.Process(bench.stack.worker.pid).memory_info().rss / 2**20
    return [
        Figure(f"dev server's file per closed referral ({n} referrals)", "KB", file_per / 1024),
        Figure(f"PostgreSQL per closed referral ({n} referrals)", "KB", database_per / 1024),
        Figure("worker memory after the lifecycles (RSS)", "MB", worker_mb),
    ]


# --- intake, escalation lateness, replay -----------------------------------------------


async def intake(api_url: str, token: str, pool: asyncpg.Pool, n: int) -> list[Figure]:
    """`n` VIST forms posted at once; every one must be accepted and recorded exactly once."""

    forms = [synthetic_vist(rng=random.Random(f"bench-intake:{i}:{uuid.uuid4()}")) for i in range(n)]
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=api_url, timeout=120,
                                 limits=httpx.Limits(max_connections=n)) as api:
        async def post(form) -> None:
            nonlocal errors
            began = time.perf_counter()
            response = await api.post("/referrals", json=form.model_dump(mode="json"),
                                      headers={"Authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - began)
            errors += response.status_code not in (200, 201, 202)
            if response.status_code not in (200, 201, 202):
                print(f"intake answered {response.status_code}: {response.text[:200]}", file=sys.stderr)

        await asyncio.gather(*(post(form) for form in forms))
    references = [referral_reference(form.form_id) for form in forms]
    # Accepted means started; each is recorded by its workflow's first activity, after the answer: how long
    # the last one took is the worker's backlog, and a form still unrecorded after 5 minutes counts as lost.
    recorded = 0
    answered = time.perf_counter()
    while time.perf_counter() - answered < 300:
        recorded = await pool.fetchval("SELECT count(*) FROM referrals WHERE reference = ANY($1)", references)
        if recorded == n:
            break
        await asyncio.sleep(0.5)
    all_recorded_in = time.perf_counter() - answered
    duplicates = await pool.fetchval(
        "SELECT count(*) - count(DISTINCT form_id) FROM referrals WHERE reference = ANY($1)", references
    )
    return [
        Figure(f"intake p50, {n} forms at once", "ms", 1000 * percentile(latencies, 50)),
        Figure(f"intake p95, {n} forms at once", "ms", 1000 * percentile(latencies, 95)),
        Figure(f"intake errors, {n} forms at once", "", errors),
        Figure(f"intake: the last form recorded, after the last answer, {n} forms at once", "s", all_recorded_in),
        Figure(f"intake not recorded, {n} forms at once", "", n - recorded),
        Figure(f"intake duplicates, {n} forms at once", "", duplicates),
    ]


def tight_policy(policy: SlaPolicy, hours: float) -> SlaPolicy:
    """The policy with every supervisor review due `hours` after submission, whatever the risk."""
    same = Duration(hours=hours)
    return policy.model_copy(update={"supervisor_review": StageDeadlines(standard=same, medium=same, high=same)})


async def escalation_lateness(
    client: Client, queue: str, pool: asyncpg.Pool, policy: SlaPolicy, n: int, seconds: int, spread: int
) -> list[Figure]:
    """`n` referrals submitted together, their reviews falling due evenly over `spread` seconds from `seconds`
    after the first submission: each deadline runs from its own referral's submission, as in production."""

    gate = asyncio.Semaphore(50)
    references: list[str] = []
    zero = time.time()
    # A referral started so late that its slot has passed is given this long instead (counted in the figures).
    shortest = 10.0
    squeezed = 0

    async def start(i: int) -> None:
        nonlocal squeezed
        submission = synthetic_vist(rng=random.Random(f"bench-deadline:{i}:{uuid.uuid4()}"),
                                    risk=RiskGrade.STANDARD)
        async with gate:
            due_in = zero + seconds + i * spread / n - time.time()
            if due_in < shortest:
                due_in, squeezed = shortest, squeezed + 1
            opening = StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=tight_policy(policy, due_in / 3600))
            handle = await client.start_workflow(
                ReferralWorkflow.run, opening, id=referral_reference(submission.form_id), task_queue=queue,
            )
        references.append(handle.id)

    began = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(n)))
    started_in = time.perf_counter() - began
    # Wait for every first rung, recorded, and its in-app alert delivered.
    deadline = time.monotonic() + seconds + spread + 300
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = await pool.fetch(
            """SELECT extract(epoch FROM ev.recorded_at - e.due_at) AS recorded_late,
                      extract(epoch FROM d.delivered_at - e.due_at) AS alerted_late
                 FROM escalations e
                 JOIN referral_events ev ON ev.kind = 'escalation_raised'
                                        AND ev.payload -> 'escalation' ->> 'escalation_id' = e.escalation_id
                 LEFT JOIN alert_deliveries d ON d.escalation_id = e.escalation_id AND d.channel = 'in_app'
                WHERE e.reference = ANY($1) AND e.rung = 0""",
            references,
        )
        if len(rows) == n and all(r["alerted_late"] is not None for r in rows):
            break
        await asyncio.sleep(2)
    for reference in references:  # the rest of the ladder is not measured
        await client.get_workflow_handle(reference).terminate("benchmark over")
    recorded = [float(r["recorded_late"]) for r in rows]
    alerted = [float(r["alerted_late"]) for r in rows if r["alerted_late"] is not None]
    return [
        Figure(f"escalations recorded of {n} due over {spread} s (started in {started_in:.0f} s"
               + (f", {squeezed} too late for their slot" if squeezed else "") + ")", "", len(recorded)),
        Figure("escalation lateness p50 (recorded minus deadline)", "s", percentile(recorded, 50)),
        Figure("escalation lateness p99", "s", percentile(recorded, 99)),
        Figure("escalation lateness max", "s", max(recorded, default=float("nan"))),
        Figure("in-app alert lateness p99 (delivered minus deadline)", "s", percentile(alerted, 99)),
    ]


async def replay(n: int) -> list[Figure]:
    from bench.replay_throughput import measure

    seconds = await measure(n, rounds=1, workers=None)
    baseline, full, passed_through, unsandboxed = (statistics.median(times) for times in seconds.values())
    return [
        Figure(f"audit replay, full sandbox, {n} histories", "histories/s", n / full, n / baseline,
               "sequential Replayer", True),
        Figure(f"audit replay, sandbox with modules passed through, {n} histories", "histories/s",
               n / passed_through, n / baseline, "sequential Replayer", True),
        Figure(f"audit replay, no sandbox, {n} histories", "histories/s", n / unsandboxed, n / baseline,
               "sequential Replayer", True),
    ]


async def open_referral(client: Client, queue: str, policy: SlaPolicy, seed: int, timed: Timed | None = None) -> None:
    """A referral brought to its conference stage with 2 agreed actions open: its stage deadline, the actions'
    reminders and deadlines all pending as timers."""
    submission = synthetic_vist(rng=random.Random(f"bench-scale:{seed}:{uuid.uuid4()}"))
    handle = await client.start_workflow(
        ReferralWorkflow.run, StartReferral(submission=submission, submitted_by=OFFICER, sla_policy=policy),
        id=referral_reference(submission.form_id), task_queue=queue,
    )
    decide = timed or (lambda send: send)
    await decide(patiently(handle, ReferralWorkflow.review, approval()))
    await decide(patiently(handle, ReferralWorkflow.screen, screening(submission, ScreeningOutcome.STRATEGY_DISCUSSION)))
    await decide(patiently(handle, ReferralWorkflow.record_strategy_discussion,
                           strategy_discussion(datetime.now(UTC), section_47=True, actions=2)))


async def patiently(handle: WorkflowHandle, update: Any, decision: Any) -> Any:
    """A decision awaited however long a loaded machine takes: on the RPC's timeout, the same update (by its ID,
    which Temporal deduplicates) is awaited again rather than failing the run."""
    update_id = str(uuid.uuid4())
    while True:
        try:
            return await handle.execute_update(update, decision, id=update_id)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the run is stopping (Ctrl-C): no second wait
                raise


async def scale(bench: BenchStack, policy: SlaPolicy, sizes: Sizes) -> list[Figure]:
    """Open referrals added up to `sizes.open_referrals`; at each checkpoint (every `sizes.scale_checkpoint`), the
    worker's memory and the latency of intake (the API) and of decisions (on fresh referrals, one at a time)."""
    import psutil

    assert bench.pool is not None and bench.stack.worker.pid is not None
    client, queue = bench.client, bench.settings.task_queue
    worker = psutil.Process(bench.stack.worker.pid)
    token = ensure_demo_tokens(bench.settings.tokens_file.expanduser().resolve())["officer"]
    gate = asyncio.Semaphore(20)
    opened = 0
    figures: list[Figure] = []

    async def one(seed: int) -> None:
        async with gate:
            await open_referral(client, queue, policy, seed)

    async def checkpoint() -> None:
        # Latency while the open referrals wait: intake one form at a time through the API, decisions likewise.
        intake_ms: list[float] = []
        async with httpx.AsyncClient(base_url=bench.stack.api_url, timeout=120) as api:
            for i in range(sizes.scale_samples):
                form = synthetic_vist(rng=random.Random(f"bench-scale-intake:{opened}:{i}:{uuid.uuid4()}"))
                began = time.perf_counter()
                response = await api.post("/referrals", json=form.model_dump(mode="json"),
                                          headers={"Authorization": f"Bearer {token}"})
                intake_ms.append(1000 * (time.perf_counter() - began))
                response.raise_for_status()
        decisions = Timed()
        for i in range(sizes.scale_samples):
            await open_referral(client, queue, policy, -1 - i, decisions)
        running = (await client.count_workflows("ExecutionStatus = 'Running'")).count
        at = f"{opened} open referrals"
        server_mb = psutil.Process(bench.stack.temporal.pid).memory_info().rss / 2**20 if bench.stack.temporal else 0.0
        figures.extend([
            Figure(f"scale: open workflows at {at}", "", running),
            Figure(f"scale: dev server memory (RSS) at {at}", "MB", server_mb),
            Figure(f"scale: worker memory (RSS) at {at}", "MB", worker.memory_info().rss / 2**20),
            Figure(f"scale: intake p50 at {at}", "ms", percentile(intake_ms, 50)),
            Figure(f"scale: intake p95 at {at}", "ms", percentile(intake_ms, 95)),
            Figure(f"scale: decision p50 at {at}", "ms", 1000 * percentile(decisions.latencies, 50)),
            Figure(f"scale: decision p95 at {at}", "ms", 1000 * percentile(decisions.latencies, 95)),
        ])
        print(f"scale: {at}: " + "; ".join(f"{f.name.split(' at ')[0][7:]} {f.engine:.0f} {f.unit}"
                                          for f in figures[-7:]), file=sys.stderr, flush=True)

    began = time.perf_counter()
    # A checkpoint at every multiple of the first, so a run stopped early still shows the trend.
    targets = sorted({*range(sizes.scale_checkpoint, sizes.open_referrals, sizes.scale_checkpoint), sizes.open_referrals})
    for target in targets:
        batch = target - opened
        await asyncio.gather(*(one(opened + i) for i in range(batch)))
        opened = target
        await checkpoint()
    minutes = (time.perf_counter() - began) / 60
    memory = [f for f in figures if "worker memory" in f.name]
    first, *_, last = (f for f in figures if "decision p95" in f.name)
    first_intake, *_, last_intake = (f for f in figures if "intake p95" in f.name)
    figures += [
        Figure(f"scale: {opened} referrals opened in (minutes)", "min", minutes),
        Figure(f"scale: decision p95 at {opened} over at {sizes.scale_checkpoint}", "x", last.engine / first.engine),
        Figure(f"scale: intake p95 at {opened} over at {sizes.scale_checkpoint}", "x",
               last_intake.engine / first_intake.engine),
        Figure(f"scale: worker memory growth from {sizes.scale_checkpoint} to {opened}", "MB",
               memory[-1].engine - memory[0].engine),
    ]
    return figures


# --- the stack ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchStack:
    """An embedded stack of its own in a scratch directory, and the floor's worker beside it."""

    def __init__(self, data_dir: Path, persist_temporal: bool) -> None:
        # Through the environment, which the worker and the API it starts read too.
        os.environ.update(DATA_DIR=str(data_dir), TEMPORAL_DEV_PORT=str(free_port()),
                          TEMPORAL_UI_PORT=str(free_port()), API_PORT=str(free_port()),
                          WORKER_METRICS_PORT=str(free_port()),
                          CODEC_SERVER_PORT=str(free_port()))
        for given in ("TEMPORAL_ADDRESS", "DATABASE_URL"):  # its own embedded stack, always
            os.environ.pop(given, None)
        self.settings = Settings(_env_file=None)
        self.stack = Stack(self.settings, Console(stderr=True, quiet=True), persist_temporal=persist_temporal)
        self.floor = ChildProcess("floor", "the floor's worker", [sys.executable, "-m", "bench.floor"],
                                  data_dir / "floor.log", ROOT, 30, env=self.stack._service_env)
        self.pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> BenchStack:
        try:
            await self.stack.start()
            self.floor.start()
            assert self.stack.database_url is not None
            self.pool = await asyncpg.create_pool(self.stack.database_url, min_size=1, max_size=4)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.pool is not None:
            await self.pool.close()
        self.floor.stop()
        self.stack.stop()

    @property
    def client(self) -> Client:
        assert self.stack.client is not None
        return self.stack.client

    async def floor_ready(self) -> None:
        """The floor's worker polls once its table exists."""
        assert self.pool is not None
        for _ in range(120):
            self.floor.check()
            if await self.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the floor's worker did not start; see {self.floor.log_file}")


PARTS = ("lifecycles", "footprint", "intake", "escalation", "memory", "replay", "scale")
# Run only when asked for by name (`--only scale`): it takes the best part of an hour.
ON_REQUEST = {"scale"}


async def measure(sizes: Sizes, parts: set[str], profile: Path | None = None) -> Report:
    report = Report(
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "when": datetime.now(UTC).isoformat(timespec="seconds"), "load_average": os.getloadavg()},
        sizes=asdict(sizes),
    )
    policy = build_sla_policy(None)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        if parts & {"lifecycles", "footprint", "intake", "escalation", "scale"}:
            async with BenchStack(Path(scratch) / "file", persist_temporal=True) as bench:
                await bench.floor_ready()
                queue = bench.settings.task_queue
                if "lifecycles" in parts:
                    report.add(*await lifecycles(bench, policy, sizes))
                    if profile and bench.stack.worker.pid:
                        # The worker's profile over lifecycles of their own, after the measured ones: sampling
                        # slows the process it samples, and only the referral's worker is sampled.
                        profiler = Profiler(bench.stack.worker.pid, profile)
                        profiler.start()
                        await run_many(lambda seed: referral_lifecycle(bench.client, queue, policy, Timed(), seed),
                                       sizes.lifecycles, sizes.concurrency)
                        report.profile = profiler.stop()
                if "footprint" in parts:
                    report.add(*await footprint(bench, sizes, policy))
                if "intake" in parts:
                    tokens = ensure_demo_tokens(bench.settings.tokens_file.expanduser().resolve())
                    report.add(*await intake(bench.stack.api_url, tokens["officer"], bench.pool, sizes.forms))
                if "scale" in parts:
                    report.add(*await scale(bench, policy, sizes))
                if "escalation" in parts:
                    report.add(*await escalation_lateness(
                        bench.client, queue, bench.pool, policy, sizes.deadlines, sizes.deadline_seconds,
                        sizes.deadline_spread,
                    ))
        if "memory" in parts:
            async with BenchStack(Path(scratch) / "memory", persist_temporal=False) as bench:
                await bench.floor_ready()
                report.add(*await lifecycles(bench, policy, sizes, "in memory: "))
    if "replay" in parts:
        report.add(*await replay(sizes.replay_histories))
    report.machine["load_average_after"] = os.getloadavg()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few of each: proves the benchmark works")
    parser.add_argument("--in-memory-too", action="store_true", help="also run the lifecycle on an in-memory dev server")
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--only", default=None,
                        help=f"a comma-separated subset of the parts to run: {', '.join(PARTS)}")
    parser.add_argument("--size", action="append", default=[], metavar="NAME=N",
                        help=f"override one of the sizes ({', '.join(Sizes.__dataclass_fields__)}), e.g. --size deadlines=500")
    parser.add_argument("--profile", type=Path, default=None,
                        help="sample the worker with py-spy during the lifecycles, its stacks to this file")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="where to write the figures")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    for given in args.size:
        name, _, value = given.partition("=")
        if name not in Sizes.__dataclass_fields__ or not value.isdigit():
            parser.error(f"--size {given}: expected NAME=N with NAME one of {', '.join(Sizes.__dataclass_fields__)}")
        setattr(sizes, name, int(value))
    if args.profile is not None and not Profiler.available():
        parser.error("--profile needs py-spy: pip install -e '.[bench]'")
    if args.only is not None:
        parts = {part.strip() for part in args.only.split(",")}
        if unknown := parts - set(PARTS):
            parser.error(f"--only: {', '.join(sorted(unknown))} is not one of {', '.join(PARTS)}")
    else:
        parts = set(PARTS) - ON_REQUEST - ({"memory"} if not args.in_memory_too else set()) - ({"replay"} if args.no_replay else set())
    report = asyncio.run(measure(sizes, parts, args.profile))
    results = asdict(report) | {"ratios": {f.name: f.ratio for f in report.figures}}
    print("\n" + render(results))
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
