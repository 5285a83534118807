"""Replaying recorded histories against the current workflow code: does the code still explain every history?

`replay_sequentially` is the plain SDK loop (one `Replayer`, `replay_workflow` per history),
kept as the baseline the fast path is measured against. `replay_histories` spreads the
histories over one process per CPU core; each process keeps one replayer and feeds it a
stream of histories from a few concurrent iterators, so per-replay set-up is paid once and
one history's wait on the SDK core overlaps another's Python work. docs/audit.md has the
figures.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from enum import StrEnum

from pydantic import BaseModel, computed_field
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from runtime.settings import Settings
from runtime.temporal import data_converter, workflow_runner
from audit.history import workflow_type

# Histories per task sent to a worker process: large enough to amortise a task, small
# enough that the progress bar moves and the cores stay evenly loaded.
CHUNK = 8
# Concurrent replay streams inside one process.
STREAMS = 4
DETAIL_LIMIT = 300


class ReplayStatus(StrEnum):
    OK = "ok"
    NON_DETERMINISTIC = "non_deterministic"
    FAILED = "failed"


class HistoryReplay(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    events: int
    status: ReplayStatus
    first_mismatch_event: int | None = None
    first_mismatch_event_type: str | None = None
    detail: str | None = None


class ReplayReport(BaseModel):
    histories: list[HistoryReplay]
    seconds: float
    workers: int

    @computed_field
    @property
    def counts(self) -> dict[ReplayStatus, int]:
        return {s: sum(1 for h in self.histories if h.status is s) for s in ReplayStatus}

    @property
    def passed(self) -> bool:
        return all(h.status is ReplayStatus.OK for h in self.histories)


def _workflows() -> list[type]:
    # The worker's own list: every workflow type it runs must explain its histories.
    from worker import WORKFLOWS

    return list(WORKFLOWS)


def build_replayer(
    settings: Settings, *, sandbox: str = "passthrough", workflows: Sequence[type] | None = None
) -> Replayer:
    """A replayer with the system's data converter (payloads are sealed).

    `sandbox` is the worker's setting (`runtime.temporal.workflow_runner`): "reimport" is the
    SDK's full sandbox, each workflow's own module re-imported for each history and its calls
    checked; "passthrough" imports modules once, keeping the restricted builtins but not the
    checks of the workflow modules' calls to module members; "off" drops the sandbox. Under each,
    every command is checked against the history.
    """
    return Replayer(
        workflows=list(workflows or _workflows()),
        data_converter=data_converter(settings),
        workflow_runner=workflow_runner(sandbox),
    )


_EVENT_ID = re.compile(r"HistoryEvent\(id: (\d+)")
_FAILURE_TYPE = re.compile(r'r#type: "([^"]+)"')
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _outcome(history: WorkflowHistory, failure: Exception | None) -> HistoryReplay:
    common = dict(
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        workflow_type=workflow_type(history),
        events=len(history.events),
    )
    if failure is None:
        return HistoryReplay(status=ReplayStatus.OK, **common)
    # The core wraps its reason in a Failure's debug text; its own message is the useful part.
    text = str(failure)
    core = _CORE_MESSAGE.search(text)
    message = core.group(1) if core else text
    if message == "Encoded failure":
        # Failure messages are sealed like payloads; the exception types are not, and say enough.
        message = "workflow task failed: " + " caused by ".join(_FAILURE_TYPE.findall(text))
    event_id = _EVENT_ID.search(message)
    mismatch = int(event_id.group(1)) if event_id else None
    event_type = None
    if mismatch is not None and 0 < mismatch <= len(history.events):
        event_type = EventType.Name(history.events[mismatch - 1].event_type).removeprefix("EVENT_TYPE_")
    return HistoryReplay(
        status=ReplayStatus.NON_DETERMINISTIC if isinstance(failure, NondeterminismError) else ReplayStatus.FAILED,
        first_mismatch_event=mismatch,
        first_mismatch_event_type=event_type,
        # The SDK's messages name commands and event IDs; payloads stay sealed and are never quoted.
        detail=f"{type(failure).__name__}: {message}"[:DETAIL_LIMIT],
        **common,
    )


class ReplayStreams:
    """One replayer fed through a few long-lived streams, so set-up is paid once per stream.

    A stream is one `workflow_replay_iterator` (one SDK core worker) that replays whatever
    is queued, in order; several let one history's wait on the core overlap another's
    Python work.
    """

    def __init__(self, replayer: Replayer, streams: int = STREAMS) -> None:
        self.replayer = replayer
        self.streams = max(1, streams)
        self._queue: asyncio.Queue[tuple[WorkflowHistory, asyncio.Future[HistoryReplay]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def replay(self, histories: Sequence[WorkflowHistory]) -> list[HistoryReplay]:
        """Replay the histories; results in the order given."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._stream(self._queue)) for _ in range(self.streams)]
        loop = asyncio.get_running_loop()
        futures = []
        for history in histories:
            future: asyncio.Future[HistoryReplay] = loop.create_future()
            self._queue.put_nowait((history, future))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _stream(self, queue: asyncio.Queue[tuple[WorkflowHistory, asyncio.Future[HistoryReplay]]]) -> None:
        while True:
            waiting: deque[tuple[WorkflowHistory, asyncio.Future[HistoryReplay]]] = deque()

            async def feed() -> AsyncIterator[WorkflowHistory]:
                while True:
                    item = await queue.get()
                    waiting.append(item)
                    yield item[0]

            try:
                async with self.replayer.workflow_replay_iterator(feed()) as results:
                    async for result in results:
                        _, future = waiting.popleft()
                        future.set_result(_outcome(result.history, result.replay_failure))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the replayer itself broke: the histories in flight are unexplained
                for history, future in waiting:
                    future.set_result(_outcome(history, error))


