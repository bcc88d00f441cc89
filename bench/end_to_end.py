"""End-to-end throughput of the job against the design most tutorials use, on the same events.

    .venv/bin/python bench/end_to_end.py [--events 300000] [--users 10000] [--items 2000] [--batch 100000]
                                         [--baseline-seconds 30] [--out .stack/bench/end_to_end.json]

Starts its own Apache Kafka and MongoDB-protocol server (free ports, temporary folders), produces a seeded stream
with the generator, then measures
  * the job: `spark-submit jobs/aggregate.py --available-now` over the backlog, all aggregates on, into MongoDB;
    events/s from the first batch's start to the last batch's end (JVM start-up excluded), and MongoDB
    upserts/s of the aggregates sink;
  * the baseline: one Python consumer that updates MongoDB once per message (`update_one` with `$inc` on the
    user's document, the seeds' design), for --baseline-seconds;
and checks the job's result with the independent recomputation (a fast wrong run does not count).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from services import local_services

ROOT = Path(__file__).resolve().parents[1]


def produce(bootstrap: str, topic: str, events: int, users: int, items: int) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap, "--topic", topic,
                    "--partitions", "4", "--count", str(events), "--rate", "max", "--seed", "1",
                    "--users", str(users), "--items", str(items), "--processes", "2",
                    "--malformed-ratio", "0.005", "--duplicate-ratio", "0.005", "--progress-interval", "3600"],
                   check=True, cwd=ROOT, capture_output=True)
    return events / (time.monotonic() - started)


def run_job(bootstrap: str, topic: str, mongo_uri: str, database: str, checkpoint: str, batch: int,
            partitions: int, archive: bool) -> dict:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "PIPELINE_JOB_ARCHIVE_RAW_EVENTS": "true" if archive else "false"}
    started = time.monotonic()
    result = subprocess.run(["spark-submit", "jobs/aggregate.py", "--bootstrap-servers", bootstrap, "--topic", topic,
                             "--mongo-uri", mongo_uri, "--database", database, "--checkpoint-dir", checkpoint,
                             "--max-offsets-per-trigger", str(batch), "--shuffle-partitions", str(partitions),
                             "--available-now"], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the job failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return {"wall_s": time.monotonic() - started}


def batch_figures(db) -> dict:
    batches = list(db.batches.find({"query": "aggregates", "input_rows": {"$gt": 0}}).sort("batch_id", 1))
    first, last = batches[0], batches[-1]
    span = (last["processed_at"] - first["processed_at"]).total_seconds() + last["duration_ms"] / 1000
    rows = sum(b["input_rows"] for b in batches)
    steady = batches[1:] or batches
    steady_rows = sum(b["input_rows"] for b in steady)
    steady_s = sum(b["duration_ms"] for b in steady) / 1000
    written = sum(b.get("changed_documents", 0) for b in batches)
    mongo_s = sum(b.get("mongo_write_ms", 0) for b in batches) / 1000
    return {"batches": len(batches), "rows": rows, "span_s": span, "events_per_s": rows / span,
            "steady_events_per_s": steady_rows / steady_s if steady_s else None,
            "batch_ms": [b["duration_ms"] for b in batches], "documents_written": written,
            "mongo_write_ms": [b.get("mongo_write_ms", 0) for b in batches],
            "upserts_per_s": written / mongo_s if mongo_s else None}


def baseline(bootstrap: str, topic: str, mongo_uri: str, database: str, seconds: float) -> dict:
    """The seeds' design: consume, parse, one MongoDB update per message."""
    from confluent_kafka import Consumer
    from pymongo import MongoClient

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "baseline", "auto.offset.reset": "earliest",
                         "enable.auto.commit": True})
    consumer.subscribe([topic])
    collection = MongoClient(mongo_uri)[database]["user_counts"]
    done, started = 0, None
    deadline = None
    while True:
        message = consumer.poll(1.0)
        if message is None or message.error():
            if deadline and time.monotonic() > deadline:
                break
            continue
        if started is None:
            started = time.monotonic()
            deadline = started + seconds
        try:
            event = json.loads(message.value())
            user, kind = event["user_id"], event["interaction_type"]
        except (ValueError, KeyError, TypeError):
            event, user, kind = None, None, None
        if isinstance(user, str) and isinstance(kind, str) and kind and not kind.startswith("$"):
            collection.update_one({"_id": user}, {"$inc": {kind: 1, "total": 1}}, upsert=True)
        done += 1
        if time.monotonic() > deadline:
            break
    consumer.close()
    elapsed = time.monotonic() - started
    return {"messages": done, "seconds": elapsed, "events_per_s": done / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100_000, help="max offsets per trigger")
    parser.add_argument("--shuffle-partitions", type=int, default=2)
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--archive", action="store_true", help="raw-event archive on (events_raw inserts)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "end_to_end.json"))
    args = parser.parse_args()

    from pymongo import MongoClient

    from conf import load_config
    from interactions.verify import compare, read_topic, recompute_for
    with local_services("bench-e2e-") as (work, broker, mongo):
        topic = "bench"
        produce_rate = produce(broker.bootstrap_servers, topic, args.events, args.users, args.items)
        run_job(broker.bootstrap_servers, topic, mongo.uri, "job", str(work / "checkpoint"), args.batch,
                args.shuffle_partitions, args.archive)
        client = MongoClient(mongo.uri, tz_aware=True)
        ours = batch_figures(client["job"])
        expected = recompute_for(load_config(env={}), read_topic(broker.bootstrap_servers, topic))
        report = compare(expected, client["job"])
        naive = None if args.no_baseline else \
            baseline(broker.bootstrap_servers, topic, mongo.uri, "baseline", args.baseline_seconds)
        results = {
            "date": dt.date.today().isoformat(), "machine": f"{os.cpu_count()} cores",
            "events": args.events, "users": args.users, "items": args.items, "batch": args.batch,
            "archive": args.archive, "generator_events_per_s": produce_rate, "job": ours, "job_correct": report.ok,
            "baseline": naive, "speedup": ours["events_per_s"] / naive["events_per_s"] if naive else None}
        print(f"{'what':<44}{'figure':>14}")
        print(f"{'generator -> Kafka (2 processes), events/s':<44}{produce_rate:>14,.0f}")
        print(f"{'raw-event archive':<44}{'on' if args.archive else 'off':>14}")
        print(f"{'job end to end, events/s (all batches)':<44}{ours['events_per_s']:>14,.0f}")
        if ours["steady_events_per_s"]:
            print(f"{'job, batches after the first, events/s':<44}{ours['steady_events_per_s']:>14,.0f}")
        print(f"{'MongoDB upserts/s while writing':<44}{(ours['upserts_per_s'] or 0):>14,.0f}")
        if naive:
            print(f"{'baseline: one update per message, events/s':<44}{naive['events_per_s']:>14,.0f}")
            print(f"{'job / baseline':<44}{results['speedup']:>14.1f}x")
        print(f"{'batches, durations (ms)':<44}{ours['batches']:>14}  {ours['batch_ms']}")
        print(f"{'  of which a MongoDB write was outstanding':<44}{'':>14}  {ours['mongo_write_ms']}")
        print(f"job result equals the recomputation: {report.ok}")
        if not report.ok:
            print("\n".join(report.lines()))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
