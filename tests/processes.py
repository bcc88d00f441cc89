"""Processes a test starts end with the test, pass or fail: the one way tests start a process.

Each process runs in its own session, so its process group holds it and everything it starts (spark-submit's JVM and
the job's Python driver under it, the generator's worker processes). Ending it signals the whole group: SIGTERM, a
grace period, then SIGKILL, and waits until no member is left. `subprocess.run(timeout=...)` and `Popen.kill()` end
the child alone: a killed spark-submit leaves its driver running, still reading Kafka and writing MongoDB.

    with started([...]) as job: ...        # ended when the block is left, however it is left
    processes.start([...])                 # the `processes` fixture: ended after the test
    run([...], timeout=60, check=True)     # subprocess.run, but a timeout or an error ends the whole group
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GRACE_S = 10.0       # SIGTERM lets a JVM run its shutdown hooks (temporary files); then SIGKILL
KILL_WAIT_S = 30.0   # after SIGKILL the kernel needs only to reap; longer means a process stuck in the kernel


class Processes:
    """The processes one test started, each in its own process group; `end_all` ends every group."""

    def __init__(self, grace: float = GRACE_S) -> None:
        self.grace = grace
        self._started: list[subprocess.Popen] = []

    def start(self, args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
        """subprocess.Popen in a new session (start_new_session is forced), remembered for `end_all`."""
        process = subprocess.Popen(args, **{**popen_kwargs, "start_new_session": True})
        self._started.append(process)
        return process

    def end_all(self) -> None:
        """End every group this object started, the last started first (a job before the services it uses)."""
        errors = []
        while self._started:
            try:
                end(self._started.pop(), self.grace)
            except RuntimeError as exc:
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


@contextmanager
def started(args: Sequence[str], grace: float = GRACE_S, **popen_kwargs: Any) -> Iterator[subprocess.Popen]:
    """A process in its own process group, ended (the whole group) when the block is left."""
    processes = Processes(grace)
    try:
        yield processes.start(args, **popen_kwargs)
    finally:
        processes.end_all()


def run(args: Sequence[str], *, timeout: float, check: bool = False, capture_output: bool = False,
        input: str | bytes | None = None, **popen_kwargs: Any) -> subprocess.CompletedProcess:
    """subprocess.run in its own process group; on a timeout (or any error, or Ctrl-C) the whole group is ended
    before the exception propagates, and a member the command left behind is ended too."""
    if capture_output:
        popen_kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        popen_kwargs["stdin"] = subprocess.PIPE
    with started(args, **popen_kwargs) as process:
        stdout, stderr = process.communicate(input, timeout=timeout)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


def end(process: subprocess.Popen, grace: float = GRACE_S) -> None:
    """End `process` and every other member of its process group (it must lead one: Processes.start), and reap it."""
    group = process.pid
    if process.poll() is None or members(group):
        _signal_group(group, signal.SIGTERM)
        if not _wait_until_gone(process, group, grace):
            _signal_group(group, signal.SIGKILL)
            if not _wait_until_gone(process, group, KILL_WAIT_S):
                raise RuntimeError(f"process group {group} ({_name(process)}) survived SIGKILL: {members(group)}")
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def members(group: int) -> list[int]:
    """Live (not zombie) processes of process group `group`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it exited while we looked
        if int(fields[2]) == group and fields[0] != "Z":  # fields after the name: state, ppid, pgrp, ...
            found.append(int(stat.parent.name))
    return found


def _wait_until_gone(process: subprocess.Popen, group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reaps the leader, which would otherwise stay a zombie member of its group
        if process.returncode is not None and not members(group):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass  # every member already gone


def _name(process: subprocess.Popen) -> str:
    args = process.args
    return " ".join(map(str, args[:3])) if isinstance(args, (list, tuple)) else str(args)
