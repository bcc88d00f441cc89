"""A run of the job on a Spark that retries failed tasks (master local[2,4]), whose connector writes of user_stats
and item_stats, and whose inserts of dead letters, fail once, in the first attempt of partition 0, after part of the
partition's documents are written (the retry then meets the inserted dead letters again).

    python tests/jobs/retrying_job.py BOOTSTRAP TOPIC MONGO_URI DATABASE CHECKPOINT MARKER_DIR

Run by tests/jobs/test_task_retries.py as its own process: a Spark session's master cannot change once started,
and pytest-spark's is local[2] (no task retries). Each injected failure leaves a file in MARKER_DIR naming the
collection and how many documents the failed attempt had written.
"""
from __future__ import annotations

import sys
from pathlib import Path

WRITTEN_BEFORE_FAILING = 12  # documents a failing attempt writes first, in bulks of BULK
BULK = 4


def fail_first_attempt(collection: str, markers: str):
    def run(batches):
        from pyspark import TaskContext

        context = TaskContext.get()
        failing = context.attemptNumber() == 0 and context.partitionId() == 0
        sent = 0
        for batch in batches:
            if failing and sent + batch.num_rows >= WRITTEN_BEFORE_FAILING:
                yield batch.slice(0, WRITTEN_BEFORE_FAILING - sent)
                Path(markers, f"{collection}-{context.stageId()}").write_text(str(WRITTEN_BEFORE_FAILING))
                raise RuntimeError(f"injected failure after {WRITTEN_BEFORE_FAILING} {collection} documents")
            sent += batch.num_rows
            yield batch
    return run


def main(bootstrap: str, topic: str, uri: str, database: str, checkpoint: str, markers: str) -> int:
    from pyspark.sql import SparkSession

    from conf import load_config
    from interactions.pipeline import RunMode, start_queries
    from interactions.sinks.connector import replace_documents
    from interactions.sinks.inserts import insert_documents

    spark = (SparkSession.builder.master("local[2,4]").appName("retrying-job")
             .config("spark.sql.shuffle.partitions", "2").config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false").getOrCreate())

    def write(documents, uri_, database_, collection, batch_size):
        if collection in ("user_stats", "item_stats"):
            documents = documents.repartition(2).mapInArrow(fail_first_attempt(collection, markers),
                                                            documents.schema)
        replace_documents(documents, uri_, database_, collection, BULK)

    def insert(documents, uri_, database_, collection, batch_size):
        if collection == "dead_letters":
            documents = documents.repartition(2).mapInArrow(fail_first_attempt(collection, markers),
                                                            documents.schema)
        insert_documents(documents, uri_, database_, collection, BULK)

    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic}, "mongo": {"uri": uri, "database": database},
        "job": {"checkpoint_dir": checkpoint, "shuffle_partitions": 2}, "alerts": {"rules_file": ""},
        "health": {"prometheus_port": 0}})
    pipeline = start_queries(spark, config, RunMode(available_now=True), write=write, insert=insert)
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
