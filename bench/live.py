"""Sustained throughput and freshness of the running job, at fixed generator rates.

    .venv/bin/python -m bench.live [--rates 2000,5000,10000] [--seconds 60] [--warmup 300] [--trigger "1 second"]
                                   [--max-offsets N] [--shuffle-partitions N] [--users 10000] [--items 2000]
                                   [--clean] [--dry-run] [--no-verify] [--job-env PIPELINE_KEY=VALUE ...]
                                   [--spark-conf KEY=VALUE ...] [--out .stack/bench/live.json]

Starts its own Apache Kafka and MongoDB-protocol server (free ports, temporary folders). For each rate, on a fresh
topic, database and checkpoint:
  1. starts `spark-submit jobs/aggregate.py` (continuous trigger, every output and the default alert rules on) and
     waits for its query to start;
  2. produces traffic as outside producers send it (bench.traffic, raw bytes: 3 % malformed of every dead-letter
     reason, 1 % late, 2 % redelivered; --clean for none) at that rate for warmup + seconds, sampling every second
     the records in the topic and the records the job has committed (the offsets of its checkpoint's last committed
     batch), the CPU of each component and the resident memory of the job's JVM and Python processes;
  3. during the measured window, produces a probe event every 200 ms (a user id nobody else has) and measures two
     freshnesses from handing the probe to the producer: to its own `user_stats` document being readable (one
     indexed find_one per probe and poll), and to the dashboard's collections holding it (the `totals` document
     naming a batch whose end offsets, read from the checkpoint's offset log, are past the probe's offset: the
     minute counts and the top lists are written before it). A probe never seen within 30 s of the end counts as
     missing and as infinitely late in the percentiles;
  4. after the generator stops, waits for the job to catch up, stops it, and compares every document with the
     independent recomputation from the topic (a fast wrong run does not count).
processed/s is committed offsets over the window. The job keeps up at a rate when its lag stays bounded: the highest
lag in the second half of the window is at most the first half's plus one second of input, and it drains within
60 s after the generator stops. --dry-run: the job computes and builds every document but stores none (Spark's own
ceiling; no freshness, no recomputation: the committed offsets are checked instead).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cpu import CpuSampler
from bench.report import write_report
from bench.services import local_services

if TYPE_CHECKING:
    from pymongo.database import Database

    from stack import KafkaBroker, MongoServer

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
QUERY = "interactions"  # the job's one streaming query
DRY_RUN_QUERY = f"{QUERY}-dry-run"  # a dry run's: on its own checkpoint, <checkpoint-dir>-dry-run


@dataclass
class RateResult:
    rate: int
    produced: int = 0
    produced_per_s: float = 0.0
    processed_per_s: float = 0.0
    lag_max_first_half: int = 0
    lag_max_second_half: int = 0
    drain_s: float | None = None
    kept_up: bool = False
    freshness_s: dict = field(default_factory=dict)            # to the probe's own user_stats document
    dashboard_freshness_s: dict = field(default_factory=dict)  # to totals and minute_counts holding the probe
    probes: int = 0
    probes_seen: int = 0
    probes_missing: int = 0
    batches: int = 0
    batch_s_median: float = 0.0
    batch_s_max: float = 0.0
    documents_per_batch: float = 0.0
    mongo_write_s_per_batch: float = 0.0
    upserts_per_s: float | None = None
    cores: dict = field(default_factory=dict)
    rss_mib: dict = field(default_factory=dict)   # at the end of the window, per component and program
    rss_timeline: list = field(default_factory=list)  # (seconds into the window, rss_mib) every 5 minutes
    phases: dict = field(default_factory=dict)    # medians after warm-up: batch ms, rows, addBatch ms, state commit
    correct: bool | None = None
    mismatches: list = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Probes:
    """Produces uniquely keyed events and records when their per-user document becomes readable in MongoDB, and
    when the dashboard's collections hold them (`totals` names a batch whose offsets are past the probe's)."""

    def __init__(self, bootstrap: str, topic: str, db, checkpoint: Path, interval: float = 0.2):
        from confluent_kafka import Producer
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.topic, self.users, self.totals, self.interval = topic, db["user_stats"], db["totals"], interval
        self.offsets_log = checkpoint / QUERY / "offsets"
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.at: dict[str, tuple[int, int]] = {}            # probe -> (partition, offset), once acknowledged
        self.on_dashboard: dict[str, float] = {}
        self.run = uuid.uuid4().hex[:8]
        self._stop, self._done = threading.Event(), threading.Event()
        self._threads = [threading.Thread(target=self._produce, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]

    def start(self) -> Probes:
        for thread in self._threads:
            thread.start()
        return self

    def stop_producing(self) -> None:
        self._stop.set()
        self._threads[0].join()
        self.producer.flush(10)

    def wait_seen(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._done.set()
        self._threads[1].join()

    def delays(self) -> list[float]:
        """Every probe's delay to its own document; a probe never seen is infinitely late."""
        return [self.seen[user] - sent if user in self.seen else float("inf") for user, sent in self.sent.items()]

    def dashboard_delays(self) -> list[float]:
        """Every probe's delay to the dashboard's collections; a probe never seen is infinitely late."""
        return [self.on_dashboard[user] - sent if user in self.on_dashboard else float("inf")
                for user, sent in self.sent.items()]

    def _produce(self) -> None:
        number = 0
        while not self._stop.wait(self.interval):
            number += 1
            user = f"probe-{self.run}-{number:05d}"
            now = dt.datetime.now(dt.UTC)
            event = {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": None, "interaction_type": "login",
                     "platform": "web", "session_id": f"s-{user}", "country": "DE", "price": None,
                     "quantity": None,
                     "event_time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"}
            self.sent[user] = time.time()
            self.producer.produce(self.topic, json.dumps(event).encode(), key=user.encode(),
                                  on_delivery=self._acknowledged(user))
            self.producer.poll(0)

    def _acknowledged(self, user: str) -> Callable[[Any, Any], None]:
        def record(error: Any, message: Any) -> None:
            if error is None:
                self.at[user] = (message.partition(), message.offset())
        return record

    def _poll(self) -> None:
        batch = -1
        while not self._done.is_set():
            self.producer.poll(0)
            for user in [user for user in list(self.sent) if user not in self.seen]:
                if self.users.find_one({"_id": user}, {"_id": 1}) is not None:  # indexed: one document read
                    self.seen.setdefault(user, time.time())
            applied = (self.totals.find_one({"_id": "all"}, {"batch_id": 1}) or {}).get("batch_id", -1)
            if applied > batch:
                batch, now = applied, time.time()
                ends = self._batch_ends(batch)
                for user, (partition, offset) in list(self.at.items()):
                    if user not in self.on_dashboard and offset < ends.get(partition, -1):
                        self.on_dashboard[user] = now
            time.sleep(0.05)

    def _batch_ends(self, batch: int) -> dict[int, int]:
        """The end offset (exclusive) per partition of a batch, from the job's offset log."""
        try:
            lines = (self.offsets_log / str(batch)).read_text().splitlines()
        except FileNotFoundError:
            return {}
        return {int(p): int(o) for p, o in json.loads(lines[2]).get(self.topic, {}).items()}


