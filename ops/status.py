"""python -m ops.status [--watch S]: one screen on the pipeline's health, read from Kafka and MongoDB.

Shows whether the broker and the database answer, the job's last micro-batch (id, time, rows, duration, state),
the Kafka lag of the job per partition (topic end minus the offsets in the job's checkpoint), and the totals:
events, users, dead letters, late and duplicate events.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from conf import ConfigError, PipelineConfig, load_config
from interactions import QUERY

UTC = dt.UTC
MAX_WATCH_S = 86400  # --watch at most a day
RECENT_BATCHES = 10  # batches read to find the newest one Spark has reported


def checkpoint_offsets(checkpoint_dir: str, query: str) -> dict[str, dict[str, int]]:
    """{topic: {partition: next offset}} of the newest committed batch in a query's checkpoint."""
    commits = Path(checkpoint_dir) / query / "commits"
    offsets = Path(checkpoint_dir) / query / "offsets"
    committed = sorted((int(p.name) for p in commits.glob("[0-9]*")), reverse=True) if commits.is_dir() else []
    for batch in committed:
        path = offsets / str(batch)
        if path.exists():
            lines = path.read_text().splitlines()
            # v1 / {metadata} / {source offsets json}
            return json.loads(lines[2]) if len(lines) > 2 else {}
    return {}


def kafka_lag(config: PipelineConfig, timeout: float = 5.0) -> dict[int, int] | str:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers, "group.id": "status",
                         "socket.connection.setup.timeout.ms": 3000, "log_level": 0})
    try:
        topic = consumer.list_topics(config.kafka.topic, timeout=timeout).topics.get(config.kafka.topic)
        if topic is None or topic.error is not None:
            return f"topic {config.kafka.topic} not found"
        done = checkpoint_offsets(config.job.checkpoint_dir, QUERY).get(config.kafka.topic, {})
        lag = {}
        for partition in sorted(topic.partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(config.kafka.topic, partition), timeout=timeout)
            lag[partition] = high - int(done.get(str(partition), 0))
        return lag
    except KafkaException as exc:
        return f"unreachable ({exc.args[0].str() if exc.args else exc})"
    finally:
        consumer.close()


def last_batch(db: Any) -> dict[str, Any] | None:
    """The newest batch Spark has reported (it has input_rows), walking `batches` newest first along the index on
    processed_at (its retention index): the collection holds a week of batches, one a second, and this runs on every
    --watch tick. The newest document may be the batch in progress, written by the sink before Spark reports it."""
    for batch in db.batches.find({}, sort=[("processed_at", -1)], limit=RECENT_BATCHES):
        if batch.get("query") == QUERY and "input_rows" in batch:
            return batch
    return None


def dropped_by_watermark(db: Any, since: dt.datetime) -> int:
    """Records the job dropped behind the watermark in batches processed since `since` (the retention index on
    processed_at serves the range)."""
    batches = db.batches.find({"processed_at": {"$gte": since}}, {"dropped_by_watermark": 1})
    return sum(int(b.get("dropped_by_watermark") or 0) for b in batches)


def render(config: PipelineConfig) -> list[str]:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    now = dt.datetime.now(UTC)
    lines = [f"pipeline status at {now:%Y-%m-%d %H:%M:%S} UTC"]
    lag = kafka_lag(config)
    if isinstance(lag, str):
        lines.append(f"kafka   {config.kafka.bootstrap_servers}: {lag}")
    else:
        lines.append(f"kafka   {config.kafka.bootstrap_servers} up; topic {config.kafka.topic}; job lag "
                     f"{sum(lag.values())} ({', '.join(f'p{p}={n}' for p, n in lag.items())})")
    try:
        with MongoClient(config.mongo.uri, document_class=dict, serverSelectionTimeoutMS=3000, tz_aware=True) as client:
            db = client[config.mongo.database]
            totals = db.totals.find_one({"_id": "all"}) or {}
            lines.append(f"mongo   {config.mongo.uri.split('@')[-1]} up; database {config.mongo.database}")
            last = last_batch(db)
            if last:
                age = (now - last["processed_at"]).total_seconds() if last.get("processed_at") else float("nan")
                lines.append(f"query   {QUERY} batch {last['batch_id']:>6}  {age:6.0f} s ago  "
                             f"{last.get('input_rows', 0):>8} rows  {last.get('duration_ms', 0):>6} ms  "
                             f"state {last.get('state_rows', 0)} rows, {last.get('state_memory_bytes', 0) >> 20} MiB")
            else:
                lines.append(f"query   {QUERY} no batch yet")
            hour_ago = now - dt.timedelta(hours=1)
            recent_letters = db.dead_letters.count_documents({"kafka_timestamp": {"$gte": hour_ago}})
            recent_late = db.late_events.count_documents({"kafka_timestamp": {"$gte": hour_ago}})
            lines.append(f"totals  events {totals.get('events', 0)}  users {totals.get('users', 0)}  "
                         f"items {totals.get('items', 0)}  revenue {totals.get('revenue', 0.0):.2f}")
            lines.append(f"bad     dead letters {totals.get('dead_letters', 0)} ({recent_letters} last hour)  "
                         f"late {totals.get('late_events', 0)} ({recent_late} last hour)  "
                         f"duplicates {totals.get('duplicates', 0)}")
            dropped = dropped_by_watermark(db, hour_ago)
            if dropped:
                lines.append(f"DROPPED {dropped} records in the last hour reached the job more than "
                             "job.max_partition_lag behind the newest broker time and were not counted "
                             "(batches.dropped_by_watermark)")
    except PyMongoError as exc:
        lines.append(f"mongo   {config.mongo.uri.split('@')[-1]}: unreachable ({str(exc).split(',')[0]})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.status", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file (default conf/pipeline.toml)")
    parser.add_argument("--database", help="MongoDB database (default from conf)")
    parser.add_argument("--checkpoint-dir", help="the job's checkpoint directory (default from conf)")
    parser.add_argument("--watch", type=float, metavar="S", help="refresh every S seconds until Ctrl-C")
    args = parser.parse_args(argv)
    if args.watch is not None and not 0 <= args.watch <= MAX_WATCH_S:  # NaN too
        print(f"status: --watch must be a number of seconds from 0 to {MAX_WATCH_S:g}, got {args.watch:g}",
              file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, overrides={"mongo": {"database": args.database},
                                                     "job": {"checkpoint_dir": args.checkpoint_dir}})
    except ConfigError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 2
    try:
        while True:
            print("\n".join(render(config)), flush=True)
            if not args.watch:
                return 0
            time.sleep(args.watch)
            print()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
