"""Replay throughput: the plain sequential `Replayer` loop against the audit's parallel replay, in one run.

Loads the recorded histories of every lifecycle path (tests/histories, sealed under their
own test keyring), repeats them to N histories, and times, on the same machine in the same
run: the baseline (one default replayer, `replay_workflow` per history, in turn), and the fast
path in the SDK's full sandbox (each workflow module re-imported for each history, as the
baseline does), with the modules passed through (the restricted builtins kept, not the checks
of module members), and with no sandbox. Each round runs the modes in turn; the medians are printed with their ratios.

    .venv/bin/python -m bench.replay_throughput --histories 480 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
from pathlib import Path

from runtime.settings import Settings
from audit.history import load_exports
from audit.replay import ReplayReport, replay_histories, replay_sequentially

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"


async def measure(n: int, rounds: int, workers: int | None) -> dict[str, list[float]]:
    settings = Settings(_env_file=None, encryption_keys=(HISTORIES / "keyring.json").read_text())
    recorded = [h for referral in load_exports(HISTORIES) for h in referral.all()]
    histories = [recorded[i % len(recorded)] for i in range(n)]
    print(f"{len(recorded)} recorded histories repeated to {n}; {os.cpu_count()} CPU cores; "
          f"Python {platform.python_version()}")
    modes = {
        "baseline (sequential Replayer loop)": lambda: replay_sequentially(histories, settings),
        "fast, full sandbox": lambda: replay_histories(histories, settings, workers=workers, sandbox="reimport"),
        "fast, modules passed through": lambda: replay_histories(histories, settings, workers=workers,
                                                                 sandbox="passthrough"),
        "fast, no sandbox": lambda: replay_histories(histories, settings, workers=workers, sandbox="off"),
    }
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_number in range(1, rounds + 1):
        for mode, run in modes.items():
            report: ReplayReport = await run()
            if not report.passed:
                raise SystemExit(f"{mode}: {report.counts} - the recorded histories must all replay")
            seconds[mode].append(report.seconds)
            print(f"round {round_number}: {mode}: {report.seconds:.2f} s ({n / report.seconds:.1f} histories/s)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="processes for the fast path (default: CPU cores)")
    args = parser.parse_args()
    seconds = asyncio.run(measure(args.histories, args.rounds, args.workers))
    baseline = statistics.median(next(iter(seconds.values())))
    print(f"\n| mode | median seconds | histories/s | vs baseline |\n|---|---|---|---|")
    for mode, times in seconds.items():
        median = statistics.median(times)
        print(f"| {mode} | {median:.2f} | {args.histories / median:.1f} | {baseline / median:.2f}x |")


if __name__ == "__main__":
    main()