class LagSampler:
    """Every second: records in the topic, and records the job has committed (its checkpoint's offsets)."""

    def __init__(self, bootstrap: str, topic: str, checkpoint: Path, query: str = QUERY):
        from confluent_kafka import Consumer, TopicPartition
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lag"})
        self.topic = topic
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.checkpoint, self.query = checkpoint, query
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, in topic, processed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()

    def sample(self) -> tuple[float, int, int]:
        from ops.status import checkpoint_offsets

        in_topic = sum(self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.partitions)
        done = checkpoint_offsets(str(self.checkpoint), self.query).get(self.topic, {})
        return time.monotonic(), in_topic, sum(int(offset) for offset in done.values())

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append(self.sample())


def start_job(work: Path, *, bootstrap: str, topic: str, uri: str, database: str,
              args: argparse.Namespace) -> tuple[subprocess.Popen, Path]:
    """`spark-submit jobs/aggregate.py` with the run's options, once its query has started: (process, its log)."""
    log = work / f"job-{database}.log"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "PIPELINE_MONGO_URI": uri, **dict(setting.split("=", 1) for setting in args.job_env)}
    command = ["spark-submit", *[arg for conf in args.spark_conf for arg in ("--conf", conf)], "jobs/aggregate.py",
               "--bootstrap-servers", bootstrap, "--topic", topic, "--database", database,
               "--checkpoint-dir", str(work / f"checkpoint-{database}"), "--trigger-interval", args.trigger,
               "--max-offsets-per-trigger", str(args.max_offsets), "--prometheus-port", "0",
               "--starting-offsets", "earliest"] + (["--dry-run"] if args.dry_run else []) + \
        (["--shuffle-partitions", str(args.shuffle_partitions)] if args.shuffle_partitions else [])
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    deadline = time.monotonic() + 180
    while f"started {QUERY}" not in log.read_text():
        if job.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the job did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return job, log