async def replay_in_process(
    replayer: Replayer, histories: Sequence[WorkflowHistory], streams: int = STREAMS
) -> list[HistoryReplay]:
    """Replay in this process with one replayer; results in the order given."""
    replay_streams = ReplayStreams(replayer, streams)
    try:
        return await replay_streams.replay(histories)
    finally:
        await replay_streams.close()


# --- the worker processes ---------------------------------------------------------------------

_process_streams: ReplayStreams | None = None
_process_loop: asyncio.AbstractEventLoop | None = None


def _start_process(settings: Settings, sandbox: str) -> None:
    global _process_streams, _process_loop
    _process_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_process_loop)
    _process_streams = ReplayStreams(build_replayer(settings, sandbox=sandbox))


def _replay_chunk(chunk: list[tuple[str, bytes]]) -> list[dict]:
    assert _process_streams is not None and _process_loop is not None
    histories = [WorkflowHistory(workflow_id, History.FromString(data).events) for workflow_id, data in chunk]
    outcomes = _process_loop.run_until_complete(_process_streams.replay(histories))
    return [o.model_dump() for o in outcomes]


def _serialised(history: WorkflowHistory) -> tuple[str, bytes]:
    return history.workflow_id, History(events=history.events).SerializeToString()


async def replay_histories(
    histories: Sequence[WorkflowHistory],
    settings: Settings,
    *,
    workers: int | None = None,
    sandbox: str = "off",
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay every history in parallel over `workers` processes (default: one per CPU core).

    Without the sandbox by default (`sandbox` as for `build_replayer`): replay checks the commands
    the code emits against the history, which the sandbox does not change (it guards live runs
    against restricted calls, and the CI replay test keeps it). `progress(n)` is called as each batch of n
    histories is done.
    """
    started = time.perf_counter()
    workers = max(1, min(workers or os.cpu_count() or 1, -(-len(histories) // CHUNK) or 1))
    chunks = [[_serialised(h) for h in histories[i : i + CHUNK]] for i in range(0, len(histories), CHUNK)]
    outcomes: dict[int, list[HistoryReplay]] = {}
    # Spawned, not forked: the parent may already run the SDK core's threads.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_process,
        initargs=(settings, sandbox),
    ) as pool:

        async def replay_chunk(index: int, chunk: list[tuple[str, bytes]]) -> tuple[int, list[dict]]:
            return index, await asyncio.wrap_future(pool.submit(_replay_chunk, chunk))

        for next_done in asyncio.as_completed([replay_chunk(i, chunk) for i, chunk in enumerate(chunks)]):
            index, done = await next_done
            outcomes[index] = [HistoryReplay.model_validate(o) for o in done]
            if progress is not None:
                progress(len(done))
    ordered = [o for index in sorted(outcomes) for o in outcomes[index]]
    return ReplayReport(histories=ordered, seconds=time.perf_counter() - started, workers=workers)


async def replay_sequentially(
    histories: Sequence[WorkflowHistory], settings: Settings, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    """The plain SDK loop: one default replayer, `replay_workflow` for each history in turn."""
    started = time.perf_counter()
    replayer = Replayer(workflows=_workflows(), data_converter=data_converter(settings))
    outcomes = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        outcomes.append(_outcome(history, result.replay_failure))
        if progress is not None:
            progress(1)
    return ReplayReport(histories=outcomes, seconds=time.perf_counter() - started, workers=1)
