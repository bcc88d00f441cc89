"""Sustained events/s of the streaming job on a Spark standalone cluster with 1, 2, ... workers, same input.

Starts its own Apache Kafka, MongoDB-protocol server (free ports, temporary directory), produces N seeded events
once into a topic of P partitions, then for each worker count starts a fresh cluster (master + W workers of C cores)
and runs the job on the whole backlog the user's way (spark-submit --master spark://... --py-files ...
--available-now) with max_offsets_per_trigger = N / batches, into a fresh database and checkpoint.

    .venv/bin/python -m bench.cluster_scaling [--workers 1,2] [--worker-cores 1] [--events 200000] [--partitions 4]
                                              [--out .stack/bench/cluster_scaling.json]

"Sustained" leaves out the JVM start and the first micro-batch (warm-up): the rows of batches 1..k over the time
from the end of batch 0 to the end of batch k, from the job's own progress records (MongoDB `batches`; the job is
one streaming query). The sink's own ceiling is measured beside it (bulk upserts/s into the same server) with the
documents the job changed per batch, since the local MongoDB-protocol server is a single-core process that caps
writes (bench/sink_ceiling.py); few distinct users and items keep the writes per batch small, so that Spark's own
scaling is measured.
Every process shares this machine's cores: on 2 cores, 2 workers of 1 core also compete with the broker, the
database and the driver, which bounds the ratio.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pymongo import MongoClient

from bench.report import write_report
from stack import KafkaBroker, MongoServer, StackError, free_ports
from stack.process import PROJECT_ROOT
from stack.spark_cluster import SparkCluster

log = logging.getLogger("bench.cluster_scaling")


@dataclass
class Run:
    workers: int
    worker_cores: int
    total_cores: int
    events: int
    cluster_start_s: float
    submit_wall_s: float
    batches: int
    job_events_per_s: float
    per_query_events_per_s: dict[str, float] = field(default_factory=dict)
    first_batch_s: float = 0.0
    aggregates_batch_s: float = 0.0
    changed_documents_per_batch: float = 0.0
    sink_s_per_batch: float = 0.0  # changed documents / the sink's measured upserts/s
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def produce(bootstrap: str, topic: str, *, events: int, partitions: int, seed: int, users: int, items: int) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap, "--topic", topic,
                    "--partitions", str(partitions), "--rate", "max", "--count", str(events), "--seed", str(seed),
                    "--users", str(users), "--items", str(items), "--progress-interval", "60"],
                   cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - began


def build_archive(out: Path) -> Path:
    subprocess.run([str(PROJECT_ROOT / "bin" / "package-job"), str(out)], check=True, capture_output=True)
    return out


def submit(cluster: SparkCluster, archive: Path, *, bootstrap: str, topic: str, mongo_uri: str, database: str,
           checkpoint: Path, shuffle_partitions: int, max_offsets: int, log_file: Path) -> float:
    """The job over the whole backlog on `cluster`, the user's way (--py-files, --available-now): seconds it ran."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = ["spark-submit", "--master", cluster.url, "--py-files", str(archive),
               "--conf", "spark.ui.enabled=false", str(PROJECT_ROOT / "jobs" / "aggregate.py"),
               "--bootstrap-servers", bootstrap, "--topic", topic, "--mongo-uri", mongo_uri, "--database", database,
               "--checkpoint-dir", str(checkpoint), "--shuffle-partitions", str(shuffle_partitions),
               "--max-offsets-per-trigger", str(max_offsets), "--available-now"]
    began = time.perf_counter()
    with open(log_file, "w") as output:
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                timeout=3600)
    if result.returncode != 0:
        raise StackError(f"spark-submit exited {result.returncode}; see {log_file}")
    return time.perf_counter() - began


def sink_ceiling(uri: str, documents: int = 10_000, bulk: int = 5000) -> float:
    """Upserts/s of the MongoDB-protocol server for documents shaped like user_stats (the job's pattern: bulk
    UpdateOne $set upserts, ordered=False), new keys."""
    from pymongo import UpdateOne

    with MongoClient(uri, document_class=dict) as client:
        collection = client["bench_sink_ceiling"]["user_stats"]
        operations = [UpdateOne({"_id": f"u{i:06d}"}, {"$set": {
            "interactions": i % 97, "view": i % 50, "click": i % 20, "add_to_cart": i % 5, "purchase": i % 3,
            "revenue": i * 0.37, "distinct_items": i % 40, "last_platform": "web",
            "first_event_time": dt.datetime(2026, 1, 1), "last_event_time": dt.datetime(2026, 1, 2)}}, upsert=True)
            for i in range(documents)]
        began = time.perf_counter()
        for start in range(0, documents, bulk):
            collection.bulk_write(operations[start:start + bulk], ordered=False)
        rate = documents / (time.perf_counter() - began)
        client.drop_database("bench_sink_ceiling")
    return rate