def stop_job(job: subprocess.Popen) -> None:
    job.send_signal(signal.SIGTERM)
    try:
        job.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    from contract.topics import TOPIC_CONFIG

    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config=TOPIC_CONFIG)])[topic].result(30)


@dataclass
class Window:
    """What one rate's run under load recorded, for the figures worked out once the job has stopped."""

    lag: LagSampler
    cpu: CpuSampler
    probes: Probes | None
    start: float  # monotonic clock, the measured window's
    end: float
    drain_s: float | None  # from the generator's end to the job's committed offsets reaching the topic's end


def measure_rate(args: argparse.Namespace, work: Path, broker: KafkaBroker, mongo: MongoServer,
                 rate: int) -> RateResult:
    from pymongo import MongoClient

    result = RateResult(rate=rate)
    topic, database = f"live-{rate}", f"live_{rate}"
    create_topic(broker.bootstrap_servers, topic)
    db: Database[dict[str, Any]] = MongoClient(mongo.uri, tz_aware=True)[database]
    window = run_under_load(args, work, broker=broker, mongo=mongo, rate=rate, topic=topic, database=database,
                            db=db)
    result.drain_s = window.drain_s
    result.rss_mib = window.cpu.rss_mib()
    result.rss_timeline = window.cpu.rss_timeline
    lag_figures(result, window)
    result.cores = {name: round(value, 2) for name, value in window.cpu.cores().items()}
    batch_figures(result, db)
    result.phases = phase_figures(db)
    if window.probes:
        freshness_figures(result, window.probes)
        if result.drain_s is not None and not args.no_verify:
            verify(result, broker.bootstrap_servers, topic, db)
    else:
        last = window.lag.samples[-1]
        result.correct = result.drain_s is not None and last[2] == last[1]
    return result


def run_under_load(args: argparse.Namespace, work: Path, *, broker: KafkaBroker, mongo: MongoServer, rate: int,
                   topic: str, database: str, db: Database[dict[str, Any]]) -> Window:
    """The job and the generator at `rate` for warmup + seconds, sampled; then the drain, and the job stopped."""
    bootstrap = broker.bootstrap_servers
    job, _ = start_job(work, bootstrap=bootstrap, topic=topic, uri=mongo.uri, database=database, args=args)
    try:
        generator = subprocess.Popen(
            [sys.executable, "-m", "bench.traffic", "--bootstrap-servers", bootstrap, "--topic", topic,
             "--rate", str(rate), "--seconds", str(args.warmup + args.seconds), "--seed", str(rate),
             "--users", str(args.users), "--items", str(args.items), *([] if args.clean else ["--mixed"])],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(work / f"traffic-{rate}.log").open("w"))
        lag = (LagSampler(bootstrap, topic, work / f"checkpoint-{database}-dry-run", DRY_RUN_QUERY) if args.dry_run
               else LagSampler(bootstrap, topic, work / f"checkpoint-{database}")).start()
        time.sleep(args.warmup)
        cpu = CpuSampler({"spark job": job.pid, "mongodb server": mongo.pid(), "kafka broker": broker.pid(),
                          "producer": generator.pid}).start()
        window_start = time.monotonic()
        probes = None if args.dry_run else Probes(bootstrap, topic, db, work / f"checkpoint-{database}").start()
        generator.wait()
        window_end = time.monotonic()
        cpu.stop()
        if probes:
            probes.stop_producing()
        drain_s = drain(lag, args.drain_timeout)
        if probes:
            probes.wait_seen(timeout=30)
        lag.stop()
    finally:
        stop_job(job)
    return Window(lag, cpu, probes, window_start, window_end, drain_s)


def drain(lag: LagSampler, timeout: float) -> float | None:
    """Seconds until the job has committed every record in the topic; None if it has not within `timeout`."""
    drain_started = time.monotonic()
    while True:
        _, in_topic, processed = lag.sample()
        if processed >= in_topic:
            return time.monotonic() - drain_started
        if time.monotonic() - drain_started > timeout:
            return None
        time.sleep(0.5)


