"""Where the CPU goes: per-component CPU seconds of process trees, sampled from /proc (Linux).

    sampler = CpuSampler({"spark": job.pid, "mongodb": mongo.pid(), "kafka": broker.pid()})
    sampler.start(); ...; sampler.stop(); sampler.cores()  # -> {"spark": 1.3, "mongodb": 0.98, ...}

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
    def __init__(self, roots: dict[str, int | None], interval: float = 1.0):
        self.roots = {name: pid for name, pid in roots.items() if pid}
        self.interval = interval
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.owner: dict[int, str] = {}
        self.started = self.stopped = 0.0
        self.machine_first = self.machine_last = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "CpuSampler":
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

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        children = _children()
        for name, root in self.roots.items():
            for pid in _tree(root, children):
                ticks = _ticks(pid)
                if ticks is None:
                    continue
                self.first.setdefault(pid, ticks)
                self.owner.setdefault(pid, name)
                self.last[pid] = ticks
