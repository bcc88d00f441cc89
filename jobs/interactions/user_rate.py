"""Interactions per user per short window (bot suspicion): a small stateful aggregation of its own.

Only started when an alert rule uses `max_user_events_per_minute`. It reads the deduplicated, watermarked events
(aggregates.deduplicated), so Spark drops a window's per-user counts once the watermark passes the window's end:
state stays bounded by the users active in the last few windows.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BusiestUsersCallback = Callable[[Iterable[tuple[dt.datetime, str, int]], int], None]


def interactions_per_user(events: DataFrame, window: str = "1 minute") -> DataFrame:
    """(window_start, window_end, user_id, interactions) per tumbling event-time window. Stateful on a stream; in
    update mode each batch emits the absolute counts of the (window, user) pairs it changed."""
    return (events.groupBy(F.window("event_time", window).alias("window"), "user_id")
            .agg(F.count(F.lit(1)).alias("interactions"))
            .select(F.col("window.start").alias("window_start"), F.col("window.end").alias("window_end"),
                    "user_id", "interactions"))


def busiest_users(counts: DataFrame) -> DataFrame:
    """Per window, the user with the most interactions among these rows (ties: the greater user_id, so a replay
    picks the same user): (window_start, user_id, interactions)."""
    best = F.max(F.struct(F.col("interactions"), F.col("user_id"))).alias("best")
    return counts.groupBy("window_start").agg(best).select(
        "window_start", F.col("best.user_id").alias("user_id"), F.col("best.interactions").alias("interactions"))


class BusiestUsersFeed:
    """foreachBatch of the per-user rate query: hands each changed window's busiest user to a callback (the alert
    monitor). Writes nothing itself, so replaying a batch only repeats an evaluation that is idempotent."""

    def __init__(self, callback: BusiestUsersCallback):
        self.callback = callback

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        micros = busiest_users(batch).select(F.unix_micros("window_start").alias("start"), "user_id",
                                             "interactions").collect()
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        rows = [(epoch + dt.timedelta(microseconds=r["start"]), r["user_id"], int(r["interactions"]))
                for r in micros]
        if rows:
            self.callback(rows, batch_id)
