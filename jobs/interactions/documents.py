"""Running totals -> MongoDB documents: which collection, which `_id`, which fields. Pure DataFrame -> DataFrame
projections (the connector writes them from the executors), and the pure-Python builders of what the driver writes
(the window counts, the top lists).

docs/collections.md is the contract these functions implement.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract.events import INTERACTION_TYPES
from interactions.facets import ARCHIVE, DAY, HOUR, ITEM, MINUTE, USER, WINDOWS
from interactions.parsing import DEAD_LETTER, EARLIEST_US, LATE, LATEST_US

USER_STATS = "user_stats"
ITEM_STATS = "item_stats"
MINUTE_COUNTS = "minute_counts"
HOURLY_COUNTS = "hourly_counts"
DAILY_COUNTS = "daily_counts"
USER_SLOTS = "user_slots"
TOP_USERS = "top_users"
TOP_ITEMS = "top_items"
TOP_LISTS = "top_lists"
TOTALS = "totals"
DEAD_LETTERS = "dead_letters"
EVENTS_RAW = "events_raw"
LATE_EVENTS = "late_events"
BATCHES = "batches"
PIPELINE = "pipeline"

WINDOW_COLLECTIONS = {MINUTE: MINUTE_COUNTS, HOUR: HOURLY_COUNTS, DAY: DAILY_COUNTS}
# the collections the job derives from the stream (a reset of the database clears exactly these)
DERIVED = (USER_STATS, ITEM_STATS, MINUTE_COUNTS, HOURLY_COUNTS, DAILY_COUNTS, USER_SLOTS, TOP_USERS, TOP_ITEMS,
           TOP_LISTS, TOTALS, DEAD_LETTERS, LATE_EVENTS, EVENTS_RAW, BATCHES, PIPELINE)


def user_stats(totals: DataFrame) -> DataFrame:
    return _facet(totals, USER).select(
        F.col("key").alias("_id"), F.col("key").alias("user_id"), F.col("interactions"),
        *[F.col(t) for t in INTERACTION_TYPES], F.coalesce("distinct", F.lit(0)).alias("distinct_items"),
        F.col("first_event_time"), F.col("last_event_time"), F.col("last_platform"),
        F.coalesce("revenue", F.lit(0.0)).alias("revenue"))


def item_stats(totals: DataFrame) -> DataFrame:
    return _facet(totals, ITEM).select(
        F.col("key").alias("_id"), F.col("key").alias("item_id"), F.col("interactions"),
        *[F.col(t) for t in INTERACTION_TYPES], F.coalesce("distinct", F.lit(0)).alias("distinct_users"),
        F.coalesce("revenue", F.lit(0.0)).alias("revenue"),
        F.when(F.col("view") > 0, F.col("purchase") / F.col("view")).alias("view_to_purchase_rate"))


def dead_letters(totals: DataFrame, topic: str, batch_id: int) -> DataFrame:
    """A broker time outside the contract's range (its own dead-letter reason) is stored as null: a JVM writer would
    shift it or a BSON reader refuse it."""
    received = F.col("record.kafka_timestamp")
    readable = F.unix_micros(received).between(F.lit(EARLIEST_US), F.lit(LATEST_US - 1))
    return _facet(totals, DEAD_LETTER).select(
        _coordinates(topic).alias("_id"), F.lit(topic).alias("topic"), F.col("record.partition").alias("partition"),
        F.col("record.offset").alias("offset"), F.when(readable, received).alias("kafka_timestamp"),
        F.col("record.raw").alias("raw"), F.col("record.reason").alias("reason"), F.lit(batch_id).alias("batch_id"))


def late_events(totals: DataFrame, topic: str, batch_id: int) -> DataFrame:
    received, happened = F.col("record.kafka_timestamp"), F.col("record.event_time")
    return _facet(totals, LATE).select(
        _coordinates(topic).alias("_id"), F.lit(topic).alias("topic"), F.col("record.partition").alias("partition"),
        F.col("record.offset").alias("offset"), received.alias("kafka_timestamp"), happened.alias("event_time"),
        ((F.unix_micros(received) - F.unix_micros(happened)) / 1e6).alias("lateness_seconds"),
        F.col("record.event_id").alias("event_id"), F.col("record.user_id").alias("user_id"),
        F.col("record.interaction_type").alias("interaction_type"), F.col("record.raw").alias("raw"),
        F.lit(batch_id).alias("batch_id"))


def archived_events(totals: DataFrame, topic: str) -> DataFrame:
    return _facet(totals, ARCHIVE).select(
        F.col("key").alias("_id"), *[F.col(f"record.{name}").alias(name) for name in (
            "user_id", "item_id", "interaction_type", "platform", "session_id", "event_time", "price", "quantity",
            "country")],
        F.lit(topic).alias("topic"), F.col("record.partition").alias("partition"),
        F.col("record.offset").alias("offset"), F.col("record.kafka_timestamp").alias("kafka_timestamp"))


def window_key(start: dt.datetime, interaction_type: str, platform: str) -> str:
    """A window document's `_id`: its start (UTC, to the second), interaction type and platform."""
    return f"{start.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}|{interaction_type}|{platform}"


