"""Where the worker's time goes while the benchmark runs: py-spy's samples, summed by what the code is for.

py-spy samples the worker process's Python stacks from outside (no change to the worker);
each sample is counted once in every part of the system it passes through, so the shares
say how much of the worker's busy time each part is on the stack.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# What the code on a stack is for, by its file: the first match names the part.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sealing payloads (runtime/codec, cryptography)", ("runtime/codec", "cryptography/")),
    ("converting payloads (pydantic, JSON)", ("temporalio/converter", "temporalio/contrib/pydantic", "pydantic/",
                                              "pydantic_core", "json/")),
    ("workflow sandbox", ("temporalio/worker/workflow_sandbox",)),
    ("workflow code (workflows/)", ("/workflows/",)),
    ("recording in PostgreSQL (asyncpg, activities, projections)", ("asyncpg/", "/activities/", "/readmodel/")),
    ("Temporal SDK core bridge and worker", ("temporalio/bridge", "temporalio/worker/_workflow.py",
                                             "temporalio/worker/_activity.py")),
    ("logging (structlog)", ("structlog/", "logging/")),
)


@dataclass
class ProfileSummary:
    samples: int
    parts: dict[str, float]
    hottest: list[tuple[str, float]]


class Profiler:
    """`py-spy record` on one process, from `start()` to `stop()`."""

    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self._process: subprocess.Popen | None = None

    @staticmethod
    def executable() -> str | None:
        """py-spy beside this Python (the project's environment), or on the PATH."""
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    @classmethod
    def available(cls) -> bool:
        return cls.executable() is not None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self.executable() or "py-spy", "record", "--pid", str(self.pid), "--format", "raw", "--rate", "100",
             "--output", str(self.output), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> ProfileSummary | None:
        if self._process is None:
            return None
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
        return summarise(self.output) if self.output.exists() else None


def summarise(collapsed: Path, hottest: int = 8) -> ProfileSummary:
    """Shares of samples per part of the system, and the functions most often at the top of the stack."""
    total = 0
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for part, markers in PARTS:
            if any(marker in frame for frame in frames for marker in markers):
                parts[part] += n
        leaves[frames[-1].split(" (")[0].strip()] += n
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return ProfileSummary(
        samples=total,
        parts={part: share(n) for part, n in parts.most_common()},
        hottest=[(name, share(n)) for name, n in leaves.most_common(hottest)],
    )
