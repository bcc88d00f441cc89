"""Partial facet rows -> running totals per facet key: pure DataFrame -> DataFrame, the same for a stream and a batch.

One stateful aggregation keeps every aggregate: Spark's state holds, per facet key, the sums, the merged sketch, the
extremes. In update mode each micro-batch emits the *absolute* current values of exactly the keys it changed, so
the sink overwrites documents with values computed from state: writing a batch twice leaves MongoDB as if it had
been written once.

A key leaves the state when the watermark (broker time) passes its `bucket` (interactions.facets): windows once no
record can still count for them, passing records after the watermark delay; users, items and the global row never.
Spark evicts by a grouping column that carries the watermark's metadata; `bucket` is computed, so it is given that
metadata here (the key Spark's own withWatermark sets), which also makes Spark drop a row whose bucket is already
behind the watermark (counted in numRowsDroppedByWatermark, never silently).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.events import INTERACTION_TYPES
from interactions.facets import RECORD_FACETS, USER

# pyspark.sql.catalyst's EventTimeWatermark.delayKey: the attribute metadata by which stateful operators find the
# event-time column of their keys (for eviction) and of their input (for late rows).
WATERMARK_METADATA_KEY = "spark.watermarkDelayMs"
KEY_COLUMNS = ("facet", "key", "ftype", "fplatform", "start", "bucket")
SUMMED = ("interactions", *INTERACTION_TYPES, "revenue", "valid_records", "dead_letters", "late_events")
RECORD_COLUMNS = ("partition", "offset", "kafka_timestamp", "raw", "reason", "event_id", "user_id", "item_id",
                  "interaction_type", "platform", "event_time")
ARCHIVE_COLUMNS = ("session_id", "price", "quantity", "country")


def with_bucket_eviction(partials: DataFrame, watermark_delay_ms: int) -> DataFrame:
    """`bucket` marked as the event-time column of the aggregation's keys (see the module docstring)."""
    return partials.withColumn("bucket", F.col("bucket").alias(
        "bucket", metadata={WATERMARK_METADATA_KEY: int(watermark_delay_ms)}))


def running_totals(partials: DataFrame, archive: bool = False) -> DataFrame:
    """Per facet key: the merged totals, and `first_batch_time`, the time of the micro-batch that created the key
    (Spark's batch timestamp, the same when a batch is replayed), so a batch can tell new users and items."""
    is_record = F.col("facet").isin(*RECORD_FACETS)
    record = F.struct(*RECORD_COLUMNS, *(ARCHIVE_COLUMNS if archive else ()))
    latest = F.struct("last_time", "last_id")
    merged = partials.withColumn("batch_time", F.current_timestamp()).groupBy(*KEY_COLUMNS).agg(
        *[F.sum(name).alias(name) for name in SUMMED],
        F.hll_union_agg("sketch").alias("sketch"),
        F.min("first_time").alias("first_event_time"),
        F.max("last_time").alias("last_event_time"),
        F.max_by(F.when(F.col("facet") == USER, F.col("last_platform")), latest).alias("last_platform"),
        F.min("batch_time").alias("first_batch_time"),
        F.first(F.when(is_record, record), ignorenulls=True).alias("record"),
    )
    return merged.select(*KEY_COLUMNS, *SUMMED, _estimate("sketch").alias("distinct"), "first_event_time",
                         "last_event_time", "last_platform", "first_batch_time",
                         F.current_timestamp().alias("batch_time"), "record")


def _estimate(sketch: str) -> Column:
    return F.when(F.col(sketch).isNotNull(), F.hll_sketch_estimate(sketch))
