"""Writing a DataFrame of whole documents to MongoDB through the MongoDB Spark connector (org.mongodb.spark,
pinned in pom.xml): each executor task upserts its partition's documents by `_id` from the JVM, in bulks.

A replayed micro-batch or a retried task rewrites the same documents with the same values, so these writes are
idempotent; the connector cannot express an increment or a condition, which is why the job never needs one here.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from pyspark import SparkContext
from pyspark.sql import DataFrame

FORMAT = "mongodb"


def replace_documents(documents: DataFrame, uri: str, database: str, collection: str, batch_size: int) -> None:
    """Upsert every row as the whole document with its `_id` (ReplaceOne, upsert), unordered bulks."""
    (documents.write.format(FORMAT).mode("append")
     .option("connection.uri", uri).option("database", database).option("collection", collection)
     .option("operationType", "replace").option("upsertDocument", "true").option("idFieldList", "_id")
     .option("ordered", "false").option("maxBatchSize", str(batch_size))
     .save())


def run_side_by_side(spark: SparkContext, writes: Mapping[str, Callable[[], None]], workers: int, label: str) -> None:
    """Run each write (its Spark jobs) in a thread of its own, `workers` at a time, and return when all are done.
    The first failure cancels the others, started or not, and is raised: with MongoDB gone each write would
    otherwise wait out its own server-selection timeout (30 s) before the batch could be retried."""
    group = f"{label} ({uuid.uuid4().hex[:8]})"
    failing = threading.Event()

    def run(name: str) -> None:
        if failing.is_set():
            return
        spark.setJobGroup(group, f"{label}: {name}", interruptOnCancel=True)
        writes[name]()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="connector") as pool:
        futures = [pool.submit(run, name) for name in writes]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f.exception() for f in futures if f.done() and f.exception() is not None), None)
        if failed is None:
            return
        failing.set()
        for future in futures:
            future.cancel()
        while not all(future.done() for future in futures):  # a job submitted after a cancel is cancelled next time
            spark.cancelJobGroup(group)
            wait(futures, timeout=0.5)
        raise failed
