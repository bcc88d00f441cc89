"""Where the CPU and the memory go: per-component CPU seconds and resident memory of process trees, sampled from
/proc (Linux).

    sampler = CpuSampler({"spark": job.pid, "mongodb": mongo.pid(), "kafka": broker.pid()})
    sampler.start(); ...; sampler.stop(); sampler.cores()  # -> {"spark": 1.3, "mongodb": 0.98, ...}
    sampler.rss_mib()  # -> {"spark": {"java": 1830.2, "python": 410.5}, ...}: the last sample, by program

A component is a process and all its descendants (the spark-submit JVM and its Python workers, a generator and its
producer processes). Each live process is sampled every `interval` seconds; a process that ends between two samples
loses only its last interval.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _rss_and_program(pid: int) -> tuple[float, str] | None:
    """(resident MiB, program name) of a process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    name = next((line.split()[1] for line in status.splitlines() if line.startswith("Name:")), "?")
    return rss / 1024, name


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class CpuSampler:
    def __init__(self, roots: dict[str, int | None], interval: float = 1.0, timeline_every: float = 300.0):
        self.roots = {name: pid for name, pid in roots.items() if pid}
        self.interval = interval
        self.timeline_every = timeline_every
        self.rss_timeline: list[tuple[float, dict[str, dict[str, float]]]] = []  # (seconds since start, rss_mib())
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.owner: dict[int, str] = {}
        self.started = self.stopped = 0.0
        self.machine_first = self.machine_last = (0, 0)
        self.rss: dict[str, dict[str, float]] = {}  # component -> program -> MiB, at the last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CpuSampler:
        self.started = time.monotonic()
        self.machine_first = _machine_ticks()
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.stopped = time.monotonic()
        self.machine_last = _machine_ticks()

    def cores(self) -> dict[str, float]:
        """Average cores busy per component over the sampled time."""
        elapsed = max(self.stopped - self.started, 1e-9)
        busy: dict[str, float] = {name: 0.0 for name in self.roots}
        for pid, name in self.owner.items():
            busy[name] += (self.last[pid] - self.first[pid]) / TICKS / elapsed
        busy_ticks = self.machine_last[0] - self.machine_first[0]
        total_ticks = self.machine_last[1] - self.machine_first[1]
        busy["machine"] = (os.cpu_count() or 1) * busy_ticks / total_ticks if total_ticks else 0.0
        return busy

    def rss_mib(self) -> dict[str, dict[str, float]]:
        """Resident memory at the last sample, per component and program (java: the JVM, with the driver and in
        local mode the executors; python: Spark's Python workers and drivers, summed)."""
        return {name: {program: round(mib, 1) for program, mib in programs.items()}
                for name, programs in self.rss.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        children = _children()
        for name, root in self.roots.items():
            memory: dict[str, float] = {}
            for pid in _tree(root, children):
                found = _rss_and_program(pid)
                if found:
                    program = "python" if found[1].startswith("python") else found[1]
                    memory[program] = memory.get(program, 0.0) + found[0]
                ticks = _ticks(pid)
                if ticks is None:
                    continue
                self.first.setdefault(pid, ticks)
                self.owner.setdefault(pid, name)
                self.last[pid] = ticks
            self.rss[name] = memory
        elapsed = time.monotonic() - self.started
        if not self.rss_timeline or elapsed - self.rss_timeline[-1][0] >= self.timeline_every:
            self.rss_timeline.append((round(elapsed), self.rss_mib()))
