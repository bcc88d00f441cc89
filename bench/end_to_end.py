"""End-to-end throughput over a backlog: the job, the job without its database, a batching Python consumer, and one
update per message, side by side on the same events and the same MongoDB-protocol server.

    .venv/bin/python -m bench.end_to_end [--events 1000000] [--batch N (conf: 500000)] [--users 10000] [--items 2000]
                                         [--baseline-seconds 30] [--skip job,dry_run,peer,baseline]
                                         [--out .stack/bench/end_to_end.json]

Starts its own Apache Kafka and MongoDB-protocol server (free ports, temporary folders), produces a seeded stream
with the generator (0.5 % malformed, 0.5 % duplicates), then runs one after the other:
  * job: `spark-submit jobs/aggregate.py --available-now` over the backlog into MongoDB, as a user runs it. Reported
    from the process's start to its exit ("with start-up"), from the start of the first batch to the end of the last
    ("batches"), and over the batches after the first ("marginal", the rate a longer backlog tends to). Checked
    against the independent recomputation (ops.verify): a fast wrong run does not count.
  * dry_run: the same with --dry-run: every document built, none stored (Spark's own rate on this machine).
  * peer: bench.peer_consumer, the best batching consumer one person could write (user, item and minute
    collections only), to the end of the topic.
  * baseline: one Python consumer that updates MongoDB once per message (`update_one` with `$inc` on the user's
    document, the simplest consumer's way), for --baseline-seconds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import write_report
from bench.services import local_services

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("job", "dry_run", "peer", "baseline")


def produce(bootstrap: str, topic: str, events: int, users: int, items: int) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap, "--topic", topic,
                    "--partitions", "4", "--count", str(events), "--rate", "max", "--seed", "1",
                    "--users", str(users), "--items", str(items), "--processes", "2",
                    "--malformed-ratio", "0.005", "--duplicate-ratio", "0.005", "--progress-interval", "3600"],
                   check=True, cwd=ROOT, capture_output=True)
    return events / (time.monotonic() - started)


def run_job(bootstrap: str, topic: str, *, mongo_uri: str, database: str, checkpoint: Path, batch: int,
            flags: Sequence[str] = ()) -> tuple[dt.datetime, float]:
    """`spark-submit jobs/aggregate.py --available-now` over the topic, with `flags` added: (when the process
    started, seconds it ran)."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "PIPELINE_ALERTS_RULES_FILE": "", "PIPELINE_HEALTH_PROMETHEUS_PORT": "0", "PIPELINE_MONGO_URI": mongo_uri}
    began, started = dt.datetime.now(dt.UTC), time.monotonic()
    result = subprocess.run(["spark-submit", "jobs/aggregate.py", "--bootstrap-servers", bootstrap, "--topic", topic,
                             "--database", database, "--checkpoint-dir", str(checkpoint),
                             "--max-offsets-per-trigger", str(batch), "--available-now", *flags],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the job failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return began, time.monotonic() - started


def batch_figures(db, began: dt.datetime, wall_s: float) -> dict:
    """Rates from the job's own per-batch records (`batches`): trigger times and durations."""
    batches = list(db.batches.find({"input_rows": {"$gt": 0}}).sort("batch_id", 1))
    first, last = batches[0], batches[-1]
    span = (last["processed_at"] - first["processed_at"]).total_seconds() + last["duration_ms"] / 1000
    rows = sum(b["input_rows"] for b in batches)
    later = batches[1:]
    later_span = ((last["processed_at"] - later[0]["processed_at"]).total_seconds() + last["duration_ms"] / 1000
                  if later else None)
    written = sum(b.get("changed_documents", 0) for b in batches)
    connector_s = sum(b.get("mongo_write_ms", 0) for b in batches) / 1000
    return {"records": rows, "batches": len(batches), "wall_s": wall_s, "batches_s": span,
            "records_per_s_with_startup": rows / wall_s, "records_per_s": rows / span,
            "marginal_records_per_s": sum(b["input_rows"] for b in later) / later_span if later else None,
            # from starting spark-submit: to the first batch's trigger, and to its documents written
            "startup_s": (first["processed_at"] - began).total_seconds(),
            "first_batch_written_s": (first["processed_at"] - began).total_seconds() + first["duration_ms"] / 1000,
            "batch_ms": [b["duration_ms"] for b in batches],
            "connector_ms": [b.get("mongo_write_ms", 0) for b in batches],
            "derived_ms": [b.get("derived_ms", 0) for b in batches],
            "documents_written": written,
            "documents_per_s_while_writing": written / connector_s if connector_s else None}


def baseline(bootstrap: str, topic: str, mongo_uri: str, database: str, seconds: float) -> dict:
    """The simplest consumer: consume, parse, one MongoDB update per message."""
    from confluent_kafka import Consumer
    from pymongo import MongoClient
    from pymongo.collection import Collection

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "baseline", "auto.offset.reset": "earliest",
                         "enable.auto.commit": True})
    consumer.subscribe([topic])
    collection: Collection[dict[str, Any]] = MongoClient(mongo_uri)[database]["user_counts"]
    done, started, deadline = 0, 0.0, math.inf  # the clock starts at the first message
    while True:
        message = consumer.poll(1.0)
        if message is None or message.error():
            if time.monotonic() > deadline:
                break
            continue
        if not done:
            started = time.monotonic()
            deadline = started + seconds
        try:
            event = json.loads(message.value() or b"")
            user, kind = event["user_id"], event["interaction_type"]
        except (ValueError, KeyError, TypeError):
            user, kind = None, None
        if isinstance(user, str) and isinstance(kind, str) and kind and not kind.startswith("$"):
            collection.update_one({"_id": user}, {"$inc": {kind: 1, "total": 1}}, upsert=True)
        done += 1
        if time.monotonic() > deadline:
            break
    consumer.close()
    elapsed = time.monotonic() - started
    return {"records": done, "seconds": elapsed, "records_per_s": done / elapsed}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--batch", type=int,
                        help="records per micro-batch, the job's and the peer's "
                             "(default: conf's job.max_offsets_per_trigger)")
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--skip", default="", help=f"comma-separated runs to leave out of {','.join(RUNS)}")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "end_to_end.json"))
    return parser.parse_args()


