"""The job's one pass over the stream, as a DataFrame: Kafka records in, running totals and passing records out.

    Kafka -> classify (parse + validate, Python over Arrow) -> watermark (broker time) -> drop duplicates
          -> partial facets (Python over Arrow, per partition) -> running totals (one stateful aggregation)

Each record is read, parsed and validated once, and each duplicate dropped once; every output of the job (dead
letters, late events, the archive, every aggregate, the counts behind totals and top lists) comes out of this one
query. Pure: it takes DataFrames and settings and returns a DataFrame; the sink is interactions.sinks.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from interactions import aggregates, facets, parsing


@dataclass(frozen=True)
class Settings:
    """What decides how records are classified and aggregated; all of it is bound to the checkpoint."""

    topic: str
    allowed_lateness_s: float        # job.watermark_delay: later than this after its event time is late
    max_future_skew_s: float         # job.max_future_skew: further ahead of the broker's clock is a dead letter
    duplicate_window_s: float        # job.duplicate_window: how long an event id is remembered, in broker time
    max_partition_lag_s: float       # job.max_partition_lag: the watermark delay, in broker time
    slot_s: float                    # job.recent_slide: the slots of "top users in the last hour"
    user_rate_s: float | None        # the per-user rate window of an alert rule, None without one
    archive: bool                    # job.archive_raw_events


def classified(kafka: DataFrame, settings: Settings) -> DataFrame:
    """One row per Kafka record (interactions.parsing.record_schema), plus a tally row per Arrow batch."""
    schema = from_arrow_schema(parsing.record_schema(settings.archive))
    return kafka.select("value", "partition", "offset", "timestamp").mapInArrow(
        parsing.classify_batches(settings.topic, settings.max_future_skew_s, settings.allowed_lateness_s,
                                 settings.archive), schema)


WATERMARK_TIME = "watermark_time"
# How far a record's broker time may run ahead of the job's clock and still count for the watermark: the two clocks'
# disagreement on different machines.
CLOCK_ALLOWANCE_S = 10.0


def watermark_time() -> Column:
    """The broker time the watermark follows: the record's, or null (no say in the watermark: Spark's running
    maximum reads a null as the epoch) when it is more than CLOCK_ALLOWANCE_S ahead of the micro-batch's own clock
    (Spark's batch timestamp, kept in the offset log, so a replay decides the same). One record stamped far ahead (a
    producer's clock on a CreateTime topic, a broker clock that jumped) would otherwise carry the watermark with it,
    and every later record, live or in a backlog, would fall behind it and be dropped. Such a record is counted as
    usual; only its redelivery is remembered no longer than its own micro-batch."""
    received = F.col("kafka_timestamp")
    return F.when(received <= F.current_timestamp() + F.make_dt_interval(secs=F.lit(CLOCK_ALLOWANCE_S)), received)


def deduplicated(records: DataFrame, duplicate_window_s: float, max_partition_lag_s: float) -> DataFrame:
    """Drop redelivered events (same event_id) that reach the broker within the duplicate window of the first.

    The watermark runs on broker time, the clock lateness is measured on too: the newest broker timestamp seen
    (bounded by watermark_time) minus the partition lag allowed. A record further behind than that is dropped
    (a partition lagging that far in a backfill; reported in `batches.dropped_by_watermark`). Spark's operator keeps
    an event id until the watermark passes the id's broker time plus the delay its event-time column names: that
    delay is set to the duplicate window here (Spark would take the watermark's own delay, keeping ids for twice the
    window when both are the window). So an id is kept for the window plus the lag, and a redelivery within the
    window of the first copy is always dropped: as a duplicate while the id is kept; once it is forgotten, the
    newest broker time is past the first copy's by the window plus the lag, so the redelivery (no later than the
    window after the first) is more than the lag behind, and dropped behind the watermark. Records that are not
    events carry unique keys and pass.
    """
    watermarked = records.withColumn(WATERMARK_TIME, watermark_time()) \
        .withWatermark(WATERMARK_TIME, f"{int(max_partition_lag_s * 1000)} milliseconds")
    remembered = F.col(WATERMARK_TIME).alias(WATERMARK_TIME, metadata={
        aggregates.WATERMARK_METADATA_KEY: int(duplicate_window_s * 1000) + 1})  # +1 ms: "within" is inclusive
    return watermarked.withColumn(WATERMARK_TIME, remembered).dropDuplicatesWithinWatermark(["dedup_key"])


def partial_facets(records: DataFrame, settings: Settings) -> DataFrame:
    schema = from_arrow_schema(facets.partial_schema(settings.archive))
    return records.mapInArrow(facets.partial_facets_function(
        settings.allowed_lateness_s, settings.slot_s, settings.user_rate_s, settings.archive), schema)


def interactions(kafka: DataFrame, settings: Settings) -> DataFrame:
    """The whole pass: per micro-batch, the changed facet keys with their absolute totals, and the batch's
    dead letters, late events and (archive on) archived events."""
    partials = partial_facets(deduplicated(classified(kafka, settings), settings.duplicate_window_s,
                                           settings.max_partition_lag_s), settings)
    evicting = aggregates.with_bucket_eviction(partials, int(settings.max_partition_lag_s * 1000))
    return aggregates.running_totals(evicting, settings.archive)
