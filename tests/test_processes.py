"""The tests' own process handling (tests/processes.py): whatever a test starts is gone after it, grandchildren
included, whether the test passed, timed out or failed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from processes import Processes, members, run, started
from waiting import wait_until

# A parent that starts a child, prints the child's pid, then waits: like spark-submit, whose JVM starts the job's
# Python driver. STUBBORN's child ignores SIGTERM, so only SIGKILL after the grace period ends it.
FAMILY = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(600)\n")
STUBBORN = FAMILY.replace("'import time; ", "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); ")


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_leaving_the_block_ends_the_whole_group_even_a_child_that_ignores_sigterm():
    with pytest.raises(AssertionError, match="the test failed"):
        with started([sys.executable, "-c", STUBBORN], grace=0.5, stdout=subprocess.PIPE, text=True) as parent:
            child = int(parent.stdout.readline())
            raise AssertionError("the test failed")
    assert parent.returncode is not None and gone(parent.pid) and gone(child)
    assert members(parent.pid) == []


def test_a_timeout_ends_the_whole_group_before_it_is_reported(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = FAMILY.replace("print(child.pid, flush=True)", f"open({str(pid_file)!r}, 'w').write(str(child.pid))")
    with pytest.raises(subprocess.TimeoutExpired):
        run([sys.executable, "-c", script], timeout=3)
    child = int(pid_file.read_text())
    assert gone(child)


def test_run_returns_what_subprocess_run_returns():
    result = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                 capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        run([sys.executable, "-c", "raise SystemExit(1)"], check=True, timeout=60)


def test_the_fixture_ends_every_process_a_test_started_after_it():
    processes = Processes(grace=0.5)
    parents = [processes.start([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    children = [int(parent.stdout.readline()) for parent in parents]
    wait_until(lambda: all(members(parent.pid) for parent in parents), timeout=30, message="both groups running")
    processes.end_all()
    assert all(gone(pid) for pid in [*children, *(parent.pid for parent in parents)])
