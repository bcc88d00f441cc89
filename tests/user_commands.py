"""Commands run as a user runs them: `spark-submit jobs/aggregate.py` with the project's environment first on PATH."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from processes import run

ROOT = Path(__file__).resolve().parents[1]


def spark_submit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
    executable = shutil.which("spark-submit", path=env["PATH"])
    assert executable, "spark-submit is not on PATH: run bin/install"
    return run([executable, "jobs/aggregate.py", *args], cwd=ROOT, env=env, capture_output=True,
               text=True, timeout=timeout)


def our_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The job's own lines. spark-submit merges the Python driver's stderr into its stdout, and the JVM may print
    its start-up notice (about incubator modules) on stderr at the same moment."""
    return [line for line in (result.stdout + "\n" + result.stderr).splitlines() if line.startswith("aggregate:")]
