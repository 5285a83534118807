"""The benchmarks still work: their quick mode runs on its own embedded stack and measures every figure.

No figure's size is asserted (speed lives in docs/benchmarks.md); what is asserted is that each
figure was measured, each comparison has its baseline, and what must hold at any speed held:
every form posted was recorded once, and every deadline raised its escalation.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_benchmark_measures_every_figure_beside_its_baseline(tmp_path):
    results = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(results.read_text())
    figures = {f["name"]: f for f in report["figures"]}
    compared = [f for f in figures.values() if f["baseline"] is not None]
    assert {f["baseline_name"] for f in compared} == {"floor", "sequential Replayer"}
    assert all(math.isfinite(f["engine"]) and f["engine"] > 0 for f in compared)
    assert all(report["ratios"][name] is not None for name in (f["name"] for f in compared))
    sizes = report["sizes"]
    forms = sizes["forms"]
    assert figures[f"intake errors, {forms} forms at once"]["engine"] == 0
    assert figures[f"intake not recorded, {forms} forms at once"]["engine"] == 0
    assert figures[f"intake duplicates, {forms} forms at once"]["engine"] == 0
    raised = next(f for name, f in figures.items() if name.startswith("escalations recorded of"))
    assert raised["engine"] == sizes["deadlines"]
    assert "| figure | referral engine | baseline | ratio |" in run.stdout


def test_a_profile_counts_each_sample_once_in_every_part_it_passes_through(tmp_path):
    from bench.profile import summarise

    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "run (temporalio/worker/_workflow.py:10);encode (runtime/codec.py:5);encrypt (cryptography/aead.py:1) 30\n"
        "run (temporalio/worker/_workflow.py:10);to_json (pydantic/main.py:3) 50\n"
        "execute (asyncpg/connection.py:7) 20\n"
    )
    summary = summarise(stacks)
    assert summary.samples == 100
    assert summary.parts["sealing payloads (runtime/codec, cryptography)"] == 30.0
    assert summary.parts["converting payloads (pydantic, JSON)"] == 50.0
    assert summary.parts["Temporal SDK core bridge and worker"] == 80.0
    assert summary.parts["recording in PostgreSQL (asyncpg, activities, projections)"] == 20.0
    assert summary.hottest[0] == ("to_json", 50.0)


def test_the_quick_scale_run_holds_its_referrals_open_and_measures_at_each_checkpoint(tmp_path):
    results = tmp_path / "scale.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "scale", "--json", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(results.read_text())
    figures = {f["name"]: f["engine"] for f in report["figures"]}
    sizes = report["sizes"]
    for opened in range(sizes["scale_checkpoint"], sizes["open_referrals"] + 1, sizes["scale_checkpoint"]):
        at = f"{opened} open referrals"
        # Each referral and its 2 actions are running, beside the checkpoint's own samples.
        assert figures[f"scale: open workflows at {at}"] >= 3 * opened
        for figure in ("worker memory (RSS)", "intake p95", "decision p95"):
            assert math.isfinite(figures[f"scale: {figure} at {at}"]) and figures[f"scale: {figure} at {at}"] > 0


def test_the_docs_table_is_refreshed_from_a_runs_json_and_the_hand_written_text_kept(tmp_path):
    from bench.table import END, START, main

    results = tmp_path / "bench-results.json"
    results.write_text(json.dumps({
        "machine": {"cpus": 2, "python": "3.11.7", "when": "2026-11-24T18:00:00+00:00",
                    "load_average": [0.4, 0.5, 0.6], "load_average_after": [1.9, 1.0, 0.7]},
        "figures": [
            {"name": "lifecycles/s, 40 lifecycles 10 at a time", "unit": "/s", "engine": 3.6, "baseline": 3.0,
             "baseline_name": "floor", "higher_is_better": True},
            {"name": "intake p95, 200 forms at once", "unit": "ms", "engine": 1234.5, "baseline": None,
             "baseline_name": "", "higher_is_better": False},
        ],
        "ratios": {"lifecycles/s, 40 lifecycles 10 at a time": 1.2, "intake p95, 200 forms at once": None},
        "profile": None,
    }))
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nBy hand.\n\n{START}\n| old | table |\n{END}\n\nWhat limits each, by hand.\n")
    assert main([str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "| old | table |" not in text
    assert "By hand." in text and "What limits each, by hand." in text
    assert "| lifecycles/s, 40 lifecycles 10 at a time | 3.60 /s | 3.00 /s (floor) | 1.20x |" in text
    assert "| intake p95, 200 forms at once | 1234 ms |  |  |" in text
    assert "load average (1 / 5 / 15 min) 0.4 / 0.5 / 0.6 before the run and 1.9 / 1.0 / 0.7 after" in text