def run_all(args: argparse.Namespace, skip: set[str]) -> dict[str, Any]:
    """Produce the backlog, then each run not in `skip`, one after the other on the same services: their figures."""
    from pymongo import MongoClient

    from bench import peer_consumer
    from conf import load_config
    from ops.verify import compare, read_topic, recompute_for

    results: dict[str, Any] = {}
    with local_services("bench-e2e-") as (work, broker, mongo):
        topic, bootstrap = "bench", broker.bootstrap_servers
        results["generator_records_per_s"] = produce(bootstrap, topic, args.events, args.users, args.items)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri, tz_aware=True)
        if "job" not in skip:
            began, wall = run_job(bootstrap, topic, mongo_uri=mongo.uri, database="job",
                                  checkpoint=work / "job-checkpoint", batch=args.batch)
            results["job"] = batch_figures(client["job"], began, wall)
            expected = recompute_for(load_config(env={}), read_topic(bootstrap, topic))
            report = compare(expected, client["job"])
            results["job"]["correct"] = report.ok
            if not report.ok:
                print("\n".join(report.lines()))
        if "dry_run" not in skip:
            began, wall = run_job(bootstrap, topic, mongo_uri=mongo.uri, database="dry",
                                  checkpoint=work / "dry-checkpoint", batch=args.batch, flags=("--dry-run",))
            results["dry_run"] = batch_figures(client["dry"], began, wall)
        if "peer" not in skip:
            peer = peer_consumer.run(bootstrap, topic, mongo.uri, "peer", batch_size=args.batch)
            results["peer"] = {"records": peer.records, "seconds": peer.seconds, "records_per_s": peer.records_per_s,
                               "write_seconds": peer.write_seconds, "documents": peer.documents}
        if "baseline" not in skip:
            results["baseline"] = baseline(bootstrap, topic, mongo.uri, "baseline", args.baseline_seconds)
    if "job" in results and "baseline" in results:
        results["job_over_baseline"] = results["job"]["records_per_s"] / results["baseline"]["records_per_s"]
    return results


def print_table(args: argparse.Namespace, results: dict[str, Any]) -> None:
    print(f"{args.events:,} events, batches of {args.batch:,}, {results['machine']}, {results['date']}")
    print(f"{'run':<34}{'records/s':>12}{'with start-up':>15}{'marginal':>11}{'start-up s':>12}"
          f"{'1st batch written s':>21}")
    for name in ("job", "dry_run"):
        if name in results:
            r = results[name]
            print(f"{name + (' (correct)' if r.get('correct') else ''):<34}{r['records_per_s']:>12,.0f}"
                  f"{r['records_per_s_with_startup']:>15,.0f}{(r['marginal_records_per_s'] or 0):>11,.0f}"
                  f"{r['startup_s']:>12.1f}{r['first_batch_written_s']:>21.1f}")
    for name in ("peer", "baseline"):
        if name in results:
            print(f"{name:<34}{results[name]['records_per_s']:>12,.0f}")
    if "job_over_baseline" in results:
        print(f"job / one update per message: {results['job_over_baseline']:.1f}x")
    if "job" in results:
        print(f"job batches (ms) {results['job']['batch_ms']}, connector writes {results['job']['connector_ms']}, "
              f"totals and lists {results['job']['derived_ms']}; {results['job']['documents_written']:,} documents "
              f"at {results['job']['documents_per_s_while_writing'] or 0:,.0f}/s while writing")


def main() -> int:
    args = parse_args()
    from conf import load_config

    args.batch = args.batch or load_config(env={}).job.max_offsets_per_trigger
    results: dict[str, Any] = {"date": dt.date.today().isoformat(),
                               "machine": f"{os.cpu_count()} cores, {platform.machine()}, everything on one machine",
                               "events": args.events, "users": args.users, "items": args.items, "batch": args.batch}
    results.update(run_all(args, skip=set(filter(None, args.skip.split(",")))))
    print_table(args, results)
    write_report(args.out, **results)
    return 0 if results.get("job", {}).get("correct", True) else 1


if __name__ == "__main__":
    sys.exit(main())
