"""Spark state after a simulated day and a simulated week of event time: bounded, or growing?

    .venv/bin/python -m bench.state_size [--days 7] [--events-per-minute 100] [--users 10000] [--items 2000]
                                         [--out .stack/bench/state_size.json]

Starts its own Apache Kafka and MongoDB-protocol server, writes --days of generator events (1 % malformed, 1 %
duplicates) whose Kafka timestamps are their event times (a CreateTime topic: the broker's clock would put a week
into minutes), and runs the job over them as a user would (`spark-submit jobs/aggregate.py --available-now
--dry-run`, a batch per simulated hour), reading each batch's state from Spark's progress (`batches.state_rows`,
`state_memory_bytes`: every operator's rows and the memory its state store reports). What stays: a key per user,
item and the global row, the windows still open (the last hour's minutes, the day's hours), the deduplication's
event ids within the duplicate window. What must not stay: closed windows, slots, set-aside records.
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
from typing import Any

from bench.report import write_report
from bench.services import local_services
from contract.times import parse_instant

ROOT = Path(__file__).resolve().parents[1]
START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday, 00:00 UTC


def produce(bootstrap: str, topic: str, *, days: float, per_minute: int, users: int, items: int) -> int:
    """The generator's messages with pinned event times, each record stamped with its event time."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from contract.topics import CREATE_TIME, TIMESTAMP_TYPE_KEY
    from generator.settings import StreamSettings
    from generator.stream import Message, MessageStream

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # records stamped weeks ago: without retention.ms=-1 the broker's time-based retention would delete them at once
    admin.create_topics([NewTopic(topic, 4, 1, config={TIMESTAMP_TYPE_KEY: CREATE_TIME, "retention.ms": "-1"})]
                        )[topic].result(60)
    count = int(days * 24 * 60 * per_minute)
    settings = StreamSettings(seed=5, users=users, items=items, start_time=START.timestamp(), rate=per_minute / 60,
                              malformed_ratio=0.01, duplicate_ratio=0.01).resolved()
    stream = MessageStream(settings, 0, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000})
    sent, clock = 0, START.timestamp() * 1000
    while sent < count:
        for row in stream.take(min(50_000, count - sent)):
            message = Message(*row)
            if message.kind in ("valid", "duplicate"):  # a malformed record (a future time, say) gets its neighbour's
                clock = max(clock, _event_millis(message.payload) or clock)
            producer.produce(topic, message.payload.encode(), message.key.encode(), timestamp=int(clock))
            sent += 1
        producer.flush(120)
    return sent


def _event_millis(payload: str) -> float | None:
    try:
        text = json.loads(payload)["event_time"]
        return parse_instant(text).timestamp() * 1000
    except (ValueError, KeyError, TypeError):
        return None


def run_job(bootstrap: str, topic: str, *, mongo_uri: str, database: str, checkpoint: Path, batch: int) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
           "PIPELINE_ALERTS_RULES_FILE": "", "PIPELINE_HEALTH_PROMETHEUS_PORT": "0", "PIPELINE_MONGO_URI": mongo_uri}
    log = checkpoint.parent / "job.log"
    with log.open("w") as output:
        result = subprocess.run(["spark-submit", "jobs/aggregate.py", "--bootstrap-servers", bootstrap, "--topic",
                                 topic, "--database", database, "--checkpoint-dir", str(checkpoint), "--dry-run",
                                 "--max-offsets-per-trigger", str(batch), "--available-now"],
                                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        causes = [line for line in log.read_text().splitlines()
                  if ("Error" in line or line.startswith("Caused by")) and not line.startswith("\tat ")]
        raise SystemExit("the job failed (log: {}):\n{}".format(log, "\n".join(causes[-20:])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--events-per-minute", type=int, default=100)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "state_size.json"))
    args = parser.parse_args()

    from pymongo import MongoClient

    with local_services("bench-state-") as (work, broker, mongo):
        began = time.monotonic()
        produced = produce(broker.bootstrap_servers, "week", days=args.days, per_minute=args.events_per_minute,
                           users=args.users, items=args.items)
        print(f"produced {produced:,} records over {args.days:g} simulated days in {time.monotonic() - began:.0f} s",
              flush=True)
        run_job(broker.bootstrap_servers, "week", mongo_uri=mongo.uri, database="state",
                checkpoint=work / "checkpoint", batch=args.events_per_minute * 60)
        batches: list[dict[str, Any]] = list(MongoClient(mongo.uri, tz_aware=True)["state"].batches.find(
            {"input_rows": {"$gt": 0}, "watermark": {"$exists": True}}).sort("batch_id", 1))
    rows = []
    for b in batches:
        simulated = (b["watermark"] - START).total_seconds() / 86400
        rows.append({"batch_id": b["batch_id"], "simulated_days": simulated, "state_rows": b["state_rows"],
                     "state_mib": b["state_memory_bytes"] / 2 ** 20})
    print(f"{'after simulated day':<22}{'state rows':>12}{'state MiB':>11}")
    marks = {}
    for day in range(1, int(args.days) + 1):
        at = [r for r in rows if r["simulated_days"] <= day]
        if at:
            marks[day] = at[-1]
            print(f"{day:<22}{at[-1]['state_rows']:>12,}{at[-1]['state_mib']:>11.1f}")
    write_report(args.out, days=args.days, events_per_minute=args.events_per_minute, users=args.users,
                 items=args.items, produced=produced, by_day=marks, batches=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
