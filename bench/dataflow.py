"""Where a micro-batch's time goes, stage by stage, and the job's stages against their Spark SQL alternatives.

    .venv/bin/python -m bench.dataflow [--events 1000000] [--batch 250000] [--repeats 2] [--users N] [--items N]
                                       [--variants ...]
                                       [--out .stack/bench/dataflow.json]

Starts its own Apache Kafka (free ports, a temporary folder), produces outside traffic (bench.traffic: --users 2,000,
--items 500 by default, 3 % malformed of every dead-letter reason, 1 % late, 2 % redelivered), then runs each
variant as a streaming query over the whole topic (available-now trigger, --batch records per micro-batch, Spark's
own Kafka source, local[2], a fresh checkpoint) into a sink that materializes every row and stores nothing.
Variants alternate, --repeats rounds, and the median is reported: these machines are noisy, so designs are
compared within one run, never across runs.

    read            the Kafka source alone
    classify        + the job's classification (interactions.parsing: msgspec and orjson, Python over Arrow)
    classify_sql    + the classification in Spark SQL instead (bench/spark_sql_baseline.py)
    dedup           + the job's watermark on broker time and one dropDuplicatesWithinWatermark
    job             the job's whole dataflow: + partial facets (Python over Arrow) + one stateful aggregation
    job_split       the same with dead letters and late events routed around the stateful operators (a union)
    facets_sql      classify_sql + dedup + a five-way explode of each event into one Spark aggregation (also there)

A variant may carry Spark settings for its run only, after a "+": `job+rocksdb` (the RocksDB state store with
changelog checkpointing instead of the default HDFS-backed one), `job+no_arrow_size_check` (no Arrow batch limit by
bytes: Spark then skips measuring a batch's size after every row).

The first round also warms the JVM; every figure is seconds for all events and events/s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import traffic
from bench.report import write_report
from bench.services import local_broker

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("read", "classify", "classify_sql", "dedup", "job", "job_split", "facets_sql")
SETTINGS = {
    "rocksdb": {"spark.sql.streaming.stateStore.providerClass":
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
                "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true"},
    "no_arrow_size_check": {"spark.sql.execution.arrow.maxBytesPerBatch": "2147483647"},
}


def produce(bootstrap: str, topic: str, events: int, users: int, items: int) -> None:
    traffic.produce(bootstrap, topic, events, traffic.Mix(users=users, items=items, malformed=0.03, late=0.01,
                                                          duplicates=0.02, seed=3))


def build(spark, variant: str, bootstrap: str, topic: str, batch: int):
    from pyspark.sql import functions as F

    from bench import spark_sql_baseline as sql
    from interactions import dataflow
    from interactions.source import kafka_records

    settings = dataflow.Settings(topic=topic, allowed_lateness_s=120, max_future_skew_s=600, duplicate_window_s=120,
                                 max_partition_lag_s=10,
                                 slot_s=300, user_rate_s=None, archive=False)
    kafka = kafka_records(spark, bootstrap, topic, starting_offsets="earliest", max_offsets_per_trigger=batch)
    if variant == "read":
        return kafka.select("value", "partition", "offset", "timestamp")
    if variant == "classify":
        return dataflow.classified(kafka, settings)
    if variant == "classify_sql":
        return sql.parse_records(kafka, 600, 120)
    if variant == "dedup":
        return dataflow.deduplicated(dataflow.classified(kafka, settings), settings.duplicate_window_s,
                                     settings.max_partition_lag_s)
    if variant == "job":
        return dataflow.interactions(kafka, settings)
    if variant == "facets_sql":
        events = sql.deduplicated(sql.valid_events(sql.parse_records(kafka, 600, 120)), "720 seconds")
        return sql.facet_totals(sql.facet_rows(events)).withColumn("n", F.lit(1))
    if variant == "job_split":
        return set_aside_around_state(kafka, settings)
    raise ValueError(variant)


def set_aside_around_state(kafka, settings):
    """The whole dataflow with dead letters and late events routed around the stateful operators: a union of the
    aggregation's output and the set-aside records, in one query. Spark accepts it in update mode, but plans each
    side from the Kafka source up: every record is read and classified twice (no exchange is shared)."""
    from pyspark.sql import functions as F

    from interactions import aggregates, dataflow
    from interactions.parsing import DEAD_LETTER, LATE

    classified = dataflow.classified(kafka, settings)
    aside = F.col("kind").isin(DEAD_LETTER, LATE)
    partials = dataflow.partial_facets(dataflow.deduplicated(classified.where(~aside), settings.duplicate_window_s,
                                                             settings.max_partition_lag_s), settings)
    out = aggregates.running_totals(aggregates.with_bucket_eviction(partials, int(settings.max_partition_lag_s * 1000)))
    side = classified.where(aside).select(F.col("kind").alias("facet"),
                                          F.concat_ws(":", "partition", "offset").alias("key"))
    side = side.select(*[side[c] if c in side.columns else F.lit(None).cast(out.schema[c].dataType).alias(c)
                         for c in out.columns])
    return out.unionByName(side)


def run_variant(spark, variant: str, bootstrap: str, topic: str, batch: int) -> dict:
    base, _, extra = variant.partition("+")
    settings = SETTINGS.get(extra, {})
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        return _run(spark, base, variant=variant, bootstrap=bootstrap, topic=topic, batch=batch)
    finally:
        for key in settings:
            spark.conf.unset(key)


def _run(spark, base: str, *, variant: str, bootstrap: str, topic: str, batch: int) -> dict:
    frame = build(spark, base, bootstrap, topic, batch)
    checkpoint = tempfile.mkdtemp(prefix=f"bench-dataflow-{variant}-")
    stateful = base in ("dedup", "job", "job_split", "facets_sql")
    writer = (frame.writeStream.option("checkpointLocation", checkpoint).trigger(availableNow=True)
              .outputMode("update" if stateful else "append")
              .foreachBatch(lambda batch_frame, _: batch_frame.write.format("noop").mode("overwrite").save()))
    started = time.monotonic()
    query = writer.start()
    query.awaitTermination()
    seconds = time.monotonic() - started
    progress = [p for p in query.recentProgress if p["numInputRows"]]
    rows = sum(p["numInputRows"] for p in progress)
    state = [op for op in (query.lastProgress or {}).get("stateOperators", [])]
    return {"seconds": seconds, "rows": rows, "batch_ms": [p["durationMs"].get("triggerExecution") for p in progress],
            "state_rows": sum(op.get("numRowsTotal", 0) for op in state),
            "state_memory_bytes": sum(op.get("memoryUsedBytes", 0) for op in state)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250_000, help="records per micro-batch (maxOffsetsPerTrigger)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "dataflow.json"))
    args = parser.parse_args()
    variants = args.variants.split(",")

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers run this environment (orjson, polars)
    with local_broker("bench-dataflow-") as (_, broker):
        produce(broker.bootstrap_servers, "bench", args.events, args.users, args.items)
        spark = (SparkSession.builder.master("local[2]").appName("bench-dataflow")
                 .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
                 .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "4g")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for round_ in range(args.repeats):
            for variant in variants:
                result = run_variant(spark, variant, broker.bootstrap_servers, "bench", args.batch)
                runs[variant].append(result)
                print(f"round {round_ + 1}  {variant:<13} {result['seconds']:6.1f} s  "
                      f"{result['rows'] / result['seconds']:>9,.0f} records/s  batches {result['batch_ms']} ms",
                      flush=True)
        spark.stop()
    summary = {}
    for variant in variants:
        seconds = statistics.median(r["seconds"] for r in runs[variant])
        rows = runs[variant][-1]["rows"]
        summary[variant] = {"median_seconds": seconds, "records_per_s": rows / seconds,
                            "state_rows": runs[variant][-1]["state_rows"],
                            "state_memory_mb": runs[variant][-1]["state_memory_bytes"] / 2 ** 20}
    print(f"\n{'variant':<14}{'median s':>10}{'records/s':>12}{'state rows':>12}{'state MiB':>11}")
    for variant, figures in summary.items():
        print(f"{variant:<14}{figures['median_seconds']:>10.1f}{figures['records_per_s']:>12,.0f}"
              f"{figures['state_rows']:>12,}{figures['state_memory_mb']:>11.0f}")
    write_report(args.out, events=args.events, batch=args.batch, repeats=args.repeats, summary=summary, runs=runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
