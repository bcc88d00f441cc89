"""Aggregate transformations: pure DataFrame -> DataFrame functions, the same for a stream and for a batch.

All aggregates come out of ONE stateful aggregation over a "facet" key: every event is expanded into one row per
facet it feeds (its user, its item, its minute x type x platform, its hour x type x platform, the global total), and
a single groupBy keeps the running totals of every facet key in Spark's state store. In update mode each micro-batch
emits the *absolute* current values of exactly the keys it changed, so the sink only ever overwrites documents with
values computed from state: writing a batch twice leaves MongoDB as if it had been written once.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from interactions.schema import INTERACTION_TYPES

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "interaction_type", "platform", "session_id", "event_time",
                 "price", "quantity", "country", "revenue")

USER, ITEM, MINUTE, HOUR, GLOBAL = "user", "item", "minute", "hour", "global"
FACETS = (USER, ITEM, MINUTE, HOUR, GLOBAL)


def valid_events(parsed: DataFrame) -> DataFrame:
    """The records that passed validation and arrived in time, as typed events."""
    return parsed.where(F.col("error").isNull() & ~F.col("late")).select(*EVENT_COLUMNS)


def set_aside(parsed: DataFrame, archive_valid_events: bool) -> DataFrame:
    """What the records query stores record by record: dead letters (raw payload, Kafka coordinates, reason), late
    events, and, when the raw-event archive is on, the events that count (`reason` and `late` null/false)."""
    kept = parsed if archive_valid_events else parsed.where(F.col("error").isNotNull() | F.col("late"))
    return kept.select(F.concat_ws(":", "topic", "partition", "offset").alias("coordinates"),
                       "topic", "partition", "offset", "kafka_timestamp", "raw", F.col("error").alias("reason"),
                       "late", *EVENT_COLUMNS)


def deduplicated(events: DataFrame, watermark_delay: str) -> DataFrame:
    """Drop redelivered events (same event_id), remembering each id until the watermark passes it.

    The watermark (newest event time seen - delay) bounds the state of every stateful operator. Late events are
    already set aside by parsing (broker-time lateness), so the job gives Spark a delay of the allowed lateness plus
    the allowed future skew: then Spark's watermark never drops an event the lateness rule accepted (anything it
    still drops is reported as dropped_by_watermark in `batches`).
    """
    return events.withWatermark("event_time", watermark_delay).dropDuplicatesWithinWatermark(["event_id"])


def facet_rows(events: DataFrame) -> DataFrame:
    """One row per (event, facet it feeds); the facet key is (facet, key, interaction_type, platform, bucket)."""
    null_str = F.lit(None).cast("string")
    null_ts = F.lit(None).cast("timestamp")

    def facet(name: str, key: Column, with_type: bool, bucket: Column) -> Column:
        return F.struct(
            F.lit(name).alias("facet"), key.alias("key"),
            (F.col("interaction_type") if with_type else null_str).alias("facet_type"),
            (F.col("platform") if with_type else null_str).alias("facet_platform"),
            bucket.alias("bucket"))

    facets = F.array(
        facet(USER, F.col("user_id"), False, null_ts),
        facet(ITEM, F.col("item_id"), False, null_ts),
        facet(MINUTE, null_str, True, F.date_trunc("minute", "event_time")),
        facet(HOUR, null_str, True, F.date_trunc("hour", "event_time")),
        facet(GLOBAL, F.lit("all"), False, null_ts),
    )
    exploded = events.select("*", F.explode(facets).alias("f")).select("f.*", *EVENT_COLUMNS)
    return exploded.where((F.col("facet") != ITEM) | F.col("key").isNotNull())


def facet_totals(rows: DataFrame) -> DataFrame:
    """Running totals per facet key. Stateful when `rows` is a stream."""
    by_type = [F.count_if(F.col("interaction_type") == t).alias(t) for t in INTERACTION_TYPES]
    latest = F.struct("event_time", "event_id")
    return rows.groupBy("facet", "key", "facet_type", "facet_platform", "bucket").agg(
        F.count(F.lit(1)).alias("interactions"),
        *by_type,
        F.sum("revenue").alias("revenue"),
        F.approx_count_distinct("item_id").alias("distinct_items"),
        F.approx_count_distinct("user_id").alias("distinct_users"),
        F.min("event_time").alias("first_event_time"),
        F.max("event_time").alias("last_event_time"),
        F.max_by("platform", latest).alias("last_platform"),
    )


def recent_user_activity(events: DataFrame, length: str, slide: str) -> DataFrame:
    """Interactions per user in sliding event-time windows (e.g. 1 hour sliding every 5 minutes).

    `events` must carry the watermark (deduplicated() output): a window's state is dropped once the watermark passes
    its end, so state stays bounded by users x windows open. Feeds "top users in the last hour".
    """
    return (events.groupBy(F.window("event_time", length, slide).alias("window"), "user_id")
            .agg(F.count(F.lit(1)).alias("interactions"))
            .select(F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"),
                    "user_id", "interactions"))