def lag_figures(result: RateResult, window: Window) -> None:
    """Rates over the measured window, and whether the lag stayed bounded."""
    samples = window.lag.samples
    measured = [s for s in samples if window.start <= s[0] <= window.end]
    half = len(measured) // 2
    lags = [in_topic - processed for _, in_topic, processed in measured]
    result.lag_max_first_half, result.lag_max_second_half = max(lags[:half] or [0]), max(lags[half:] or [0])
    span = measured[-1][0] - measured[0][0]
    result.produced_per_s = (measured[-1][1] - measured[0][1]) / span
    result.processed_per_s = (measured[-1][2] - measured[0][2]) / span
    result.produced = samples[-1][1] if samples else 0
    result.kept_up = (result.drain_s is not None and result.drain_s <= 60 and
                      result.lag_max_second_half <= result.lag_max_first_half + result.rate)


def batch_figures(result: RateResult, db: Database[dict[str, Any]]) -> None:
    """From the job's own `batches` records, leaving out the first batch with rows."""
    batches = list(db["batches"].find({"query": {"$in": [QUERY, DRY_RUN_QUERY]}, "input_rows": {"$gt": 0},
                                       "processed_at": {"$exists": True}}).sort("batch_id", 1))[1:]  # not the first
    if batches:
        seconds = [b["duration_ms"] / 1000 for b in batches if "duration_ms" in b]
        result.batches = len(batches)
        result.batch_s_median, result.batch_s_max = statistics.median(seconds), max(seconds)
        result.documents_per_batch = statistics.mean(b.get("changed_documents", 0) for b in batches)
        result.mongo_write_s_per_batch = statistics.mean(b.get("mongo_write_ms", 0) for b in batches) / 1000
        mongo_s = sum(b.get("mongo_write_ms", 0) for b in batches) / 1000
        result.upserts_per_s = sum(b.get("changed_documents", 0) for b in batches) / mongo_s if mongo_s else None


def freshness_figures(result: RateResult, probes: Probes) -> None:
    delays = probes.delays()
    result.probes = len(delays)
    result.probes_seen = sum(1 for d in delays if d != float("inf"))
    result.probes_missing = result.probes - result.probes_seen
    if delays:
        result.freshness_s = {"p50": percentile(delays, 50), "p95": percentile(delays, 95),
                              "p99": percentile(delays, 99), "max": max(delays)}
    dashboard = probes.dashboard_delays()
    if dashboard:
        result.dashboard_freshness_s = {"p50": percentile(dashboard, 50), "p95": percentile(dashboard, 95),
                                        "p99": percentile(dashboard, 99), "max": max(dashboard)}


def verify(result: RateResult, bootstrap: str, topic: str, db: Database[dict[str, Any]]) -> None:
    """Every document against the independent recomputation from the topic."""
    from conf import load_config
    from ops.verify import compare, read_topic, recompute_for

    records = read_topic(bootstrap, topic)
    report = compare(recompute_for(load_config(env={}), records), db)
    result.correct = report.ok
    result.mismatches = report.lines()[:20] if not report.ok else []


def phase_figures(db) -> dict:
    """Medians over the job's batches after the first two (warm-up): where a batch's time goes."""
    batches = list(db["batches"].find({"query": {"$in": [QUERY, DRY_RUN_QUERY]}, "duration_ms": {"$exists": True},
                                       "input_rows": {"$gt": 0}}).sort("batch_id", 1))[2:]
    if not batches:
        return {}
    return {"batches": len(batches), "batch_ms": statistics.median(b["duration_ms"] for b in batches),
            "rows": statistics.median(b["input_rows"] for b in batches),
            "add_batch_ms": statistics.median(b.get("phases_ms", {}).get("addBatch", 0) for b in batches),
            "summary_ms": statistics.median(b.get("summary_ms", 0) for b in batches),
            "connector_ms": statistics.median(b.get("mongo_write_ms", 0) for b in batches),
            "derived_ms": statistics.median(b.get("derived_ms", 0) for b in batches),
            "state_commit_ms": statistics.median(b.get("state_commit_ms", 0) for b in batches),
            "state_rows": batches[-1].get("state_rows"),
            "state_mib": (batches[-1].get("state_memory_bytes") or 0) / 2 ** 20}


