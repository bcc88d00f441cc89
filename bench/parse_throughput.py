"""Rows/s of the job's parse and validation (interactions.parsing.parse_records), without Kafka or MongoDB.

    .venv/bin/python bench/parse_throughput.py [--rows 400000] [--repeats 3] [--malformed-ratio 0.01]

Every one of the job's streaming queries parses each record it reads, so this is a floor under every batch. The
rows are the generator's messages (seeded), in a cached DataFrame shaped like Spark's kafka source; each repeat
evaluates every output column (the `noop` sink) and reports rows/s. Compared with the same rows through a bare
`from_json` with the event schema (no validation): the cost of validating.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_noop(frame, repeats: int) -> float:
    """Median seconds to evaluate every column of `frame`."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--malformed-ratio", type=float, default=0.01)
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "parse_throughput.json"))
    args = parser.parse_args()

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from generator.settings import StreamSettings
    from generator.stream import generate_messages
    from interactions.parsing import EVENT_SCHEMA, parse_records

    settings = StreamSettings(seed=7, malformed_ratio=args.malformed_ratio)
    received = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [(None, m.payload.encode(), "bench", i % 4, i, received)
            for i, m in enumerate(generate_messages(args.rows, settings))]
    spark = (SparkSession.builder.master("local[2]").appName("parse-throughput")
             .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    records = spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp") \
        .repartition(2).cache()
    records.count()
    bare = records.select(F.from_json(F.col("value").cast("string"), EVENT_SCHEMA).alias("event")) \
        .select("event.*")
    parsed = parse_records(records, 600, 120)
    time_noop(parsed, 1)  # warm-up: code generation and JIT
    results = {"rows": args.rows, "cores": os.cpu_count(), "date": dt.date.today().isoformat()}
    results["bare_from_json_rows_per_s"] = args.rows / time_noop(bare, args.repeats)
    results["parse_records_rows_per_s"] = args.rows / time_noop(parsed, args.repeats)
    invalid = parsed.where(F.col("error").isNotNull()).count()
    spark.stop()
    print(f"{'what':<48}{'rows/s':>12}")
    print(f"{'from_json with the event schema (no checks)':<48}{results['bare_from_json_rows_per_s']:>12,.0f}")
    print(f"{'parse_records (validation, lateness, revenue)':<48}{results['parse_records_rows_per_s']:>12,.0f}")
    print(f"{args.rows:,} rows on local[2], {invalid:,} dead letters")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
