"""Assemble and start the job's one streaming query from a PipelineConfig: the only place that wires the source,
the dataflow and the sink together, with the progress listener (interactions.listener) beside them."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from conf import PipelineConfig
from conf.loader import parse_duration_seconds
from interactions import DRY_RUN_QUERY, QUERY, dataflow, health
from interactions import documents as docs
from interactions.alerting.monitor import AlertMonitor
from interactions.listener import ProgressRecorder
from interactions.preflight import bind_query, dry_run_checkpoint
from interactions.sinks import indexes, totals
from interactions.sinks.batch import BatchWriter, SinkSettings, Write, client
from interactions.sinks.connector import replace_documents
from interactions.sinks.inserts import insert_documents
from interactions.sinks.retry import retrying
from interactions.source import kafka_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunMode:
    """How the query is triggered: continuously every interval, or once over what is available now; and whether
    the sink writes (a dry run computes every aggregate and builds every document but stores only the batches'
    figures: Spark's own throughput, without the database's). A dry run is its own query, on its own checkpoint
    started afresh each time (`checkpoint_location`), with its own `batches` records: it never advances the real
    checkpoint past records the database did not get."""

    available_now: bool = False
    dry_run: bool = False


@dataclass
class RunningPipeline:
    """The started query and the listener that records its progress."""

    spark: SparkSession
    query: StreamingQuery
    listener: StreamingQueryListener
    closers: list[Callable[[], None]] = field(default_factory=list)  # alerting, health endpoint: in this order

    @property
    def queries(self) -> list[StreamingQuery]:
        return [self.query]

    def await_termination(self) -> None:
        """Until the query stops (an available-now run stops by itself); raises if it failed. Then delivers the alert
        notifications still queued (bounded) and closes the health endpoint."""
        try:
            self.query.awaitTermination()
        finally:
            self.close()

    def stop(self) -> None:
        self.query.stop()
        self.spark.streams.removeListener(self.listener)
        self.close()

    def close(self) -> None:
        while self.closers:
            self.closers.pop(0)()


def dataflow_settings(config: PipelineConfig, user_rate: dt.timedelta | None = None) -> dataflow.Settings:
    job = config.job
    return dataflow.Settings(
        topic=config.kafka.topic, allowed_lateness_s=parse_duration_seconds(job.watermark_delay),
        max_future_skew_s=parse_duration_seconds(job.max_future_skew),
        duplicate_window_s=parse_duration_seconds(job.duplicate_window),
        max_partition_lag_s=parse_duration_seconds(job.max_partition_lag),
        slot_s=parse_duration_seconds(job.recent_slide),
        user_rate_s=user_rate.total_seconds() if user_rate else None, archive=job.archive_raw_events)


def sink_settings(config: PipelineConfig, dry_run: bool = False) -> SinkSettings:
    job, store = config.job, config.mongo
    return SinkSettings(
        uri=store.uri, database=store.database, topic=config.kafka.topic, write_batch_size=store.write_batch_size,
        top_n_users=job.top_n_users, top_n_items=job.top_n_items, top_n_users_last_hour=job.top_n_users_last_hour,
        recent_window=dt.timedelta(seconds=parse_duration_seconds(job.recent_window)),
        recent_slide=dt.timedelta(seconds=parse_duration_seconds(job.recent_slide)), archive=job.archive_raw_events,
        dry_run=dry_run, query=DRY_RUN_QUERY if dry_run else QUERY)


def checkpoint_location(config: PipelineConfig, mode: RunMode) -> str:
    """Where Spark keeps the query's offsets and state: `<checkpoint_dir>/interactions`; for a dry run a fresh one
    in the folder beside it (interactions.preflight.dry_run_checkpoint), removed first if an earlier dry run left
    one, so every dry run reads from the configured starting offsets."""
    if not mode.dry_run:
        return os.path.join(config.job.checkpoint_dir, QUERY)
    location = dry_run_checkpoint(config) / DRY_RUN_QUERY
    shutil.rmtree(location, ignore_errors=True)
    return str(location)


def retention_seconds(config: PipelineConfig) -> dict[str, float | None]:
    def seconds(text: str) -> float | None:
        return parse_duration_seconds(text) if text else None

    kept = config.retention
    return {docs.MINUTE_COUNTS: seconds(kept.minute_counts), docs.HOURLY_COUNTS: seconds(kept.hourly_counts),
            docs.DAILY_COUNTS: seconds(kept.daily_counts), docs.USER_SLOTS: seconds(kept.user_slots),
            docs.BATCHES: seconds(kept.batches), docs.DEAD_LETTERS: seconds(kept.dead_letters),
            docs.LATE_EVENTS: seconds(kept.late_events),
            docs.EVENTS_RAW: seconds(config.job.archive_retention)}


def start_queries(spark: SparkSession, config: PipelineConfig, mode: RunMode = RunMode(),
                  write: Write = replace_documents, insert: Write = insert_documents) -> RunningPipeline:
    """Start the query. `write` stores one collection's documents (the connector), `insert` one collection of
    set-aside records (a test injects failures into either). Once
    it has started, the database is bound to Spark's query id (interactions.preflight checks it at the next start)."""
    job, kafka, store = config.job, config.kafka, config.mongo
    checkpoint = checkpoint_location(config, mode)
    with client(store.uri) as mongo:
        db = mongo[store.database]
        indexes.ensure_indexes(db, retention_seconds(config))
        totals.ensure_totals_document(db)

    # None when no rules; a dry run notifies nobody (it writes no alerts into the database it does not fill)
    monitor = None if mode.dry_run else AlertMonitor.from_config(config)
    metrics = health.PipelineHealth(store.uri, store.database,
                                    parse_duration_seconds(config.health.metrics_retention),
                                    config.health.prometheus_port, config.health.prometheus_host).start()
    closers = ([monitor.close] if monitor else []) + [metrics.close]
    if monitor is not None:
        metrics.alert_states = monitor.firing
    listener = ProgressRecorder(store.uri, store.database, metrics, monitor)
    spark.streams.addListener(listener)

    records = kafka_records(spark, kafka.bootstrap_servers, kafka.topic, starting_offsets=kafka.starting_offsets,
                            max_offsets_per_trigger=job.max_offsets_per_trigger,
                            starting_timestamp_ms=kafka.starting_timestamp_ms())
    out = dataflow.interactions(records, dataflow_settings(config, monitor.user_rate_window if monitor else None))
    sink = retrying(BatchWriter(sink_settings(config, mode.dry_run), monitor, write, insert),
                    parse_duration_seconds(store.unavailable_patience))
    writer = (out.writeStream.queryName(DRY_RUN_QUERY if mode.dry_run else QUERY).outputMode("update")
              .option("checkpointLocation", checkpoint).foreachBatch(sink))
    writer = writer.trigger(availableNow=True) if mode.available_now \
        else writer.trigger(processingTime=job.trigger_interval)
    running = RunningPipeline(spark, writer.start(), listener, closers)
    if not mode.dry_run:
        try:
            bind_query(config, running.query.id)
        except BaseException:
            running.stop()
            raise
    return running
