"""Assemble and start the job's streaming queries from a PipelineConfig. The only place that wires sources,
transformations and sinks together."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from conf import PipelineConfig
from conf.loader import parse_duration_seconds
from interactions import aggregates, health, parsing, user_rate
from interactions.alerting.monitor import AlertMonitor
from interactions.sinks import mongo
from interactions.sinks.retry import retrying
from interactions.source import kafka_records

log = logging.getLogger(__name__)

AGGREGATES, RECORDS, RECENT_USERS = "aggregates", "records", "recent_users"
USER_RATE = "user_rate"  # only when an alert rule needs interactions per user per minute


@dataclass(frozen=True)
class RunMode:
    """How the queries are triggered: continuously every interval, or once over what is available now; and whether
    the sinks write (a dry run computes every aggregate and builds every document but stores only the batches'
    figures: Spark's own throughput, without the database's)."""
    available_now: bool = False
    dry_run: bool = False


@dataclass
class RunningPipeline:
    """The started queries and the listener that records their progress."""
    spark: SparkSession
    queries: list[StreamingQuery]
    listener: StreamingQueryListener
    closers: list[Callable[[], None]] = field(default_factory=list)  # alerting, health endpoint: in this order

    def await_termination(self) -> None:
        """Until every query has stopped (available-now runs stop by themselves); raises if one failed. Then
        delivers the alert notifications still queued (bounded) and closes the health endpoint."""
        try:
            for query in self.queries:
                query.awaitTermination()
        finally:
            self.close()

    def stop(self) -> None:
        for query in self.queries:
            query.stop()
        self.spark.streams.removeListener(self.listener)
        self.close()

    def close(self) -> None:
        while self.closers:
            self.closers.pop(0)()


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

    monitor = AlertMonitor.from_config(config)  # None when no rules
    metrics = health.PipelineHealth(store.uri, store.database,
                                    parse_duration_seconds(config.health.metrics_retention),
                                    config.health.prometheus_port, config.health.prometheus_host).start()
    closers = ([monitor.close] if monitor else []) + [metrics.close]
    if monitor is not None:
        metrics.alert_states = monitor.firing
    listener = ProgressRecorder(store.uri, store.database, metrics, monitor)
    spark.streams.addListener(listener)

    patience = parse_duration_seconds(store.unavailable_patience)

    def trigger(writer, interval: str = job.side_trigger_interval, pool: str = "side"):
        # the query's thread inherits the scheduler pool set now (conf/spark-fairscheduler.xml): the aggregates
        # query has its own, the others share "side"
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
        return writer.trigger(availableNow=True) if mode.available_now \
            else writer.trigger(processingTime=interval)

    aggregates_query = trigger(
        totals.writeStream.queryName(AGGREGATES).outputMode("update")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, AGGREGATES))
        .foreachBatch(retrying(mongo.AggregatesSink(store.uri, store.database, store.write_batch_size,
                                                    job.top_n_users, job.top_n_items,
                                                    monitor.on_aggregates_batch if monitor else None,
                                                    dry_run=mode.dry_run),
                               patience)), job.trigger_interval, AGGREGATES).start()
    records_query = trigger(
        aggregates.set_aside(parsed, job.archive_raw_events).writeStream.queryName(RECORDS).outputMode("append")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, RECORDS))
        .foreachBatch(retrying(mongo.RecordsSink(store.uri, store.database, store.write_batch_size,
                                                 dry_run=mode.dry_run),
                               patience))).start()
    recent_query = trigger(
        recent.writeStream.queryName(RECENT_USERS).outputMode("update")
        .option("checkpointLocation", os.path.join(job.checkpoint_dir, RECENT_USERS))
        .foreachBatch(retrying(mongo.RecentUsersSink(store.uri, store.database, job.top_n_users_last_hour,
                                                     parse_duration_seconds(job.recent_window),
                                                     parse_duration_seconds(job.recent_slide),
                                                     dry_run=mode.dry_run),
                               patience))).start()
    queries = [aggregates_query, records_query, recent_query]
    if monitor is not None and monitor.user_rate_window is not None:
        queries.append(trigger(
            user_rate.interactions_per_user(events, f"{int(monitor.user_rate_window.total_seconds())} seconds")
            .writeStream.queryName(USER_RATE).outputMode("update")
            .option("checkpointLocation", os.path.join(job.checkpoint_dir, USER_RATE))
            .foreachBatch(user_rate.BusiestUsersFeed(monitor.on_busiest_users))).start())
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
    return RunningPipeline(spark, queries, listener, closers)


class ProgressRecorder(StreamingQueryListener):
    """Writes each finished batch's progress (rows, duration, watermark, late and duplicate rows) to MongoDB and
    logs one line per batch; health figures go to `pipeline_metrics` and the Prometheus endpoint, and the records
    query's dead-letter counts to the alert rules."""

    def __init__(self, uri: str, database: str, metrics: health.PipelineHealth | None = None,
                 alerts: AlertMonitor | None = None):
        self.uri, self.database = uri, database
        self.metrics, self.alerts = metrics, alerts

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
        try:
            figures = self.metrics.record(name, progress) if self.metrics else health.batch_metrics(name, progress)
            if self.alerts is not None and name == RECORDS and figures["dead_letters"] is not None:
                self.alerts.on_records_batch(figures["batch_id"], figures["recorded_at"], figures["input_rows"],
                                             figures["dead_letters"])
            log.info("%s batch %s: %s", name, progress.get("batchId"), health.describe(figures))
        except Exception as exc:  # health figures must never stop the stream
            log.warning("no health figures for %s batch %s: %s", name, progress.get("batchId"), exc)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        if event.exception:
            log.error("query %s failed: %s", event.id, event.exception.splitlines()[0])
