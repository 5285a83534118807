"""The operations guide holds what an operator needs, names files that exist, and sizes from the measured figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operations.md"
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def section(text: str, heading: str) -> str:
    """A section's text, from its heading to the next heading of the same level or above."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text) if m.start() > start]
    return text[start : ends[0] if ends else len(text)]


def headings(text: str) -> list[str]:
    return re.findall(r"^#+ .+$", text, re.MULTILINE)


def test_the_guide_covers_deploying_upgrading_keys_backups_retention_and_incidents():
    text = GUIDE.read_text()
    present = headings(text)
    for wanted in (
        "### On one host: compose", "### On Kubernetes", "#### Self-hosted Temporal, with the Helm chart",
        "#### Temporal Cloud", "### Worker tuning", "### Sizing", "## Upgrading", "## Key rotation",
        "## Backup and restore", "## Retention", "### Metrics", "### Worker health", "### Logs", "### Traces",
        "## Several workers on one task queue", "## The Web UI's decoding (codec server)",
        "### Stuck outbox", "### Quarantined facts", "### Worker crash loop", "### Temporal unavailable",
    ):
        assert wanted in present, wanted
    # An upgrade goes through the replay gate, whose test exists.
    assert "tests/test_audit_replay.py" in section(text, "## Upgrading")


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_every_test_file_and_image_a_document_names_exists(doc):
    text = doc.read_text()
    named = set(re.findall(r"\btests/[\w/]+\.py\b", text))
    named |= {(doc.parent / image).resolve().relative_to(ROOT).as_posix() for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)}
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


def latest_figures() -> dict[str, str]:
    """The benchmarks' latest figures, from the table `make bench-doc` writes: each figure -> the engine's figure."""
    table = BENCHMARKS.read_text().split("<!-- bench-table:start -->", 1)[1].split("<!-- bench-table:end -->", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return {figure.strip(): measured.strip() for figure, measured in rows}


# What the sizing quotes (a pattern in its section) and the benchmark figure it comes from.
QUOTED = [
    (r"of the ([\d.]+) lifecycles a second one worker sustained", "lifecycles/s, 40 lifecycles 10 at a time"),
    (r"([\d.]+) MB after 100 lifecycles", "worker memory after the lifecycles (RSS)"),
    (r"p99 ([\d.]+) s late", "escalation lateness p99"),
    (r"([\d.]+) KB per closed referral \(dev server", "dev server's file per closed referral (40 referrals)"),
    (r"([\d.]+) KB per closed referral \|", "PostgreSQL per closed referral (40 referrals)"),
]


@pytest.mark.parametrize("quoted, figure", QUOTED, ids=[figure for _, figure in QUOTED])
def test_the_sizing_quotes_the_latest_benchmark_figures(quoted, figure):
    sizing = section(GUIDE.read_text(), "### Sizing")
    found = re.search(quoted, sizing)
    assert found, f"the sizing no longer quotes {figure!r} ({quoted})"
    cited = found.group(1)
    measured = float(latest_figures()[figure].split()[0])
    decimals = len(cited.partition(".")[2])
    assert round(measured, decimals) == float(cited), (
        f"docs/benchmarks.md now gives {figure!r} as {measured}; docs/operations.md's sizing quotes {cited}: derive it again"
    )
