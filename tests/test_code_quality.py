"""Lint and types are part of the suite: a ruff finding or a mypy error fails CI like a failing test.

Both read their configuration from pyproject.toml. Each check also runs once on a file with a known fault, so a
configuration that silently checks nothing (a wrong path, an empty rule set) fails here too.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_in_the_tree():
    result = tool("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_applies_the_project_rules(tmp_path):
    faulty = tmp_path / "faulty.py"
    faulty.write_text('import os\nimport sys\n\n\ndef f(x):\n    """does nothing"""\n    return zip(x, x)\n')
    result = tool("ruff", "check", "--no-cache", "--output-format", "concise", "--config", str(ROOT / "pyproject.toml"),
                  str(faulty))
    found = {line.split()[1] for line in result.stdout.splitlines() if line.startswith(str(faulty))}
    assert result.returncode == 1 and {"F401", "B905", "D403"} <= found, result.stdout


def test_mypy_finds_nothing_in_the_packages():
    result = tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_checks_with_the_project_settings(tmp_path):
    faulty = tmp_path / "faulty.py"
    faulty.write_text("def half(n: int) -> int:\n    return n / 2\n")
    result = tool("mypy", "--config-file", str(ROOT / "pyproject.toml"), str(faulty))
    assert result.returncode == 1 and "Incompatible return value type" in result.stdout, result.stdout
