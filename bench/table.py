"""The benchmark's figures as Markdown, from the JSON a run writes; and docs/benchmarks.md's table refreshed from it.

    python -m bench.table bench-results.json                       print the tables
    python -m bench.table bench-results.json --doc docs/benchmarks.md    replace the doc's generated table

In the doc, the generated part lies between the lines `<!-- bench-table:start -->` and
`<!-- bench-table:end -->`; everything else (what limits each figure, the targets) is written by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"


def render(results: dict[str, Any]) -> str:
    """The run's machine and load, every figure beside its baseline with the ratio, and the profile when taken."""
    machine = results["machine"]
    load = " / ".join(f"{x:.1f}" for x in machine["load_average"])
    after = " / ".join(f"{x:.1f}" for x in machine.get("load_average_after", machine["load_average"]))
    lines = [
        f"Measured {machine['when']} on {machine['cpus']} cores, Python {machine['python']}; load average "
        f"(1 / 5 / 15 min) {load} before the run and {after} after.",
        "",
        "| figure | referral engine | baseline | ratio |",
        "|---|---|---|---|",
    ]
    for figure in results["figures"]:
        unit = f" {figure['unit']}" if figure["unit"] else ""
        baseline = ""
        if figure["baseline"] is not None:
            baseline = f"{_number(figure['baseline'])}{unit} ({figure['baseline_name']})"
        ratio = results["ratios"].get(figure["name"])
        lines.append(f"| {figure['name']} | {_number(figure['engine'])}{unit} | {baseline} | "
                     f"{f'{ratio:.2f}x' if ratio is not None else ''} |")
    profile = results.get("profile")
    if profile:
        lines += ["", f"The worker during the lifecycles (py-spy, {profile['samples']} busy samples; a sample counts in "
                  "every part on its stack):", "", "| part of the system | share of samples |", "|---|---|"]
        lines += [f"| {part} | {share} % |" for part, share in profile["parts"].items()]
    return "\n".join(lines)


def refresh(doc: Path, results: dict[str, Any]) -> None:
    """Replace the doc's generated table with this run's."""
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: no {START} ... {END} section to refresh")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{render(results)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the JSON a benchmark run wrote (make bench: bench-results.json)")
    parser.add_argument("--doc", type=Path, default=None, help="a Markdown file whose generated table to replace")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    if args.doc is None:
        print(render(results))
    else:
        refresh(args.doc, results)
        print(f"{args.doc}: table refreshed from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
