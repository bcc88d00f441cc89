"""Every benchmark starts as the README runs it, `python -m bench.<name>` from the repository root: its imports
resolve as a package and its command line parses. `--help` measures nothing and starts no service."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def commands() -> list[str]:
    """The modules of bench/ with a `main`, by name."""
    return sorted(path.stem for path in (ROOT / "bench").glob("*.py")
                  if any(isinstance(node, ast.FunctionDef) and node.name == "main"
                         for node in ast.parse(path.read_text()).body))


def test_the_benchmarks_with_a_command_line_are_found():
    assert {"end_to_end", "live", "dashboard", "peer_consumer"} <= set(commands())


@pytest.mark.parametrize("name", commands())
def test_the_benchmark_runs_as_a_module_of_the_bench_package(name):
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    usage = done.stdout.splitlines()[0] if done.stdout else ""
    assert usage.startswith("usage: ") and name in usage, done.stdout[:500]