def window_documents(facet: str, rows: Iterable[tuple[dt.datetime, str, str, int, float]]) -> list[dict[str, Any]]:
    """minute_counts, hourly_counts or daily_counts documents: per window start x type x platform, from the
    absolute figures the driver's summary holds (a few hundred a batch, written by the driver, dashboard first)."""
    length = WINDOWS[facet]
    return [{"_id": window_key(start, kind, platform), "window_start": start, "window_end": start + length,
             "interaction_type": kind, "platform": platform, "events": events, "revenue": revenue}
            for start, kind, platform, events, revenue in rows]


def _facet(totals: DataFrame, facet: str) -> DataFrame:
    return totals.where(F.col("facet") == facet)


def _coordinates(topic: str) -> Column:
    return F.concat_ws(":", F.lit(topic), F.col("record.partition"), F.col("record.offset"))


# ---- pure Python, for the driver ---------------------------------------------------------------------------------

def merge_top(current: Iterable[tuple[str, int]], candidates: Iterable[tuple[str, int]], n: int
              ) -> list[tuple[str, int]]:
    """Top n (id, value) by value desc, id asc, from the current list and fresh absolute values.

    Correct because totals only grow: a key that is neither in the current top nor changed in this batch cannot
    have overtaken one that is. Idempotent: merging the same candidates twice gives the same list.
    """
    merged = dict(current)
    for key, value in candidates:
        merged[key] = max(value, merged.get(key, value))
    return ranked(merged.items(), n)


def ranked(values: Iterable[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    return sorted(values, key=lambda kv: (-kv[1], kv[0]))[:n]


def collection_writers(topic: str, archive: bool) -> dict[str, Callable[[DataFrame, int], DataFrame]]:
    """Collection -> its documents from one batch's totals (what the connector writes, by `_id`)."""
    writers: dict[str, Callable[[DataFrame, int], DataFrame]] = {
        USER_STATS: lambda t, b: user_stats(t),
        ITEM_STATS: lambda t, b: item_stats(t),
        DEAD_LETTERS: lambda t, b: dead_letters(t, topic, b),
        LATE_EVENTS: lambda t, b: late_events(t, topic, b),
    }
    if archive:
        writers[EVENTS_RAW] = lambda t, b: archived_events(t, topic)
    return writers


# written as inserts (each document once, keyed by its own record)
INSERTED = (DEAD_LETTERS, LATE_EVENTS, EVENTS_RAW)
FACET_OF = {USER_STATS: USER, ITEM_STATS: ITEM, MINUTE_COUNTS: MINUTE, HOURLY_COUNTS: HOUR, DAILY_COUNTS: DAY,
            DEAD_LETTERS: DEAD_LETTER, LATE_EVENTS: LATE, EVENTS_RAW: ARCHIVE}