def print_table(results: list[RateResult]) -> None:
    print(f"\n{'rate/s':>8} {'in/s':>8} {'done/s':>8} {'lag 1st':>9} {'lag 2nd':>9} {'drain s':>8} {'keeps up':>8} "
          f"{'p50 s':>6} {'p95 s':>6} {'p99 s':>6} {'missing':>7} {'batch s':>8} {'docs/b':>8} {'upsert/s':>8} "
          f"{'correct':>7}")
    for r in results:
        f = r.freshness_s
        print(f"{r.rate:>8,} {r.produced_per_s:>8,.0f} {r.processed_per_s:>8,.0f} {r.lag_max_first_half:>9,} "
              f"{r.lag_max_second_half:>9,} {r.drain_s if r.drain_s is not None else float('nan'):>8.1f} "
              f"{'yes' if r.kept_up else 'NO':>8} {f.get('p50', float('nan')):>6.2f} "
              f"{f.get('p95', float('nan')):>6.2f} "
              f"{f.get('p99', float('nan')):>6.2f} {r.probes_missing:>7} {r.batch_s_median:>8.2f} "
              f"{r.documents_per_batch:>8,.0f} "
              f"{(r.upserts_per_s or 0):>8,.0f} {str(r.correct):>7}")
    print("\nFreshness to the dashboard's collections (totals, minute counts), s: p50 / p95 / p99 / max")
    for r in results:
        d = r.dashboard_freshness_s
        if d:
            print(f"{r.rate:>8,}/s  {d['p50']:.2f} / {d['p95']:.2f} / {d['p99']:.2f} / {d['max']:.2f}")
    print("\nCPU (cores busy, average over the measured window):")
    for r in results:
        print(f"{r.rate:>8,}/s  " + "  ".join(f"{name} {value:.2f}" for name, value in r.cores.items()))
    print("\nResident memory at the end of the window (MiB):")
    for r in results:
        print(f"{r.rate:>8,}/s  " + "  ".join(f"{name}: " + ", ".join(f"{p} {m:,.0f}" for p, m in programs.items())
                                             for name, programs in r.rss_mib.items()))
    print("\nA batch (medians after warm-up): ms / rows / addBatch / summary / connector / totals and lists / state "
          "commit ms; state rows, MiB:")
    for r in results:
        f = r.phases
        if f:
            print(f"{r.rate:>8,}/s  {f['batch_ms']:.0f} / {f['rows']:.0f} / {f['add_batch_ms']:.0f} / "
                  f"{f['summary_ms']:.0f} / {f['connector_ms']:.0f} / {f['derived_ms']:.0f} / "
                  f"{f['state_commit_ms']:.0f}; {f['state_rows'] or 0:,} rows, {f['state_mib']:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="2000,5000,10000", help="comma-separated generator rates, events/s")
    parser.add_argument("--seconds", type=int, default=60, help="measured window per rate")
    parser.add_argument("--warmup", type=int, default=300,
                        help="seconds of load before the window opens (default 300: the deduplication's state fills "
                             "for job.duplicate_window plus job.max_partition_lag, then the hour's slots and the "
                             "windows settle)")
    parser.add_argument("--trigger", help="the job's trigger interval (default: conf's job.trigger_interval)")
    parser.add_argument("--shuffle-partitions", type=int, help="state partitions (default: conf)")
    parser.add_argument("--max-offsets", type=int,
                        help="records per micro-batch at most (default: conf's job.max_offsets_per_trigger)")
    parser.add_argument("--drain-timeout", type=float, default=120)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--dry-run", action="store_true", help="sinks store nothing: Spark's own ceiling")
    parser.add_argument("--clean", action="store_true", help="ordinary events only (default: mixed traffic)")
    parser.add_argument("--job-env", action="append", default=[], metavar="PIPELINE_KEY=VALUE",
                        help="a setting for the job through its environment (repeatable), e.g. "
                             "PIPELINE_JOB_MAX_PARTITION_LAG='2 minutes'")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the recomputation at the end (it holds every record in memory: not for an hour's)")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Spark setting for the job (repeatable), e.g. a profiler's JVM options")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "live.json"))
    args = parser.parse_args()
    from conf import load_config
    job = load_config(env={}).job
    args.trigger = args.trigger or job.trigger_interval
    args.max_offsets = args.max_offsets or job.max_offsets_per_trigger

    results: list[RateResult] = []
    with local_services("bench-live-") as (work, broker, mongo):
        for rate in (int(r) for r in args.rates.split(",")):
            print(f"rate {rate:,} events/s ...", flush=True)
            results.append(measure_rate(args, work, broker, mongo, rate))
            print_table(results[-1:])
    print_table(results)
    print()
    write_report(args.out, trigger=args.trigger, max_offsets_per_trigger=args.max_offsets, job_env=args.job_env,
                 traffic="clean" if args.clean else "mixed",
                 shuffle_partitions=args.shuffle_partitions, spark_conf=args.spark_conf, users=args.users,
                 items=args.items, dry_run=args.dry_run, results=[asdict(r) for r in results])
    print(f"logs: {work}")
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