def sustained_rates(db) -> tuple[dict[str, float], float, int, float, float]:
    """Per query: rows of batches >= 1 / (end of the last batch - end of batch 0), from the progress records.
    Also the first batch's duration, the batch count, the mean batch duration (batches >= 1) and the documents a
    batch changed."""
    rates, first_batch_s, batches = {}, 0.0, 0
    progress = [d for d in db.batches.find() if d.get("input_rows") and "duration_ms" in d and "processed_at" in d]
    for query in sorted({d["query"] for d in progress}):
        rows = sorted((d for d in progress if d["query"] == query), key=lambda d: d["batch_id"])
        if len(rows) < 2:
            raise StackError(f"query {query} ran {len(rows)} batch with rows: raise --events or --batches")

        def end(doc) -> dt.datetime:
            return doc["processed_at"] + dt.timedelta(milliseconds=doc["duration_ms"])

        window = (end(rows[-1]) - end(rows[0])).total_seconds()
        rates[query] = sum(d["input_rows"] for d in rows[1:]) / window
        first_batch_s = max(first_batch_s, rows[0]["duration_ms"] / 1000)
        batches = max(batches, len(rows))
    if not rates:
        raise StackError("the job recorded no progress in MongoDB (collection batches)")
    aggregates = [d for d in progress if d["batch_id"] > 0]
    mean_batch_s = sum(d["duration_ms"] for d in aggregates) / 1000 / max(1, len(aggregates))
    changed = sum(d.get("changed_documents", 0) for d in aggregates) / max(1, len(aggregates))
    return rates, first_batch_s, batches, mean_batch_s, changed


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[int]]:
    """The options, and the worker counts to compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2 (default 1,2)")
    parser.add_argument("--worker-cores", type=int, default=1, help="cores per worker (default 1)")
    parser.add_argument("--worker-memory", default="2g", help="memory per worker for its executor (default 2g)")
    parser.add_argument("--events", type=int, default=200_000, help="events in the topic, the same for every run")
    parser.add_argument("--partitions", type=int, default=4, help="Kafka partitions, >= the most cores (default 4)")
    parser.add_argument("--batches", type=int, default=8, help="micro-batches the backlog is cut into (default 8)")
    parser.add_argument("--shuffle-partitions", type=int, default=4, help="state partitions (default 4)")
    parser.add_argument("--users", type=int, default=1000, help="distinct users (few: small sink writes)")
    parser.add_argument("--items", type=int, default=200, help="distinct items")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".stack" / "bench" / "cluster_scaling.json")
    args = parser.parse_args(argv)
    try:
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers must be a comma-separated list of numbers, not {args.workers!r}")
    if not counts or min(counts) < 1:
        parser.error("--workers needs counts >= 1")
    if args.partitions < max(counts) * args.worker_cores:
        parser.error(f"--partitions {args.partitions} < {max(counts) * args.worker_cores} cores: some would idle")
    return args, counts


def measure(args: argparse.Namespace, counts: list[int], logs: Path) -> tuple[list[Run], float]:
    """Start the broker and database, produce the backlog once, measure the sink's ceiling, then run the job on a
    fresh cluster of each worker count: (the runs, the ceiling in upserts/s)."""
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        k1, k2, m = free_ports(3)
        kafka = KafkaBroker(root / "kafka", port=k1, controller_port=k2)
        mongo = MongoServer(root / "mongo", port=m)
        try:
            kafka.start(timeout=180)
            mongo.start(timeout=180)
            topic = "bench-cluster"
            seconds = produce(kafka.bootstrap_servers, topic, events=args.events, partitions=args.partitions,
                              seed=args.seed, users=args.users, items=args.items)
            log.info("produced %d events into %d partitions in %.1f s", args.events, args.partitions, seconds)
            ceiling = sink_ceiling(mongo.uri)
            log.info("sink ceiling: %.0f upserts/s (bulk UpdateOne $set, new keys)", ceiling)
            archive = build_archive(root / "interactions.zip")
            for workers in counts:
                run = measure_workers(args, workers, root=root, archive=archive, kafka=kafka, mongo=mongo,
                                      topic=topic, ceiling=ceiling, logs=logs)
                runs.append(run)
                log.info("%d workers: %s events/s sustained (per query %s), spark-submit %.0f s, load %.1f -> %.1f",
                         workers, f"{run.job_events_per_s:,}", run.per_query_events_per_s, run.submit_wall_s,
                         run.load_before[0], run.load_after[0])
        finally:
            mongo.stop()
            kafka.stop()
    return runs, ceiling


def measure_workers(args: argparse.Namespace, workers: int, *, root: Path, archive: Path, kafka: KafkaBroker,
                    mongo: MongoServer, topic: str, ceiling: float, logs: Path) -> Run:
    """The job over the whole topic on a fresh cluster of `workers` workers, into a fresh database."""
    load_before = os.getloadavg()
    cluster = SparkCluster.on_free_ports(root / f"spark-{workers}", workers=workers,
                                         worker_cores=args.worker_cores, worker_memory=args.worker_memory)
    began = time.perf_counter()
    try:
        cluster.start(timeout=240)
        started = time.perf_counter() - began
        database = f"bench_w{workers}"
        wall = submit(cluster, archive, bootstrap=kafka.bootstrap_servers, topic=topic, mongo_uri=mongo.uri,
                      database=database, checkpoint=root / f"checkpoint-{workers}",
                      shuffle_partitions=args.shuffle_partitions, max_offsets=max_offsets(args),
                      log_file=logs / f"submit-{workers}-workers.log")
    finally:
        cluster.stop()
    with MongoClient(mongo.uri, tz_aware=True, document_class=dict) as client:
        rates, first_s, batches, batch_s, changed = sustained_rates(client[database])
    return Run(workers=workers, worker_cores=args.worker_cores, total_cores=workers * args.worker_cores,
               events=args.events, cluster_start_s=round(started, 1), submit_wall_s=round(wall, 1), batches=batches,
               job_events_per_s=round(min(rates.values())),
               per_query_events_per_s={q: round(r) for q, r in rates.items()}, first_batch_s=round(first_s, 1),
               aggregates_batch_s=round(batch_s, 2), changed_documents_per_batch=round(changed),
               sink_s_per_batch=round(changed / ceiling, 2), load_before=load_before, load_after=os.getloadavg())


def max_offsets(args: argparse.Namespace) -> int:
    """Records per micro-batch: the backlog cut into --batches."""
    return max(1, args.events // args.batches)


def print_table(args: argparse.Namespace, runs: list[Run], ceiling: float) -> None:
    base = runs[0].job_events_per_s or 1
    print(f"\nthe job on a Spark standalone cluster: {args.events:,} events, {args.partitions} Kafka partitions, "
          f"{args.shuffle_partitions} shuffle partitions, {args.batches} batches of <= {max_offsets(args):,}, "
          f"{os.cpu_count()} cores on this machine; sink ceiling {ceiling:,.0f} upserts/s")
    print(f"{'workers':>7} {'cores':>5} {'events/s':>9} {'ratio':>6} {'1st batch s':>11} {'batch s':>7} "
          f"{'docs/batch':>10} {'sink s':>6} {'submit s':>8} {'load 1m':>10}  per query events/s")
    for r in runs:
        queries = ", ".join(f"{q} {v:,}" for q, v in r.per_query_events_per_s.items())
        print(f"{r.workers:>7} {r.total_cores:>5} {r.job_events_per_s:>9,} {r.job_events_per_s / base:>6.2f} "
              f"{r.first_batch_s:>11.1f} {r.aggregates_batch_s:>7.2f} {r.changed_documents_per_batch:>10,} "
              f"{r.sink_s_per_batch:>6.2f} {r.submit_wall_s:>8.0f} {r.load_before[0]:>4.1f}->{r.load_after[0]:<4.1f}"
              f"  {queries}")
    print("events/s: sustained (first batch left out), the slowest query's; batch s: mean aggregates batch; "
          "sink s: docs/batch at the sink's ceiling")


def main(argv: list[str] | None = None) -> int:
    args, counts = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logs = args.out.with_suffix("")  # spark-submit's output per run, kept for a look at Spark's side
    logs.mkdir(parents=True, exist_ok=True)
    try:
        runs, ceiling = measure(args, counts, logs)
    except (StackError, subprocess.CalledProcessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print_table(args, runs, ceiling)
    base = runs[0].job_events_per_s or 1
    print()
    write_report(args.out, benchmark="cluster_scaling", when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 machine={"cores": os.cpu_count(), "platform": platform.platform()},
                 settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                 sink_ceiling_upserts_per_s=round(ceiling), runs=[asdict(r) for r in runs],
                 ratio={str(r.workers): round(r.job_events_per_s / base, 2) for r in runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
