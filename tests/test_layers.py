"""The layering contracts (pyproject.toml `[tool.importlinter]`) hold, and break when a forbidden import appears."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Every package the contracts name, as pyproject.toml lists them.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the packages found in `root`, with `root` first on the path."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )


def test_every_layering_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "broken"),
    [
        # A workflow doing I/O itself.
        ("workflows/calendar.py", "import asyncpg", "Workflows import no I/O library"),
        # The read model reaching up into the HTTP API.
        ("readmodel/queries.py", "import api.deps", "Activities, the read model"),
        # The dashboard importing the API, which mounts it.
        ("dashboard/board.py", "import api.deps", "The HTTP API, the dashboard and the CLI"),
        # A workflow client reaching for the HTTP framework of one of its callers.
        ("starter/referrals.py", "import fastapi", "The workflow clients speak only Temporal"),
        # The circle between the app and a router it includes.
        ("api/routes/audit.py", "import api.app", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, forbidden_import, broken):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # the import under test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout.split("Broken contracts", 1)[-1], result.stdout
