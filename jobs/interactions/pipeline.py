"""Assemble and start the job's streaming queries from a PipelineConfig. The only place that wires sources,
transformations and sinks together."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from conf import PipelineConfig
from conf.loader import parse_duration_seconds
from interactions import aggregates, parsing
from interactions.sinks import mongo
from interactions.source import kafka_records

log = logging.getLogger(__name__)

AGGREGATES, RECORDS, RECENT_USERS = "aggregates", "records", "recent_users"


@dataclass(frozen=True)
class RunMode:
    """How the queries are triggered: continuously every interval, or once over what is available now."""
    available_now: bool = False


@dataclass
class RunningPipeline:
    """The started queries and the listener that records their progress."""
    spark: SparkSession
    queries: list[StreamingQuery]
    listener: StreamingQueryListener

    def await_termination(self) -> None:
        """Until every query has stopped (available-now runs stop by themselves); raises if one failed."""
        for query in self.queries:
            query.awaitTermination()

    def stop(self) -> None:
        for query in self.queries:
            query.stop()
        self.spark.streams.removeListener(self.listener)


def start_queries(spark: SparkSession, config: PipelineConfig, mode: RunMode = RunMode()) -> RunningPipeline:
    job, kafka, store = config.job, config.kafka, config.mongo
    with mongo.client(store.uri) as client:
        db = client[store.database]
        mongo.ensure_indexes(db, parse_duration_seconds(job.archive_retention))
        mongo.ensure_totals_document(db)

    records = kafka_records(spark, kafka.bootstrap_servers, kafka.topic, kafka.starting_offsets,
                            job.max_offsets_per_trigger, kafka.starting_timestamp_ms())
    lateness = parse_duration_seconds(job.watermark_delay)
    future_skew = parse_duration_seconds(job.max_future_skew)
    parsed = parsing.parse_records(records, future_skew, lateness)
    events = aggregates.deduplicated(aggregates.valid_events(parsed), f"{int(lateness + future_skew)} seconds")
    totals = aggregates.facet_totals(aggregates.facet_rows(events))
    recent = aggregates.recent_user_activity(events, job.recent_window, job.recent_slide)

    listener = ProgressRecorder(store.uri, store.database)
    spark.streams.addListener(listener)

    def trigger(writer):
        return writer.trigger(availableNow=True) if mode.available_now \
            else writer.trigger(processingTime=job.trigger_interval)

    aggregates_query = trigger(
        totals.writeStream.queryName(AGGREGATES).outputMode("update")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, AGGREGATES))
        .foreachBatch(mongo.AggregatesSink(store.uri, store.database, store.write_batch_size,
                                           job.top_n_users, job.top_n_items))).start()
    records_query = trigger(
        aggregates.set_aside(parsed, job.archive_raw_events).writeStream.queryName(RECORDS).outputMode("append")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, RECORDS))
        .foreachBatch(mongo.RecordsSink(store.uri, store.database, store.write_batch_size))).start()
    recent_query = trigger(
        recent.writeStream.queryName(RECENT_USERS).outputMode("update")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, RECENT_USERS))
        .foreachBatch(mongo.RecentUsersSink(store.uri, store.database, job.top_n_users_last_hour,
                                            parse_duration_seconds(job.recent_window)))).start()
    return RunningPipeline(spark, [aggregates_query, records_query, recent_query], listener)


class ProgressRecorder(StreamingQueryListener):
    """Writes each finished batch's progress (rows, duration, watermark, late and duplicate rows) to MongoDB and
    logs one line per batch."""

    def __init__(self, uri: str, database: str):
        self.uri, self.database = uri, database

    def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's API)
        log.info("query %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event) -> None:  # noqa: N802
        progress = json.loads(event.progress.json)
        name = progress.get("name") or "?"
        try:
            with mongo.client(self.uri) as client:
                mongo.record_progress(client[self.database], name, progress, counts_totals=name == AGGREGATES)
        except Exception as exc:  # a health record must never stop the stream
            log.warning("could not record progress of %s batch %s: %s", name, progress.get("batchId"), exc)
        operators = progress.get("stateOperators") or []
        log.info("%s batch %s: %d rows in %d ms (%.0f rows/s), dropped by watermark %d, duplicates %d, "
                 "watermark %s",
                 name, progress.get("batchId"), progress.get("numInputRows", 0),
                 (progress.get("durationMs") or {}).get("triggerExecution", 0),
                 progress.get("processedRowsPerSecond") or 0.0,
                 sum(op.get("numRowsDroppedByWatermark", 0) for op in operators),
                 sum((op.get("customMetrics") or {}).get("numDroppedDuplicateRows", 0) for op in operators),
                 (progress.get("eventTime") or {}).get("watermark", "-"))

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        if event.exception:
            log.error("query %s failed: %s", event.id, event.exception.splitlines()[0])
