"""Events/s the generator gets acknowledged by a local broker, with 1 process and with N (`--processes`).

    .venv/bin/python -m bench.generator_throughput [--processes 2] [--count 1000000] [--out bench.json]

Starts its own Apache Kafka (stack.kafka.KafkaBroker, free ports, temporary directory) unless --bootstrap-servers
is given. Each run is the real command, `python -m generator --rate max --count ...`, into a fresh topic; the rate
is acknowledged messages / (first produce .. last delivery report), as the generator's --stats-json reports it.
Also measures the model alone (MessageStream.take, no Kafka) as the ceiling of one process.
The machine has 2 cores shared with the broker: read the load average printed beside the figures.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.report import write_report

ROOT = Path(__file__).resolve().parents[1]


def model_only(count: int, **settings: object) -> float:
    """Events/s of generation + serialization alone, in this process."""
    from generator import MessageStream, StreamSettings

    stream = MessageStream(StreamSettings(seed=1, **settings))  # type: ignore[arg-type]
    stream.take(10_000)  # warm up (sessions fill their slots)
    began = time.perf_counter()
    done = 0
    while done < count:
        stream.take(5_000)
        done += 5_000
    return done / (time.perf_counter() - began)


def generator_run(bootstrap: str, processes: int, count: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "stats.json"
        command = [sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap,
                   "--topic", f"bench-{processes}p-{uuid.uuid4().hex[:8]}", "--rate", "max", "--count", str(count),
                   "--processes", str(processes), "--seed", "1", "--progress-interval", "0",
                   "--stats-json", str(stats_path), *extra]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"generator failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
        stats = json.loads(stats_path.read_text())
    stats["command"] = " ".join(["python", "-m", "generator", *command[3:]])
    return stats


def best_run(bootstrap: str, processes: int, count: int, extra: list[str], repeat: int) -> dict[str, Any]:
    """The fastest of `repeat` generator runs with `processes` producer processes, as the results list it."""
    best = max((generator_run(bootstrap, processes, count, extra) for _ in range(repeat)),
               key=lambda stats: stats["events_per_s"])
    return {"processes": processes, "events": best["acked"], "seconds": best["elapsed_s"],
            "events_per_s": best["events_per_s"], "command": best["command"]}


@contextlib.contextmanager
def broker_at(bootstrap: str | None) -> Iterator[str]:
    """`bootstrap`; without one, the address of a broker started in a temporary folder for the duration."""
    if bootstrap is not None:
        yield bootstrap
        return
    from stack import KafkaBroker, free_ports

    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp_dir:
        port, controller_port = free_ports(2)
        broker = KafkaBroker(tmp_dir, port=port, controller_port=controller_port)
        broker.start(timeout=180)
        try:
            yield broker.bootstrap_servers
        finally:
            broker.stop()


def print_table(results: dict[str, Any]) -> None:
    print(f"load average before {results['machine']['load_before'][0]:.2f}, after "
          f"{results['machine']['load_after'][0]:.2f} ({os.cpu_count()} cores)")
    print(f"{'mode':<28}{'events':>12}{'seconds':>10}{'events/s':>12}")
    print(f"{'model only (no Kafka), 1 p':<28}{'':>12}{'':>10}{results['model_only_events_per_s']:>12,.0f}")
    for run in results["runs"]:
        label = f"python -m generator, {run['processes']} p"
        print(f"{label:<28}{run['events']:>12,}{run['seconds']:>10.2f}{run['events_per_s']:>12,.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="N for the parallel run (default 2)")
    parser.add_argument("--count", type=int, default=1_000_000, help="messages per producer process (default 1M)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the best is reported")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--compression", default="none", help="producer compression (default none)")
    parser.add_argument("--fault-ratio", type=float, default=0.0,
                        help="late, duplicate and malformed ratio each (default 0)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    extra = ["--compression", args.compression]
    if args.fault_ratio:
        extra += ["--late-ratio", str(args.fault_ratio), "--duplicate-ratio", str(args.fault_ratio),
                  "--malformed-ratio", str(args.fault_ratio)]
    with broker_at(args.bootstrap_servers) as bootstrap:
        results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                               "load_before": os.getloadavg()}, "count_per_process": args.count,
                                   "compression": args.compression, "fault_ratio": args.fault_ratio}
        results["model_only_events_per_s"] = round(model_only(min(args.count, 500_000)), 1)
        results["runs"] = [best_run(bootstrap, processes, args.count * processes, extra, args.repeat)
                           for processes in (1, args.processes)]
    results["machine"]["load_after"] = os.getloadavg()
    print_table(results)
    if args.out:
        write_report(args.out, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
