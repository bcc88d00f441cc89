"""The same batch of per-key documents written by the MongoDB Spark connector and by pymongo, side by side.

    .venv/bin/python -m bench.sink_paths [--events 300000] [--users 300000] [--items 75000] [--rounds 2]
                                         [--out .stack/bench/sink_paths.json]

Starts its own Apache Kafka and MongoDB-protocol server, produces --events ordinary events as an outside producer
sends them (bench.traffic; by default the key space of a site with many users: a batch touches tens of thousands),
and builds from them the per-key documents one micro-batch of the job writes (interactions.dataflow and
interactions.documents in batch mode: user_stats, item_stats), cached. Then writes them, each path into its own
database, first into empty collections (inserts) and then again (replacing existing documents, as every later batch
does), alternating the paths each round:

    connector          the job's path: DataFrame.write.format("mongodb"), ReplaceOne upserts from the executors
    pymongo executors  mapInArrow + pymongo bulk_write(ReplaceOne upserts, unordered, 5,000 a bulk)
    pymongo driver     collect to the driver (Arrow) + the same bulks from one client

Reported: documents/s per path and phase (median of the rounds). The database server is the same process for all.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import traffic
from bench.report import write_report
from bench.services import local_services

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("connector", "pymongo executors", "pymongo driver")
BULK = 5000


def batch_documents(spark, bootstrap: str, topic: str) -> dict:
    """Collection -> cached DataFrame of the documents one batch over the whole topic writes."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from interactions import aggregates, dataflow, documents, facets

    settings = dataflow.Settings(topic=topic, allowed_lateness_s=120, max_future_skew_s=600, duplicate_window_s=120,
                                 max_partition_lag_s=10,
                                 slot_s=300, user_rate_s=None, archive=False)
    kafka = spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("subscribe", topic).load()
    classified = dataflow.classified(kafka, settings)
    partials = classified.mapInArrow(facets.partial_facets_function(120, 300, None, False),
                                     from_arrow_schema(facets.partial_schema(False)))
    totals = aggregates.running_totals(partials).cache()
    out = {name: build(totals, 0) for name, build in documents.collection_writers(topic, archive=False).items()
           if name in (documents.USER_STATS, documents.ITEM_STATS)}
    return {name: frame.cache() for name, frame in out.items() if frame.count()}


def write_connector(frames: dict, uri: str, database: str) -> None:
    from interactions.sinks.connector import replace_documents

    for collection, frame in frames.items():
        replace_documents(frame, uri, database, collection, BULK)


def write_executors(frames: dict, uri: str, database: str) -> None:
    for collection, frame in frames.items():
        def write_partition(batches, collection=collection):
            import pyarrow as pa
            from pymongo import MongoClient, ReplaceOne

            with MongoClient(uri) as client:
                target = client[database][collection]
                docs = [doc for batch in batches for doc in batch.to_pylist()]
                for start in range(0, len(docs), BULK):
                    target.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True)
                                       for d in docs[start:start + BULK]], ordered=False)
            yield pa.RecordBatch.from_pydict({"n": [len(docs)]})
        frame.mapInArrow(write_partition, "n long").collect()


def write_driver(frames: dict, uri: str, database: str) -> None:
    from pymongo import MongoClient, ReplaceOne

    with MongoClient(uri, document_class=dict) as client:
        for collection, frame in frames.items():
            docs = frame.toArrow().to_pylist()
            for start in range(0, len(docs), BULK):
                client[database][collection].bulk_write(
                    [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs[start:start + BULK]], ordered=False)


WRITERS = {"connector": write_connector, "pymongo executors": write_executors, "pymongo driver": write_driver}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=300_000)
    parser.add_argument("--items", type=int, default=75_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "sink_paths.json"))
    args = parser.parse_args()

    from pymongo import MongoClient
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    seconds: dict[str, dict[str, list[float]]] = {p: {"insert": [], "replace": []} for p in PATHS}
    with local_services("bench-sink-paths-") as (work, broker, mongo):
        traffic.produce(broker.bootstrap_servers, "bench", args.events,
                        traffic.Mix(users=args.users, items=args.items, seed=4))
        spark = (SparkSession.builder.master("local[2]").appName("bench-sink-paths")
                 .config("spark.sql.shuffle.partitions", "2").config("spark.ui.enabled", "false")
                 .config("spark.sql.session.timeZone", "UTC").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        frames = batch_documents(spark, broker.bootstrap_servers, "bench")
        counts = {name: frame.count() for name, frame in frames.items()}
        documents = sum(counts.values())
        print(f"one batch of {args.events:,} events -> {documents:,} documents: {counts}", flush=True)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)
        for round_ in range(args.rounds):
            order = PATHS if round_ % 2 == 0 else tuple(reversed(PATHS))
            for path in order:
                database = f"{path.replace(' ', '_')}_{round_}"
                for phase in ("insert", "replace"):
                    began = time.monotonic()
                    WRITERS[path](frames, mongo.uri, database)
                    seconds[path][phase].append(time.monotonic() - began)
                    print(f"round {round_ + 1}  {path:<18} {phase:<8} {documents / seconds[path][phase][-1]:>8,.0f} "
                          f"documents/s", flush=True)
                assert sum(client[database][c].count_documents({}) for c in counts) == documents
                client.drop_database(database)
        spark.stop()
    summary = {path: {phase: documents / statistics.median(values) for phase, values in phases.items()}
               for path, phases in seconds.items()}
    print(f"\n{'path':<20}{'insert docs/s':>15}{'replace docs/s':>16}")
    for path, figures in summary.items():
        print(f"{path:<20}{figures['insert']:>15,.0f}{figures['replace']:>16,.0f}")
    write_report(args.out, events=args.events, users=args.users, items=args.items, documents=counts,
                 rounds=args.rounds, documents_per_s=summary,
                 seconds=seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
