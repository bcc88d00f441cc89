"""Deduplicated records -> partial facet rows: what one partition of one micro-batch adds to each aggregate.

Pure Python over Arrow record batches (the mapInArrow function between deduplication and the stateful
aggregation): polars group-bys, no Spark, no I/O. Every event feeds several *facets*, each a running aggregate kept in
Spark's state (interactions.aggregates merges these partial rows into it):

    user         per user: interactions, per type, revenue, distinct items (a sketch), first/last event
    item         per item: interactions, per type, revenue, distinct users (a sketch)
    minute/hour/day   per window start x interaction type x platform: events, revenue
    user_slot    per user x slot of the recent window (5 minutes): interactions, for "top users in the last hour"
    user_minute  per user x rate window: interactions, for the alert on one user's rate (only when a rule needs it)
    global       everything: events, purchases, revenue, newest event time, and the counts of records read,
                 dead-lettered and late, from which the duplicates follow

Records that are not counted (dead letters, late events) and, when the archive is on, the counted events pass through
as rows of their own facet, so that they reach the sink in the same micro-batch.

`bucket` is when (in broker time) a key can no longer change and may leave Spark's state: a window's end plus the
allowed lateness (no record that reaches the broker later can still count for it), a record's own broker time; null
for keys that live for ever (users, items, the global row).

Why here and not in Spark SQL: one group-by per facet over a partition's events costs ~1 us per event here; the same
aggregates as one Spark aggregation over a 6-way explode cost ~15 us (bench/dataflow.py).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator

import polars as pl
import pyarrow as pa
from datasketches import hll_sketch, tgt_hll_type

from contract.events import INTERACTION_TYPES
from interactions.parsing import ARCHIVE_FIELDS, DEAD_LETTER, EVENT, LATE, TALLY, TIMESTAMP

USER, ITEM, MINUTE, HOUR, DAY = "user", "item", "minute", "hour", "day"
USER_SLOT, USER_MINUTE, GLOBAL, ARCHIVE = "user_slot", "user_minute", "global", "archive"
WINDOWS = {MINUTE: dt.timedelta(minutes=1), HOUR: dt.timedelta(hours=1), DAY: dt.timedelta(days=1)}
RECORD_FACETS = (DEAD_LETTER, LATE, ARCHIVE)
# Apache DataSketches HLL, 2^12 registers: exact while a set is small (list and set modes keep the hashes
# themselves), 1.04 / sqrt(4096) = 1.6 % relative standard error beyond. Spark merges them (hll_union_agg).
SKETCH_LG_K = 12

RECORD_FIELDS = [("partition", pa.int32()), ("offset", pa.int64()), ("kafka_timestamp", TIMESTAMP),
                 ("raw", pa.string()), ("reason", pa.string()), ("event_id", pa.string()), ("user_id", pa.string()),
                 ("item_id", pa.string()), ("interaction_type", pa.string()), ("platform", pa.string()),
                 ("event_time", TIMESTAMP)]


def partial_schema(archive: bool) -> pa.Schema:
    fields = [("facet", pa.string()), ("key", pa.string()), ("ftype", pa.string()), ("fplatform", pa.string()),
              ("start", TIMESTAMP), ("bucket", TIMESTAMP), ("interactions", pa.int64())]
    fields += [(t, pa.int64()) for t in INTERACTION_TYPES]
    fields += [("revenue", pa.float64()), ("sketch", pa.binary()), ("first_time", TIMESTAMP),
               ("last_time", TIMESTAMP), ("last_id", pa.string()), ("last_platform", pa.string()),
               ("valid_records", pa.int64()), ("dead_letters", pa.int64()), ("late_events", pa.int64())]
    return pa.schema(fields + RECORD_FIELDS + (list(ARCHIVE_FIELDS) if archive else []))


def partial_facets_function(allowed_lateness_s: float, slot_s: float, user_rate_s: float | None, archive: bool
                            ) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: all of a partition's deduplicated records in, its partial facet rows out."""
    schema = partial_schema(archive)
    lateness = dt.timedelta(seconds=allowed_lateness_s)

    def aggregate(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        collected = [b for b in batches if b.num_rows]
        if not collected:
            return
        records = pl.from_arrow(pa.Table.from_batches(collected))
        assert isinstance(records, pl.DataFrame)
        out = partial_facets(records, lateness, dt.timedelta(seconds=slot_s),
                             dt.timedelta(seconds=user_rate_s) if user_rate_s else None, archive)
        yield from conform(out, schema).to_batches()

    return aggregate


def partial_facets(records: pl.DataFrame, lateness: dt.timedelta, slot: dt.timedelta,
                   user_rate: dt.timedelta | None, archive: bool) -> pl.DataFrame:
    """Partial facet rows of one partition's records (columns of interactions.parsing.record_schema)."""
    events = records.filter(pl.col("kind") == EVENT)
    parts = [_users(events), _items(events)]
    for name, length in WINDOWS.items():
        parts.append(_windows(events, name, length, lateness))
    parts.append(_per_user_window(events, USER_SLOT, slot, lateness))
    if user_rate is not None:
        parts.append(_per_user_window(events, USER_MINUTE, user_rate, lateness))
    parts.append(_global(records, events))
    parts.append(_passing_records(records.filter(pl.col("kind").is_in([DEAD_LETTER, LATE]))))
    if archive:
        parts.append(_passing_records(events.with_columns(pl.lit(ARCHIVE).alias("kind")), key="event_id"))
    return pl.concat([p for p in parts if p.height], how="diagonal_relaxed") if any(p.height for p in parts) \
        else pl.DataFrame()


def _counts() -> list[pl.Expr]:
    return [pl.len().cast(pl.Int64).alias("interactions"), pl.col("revenue").sum().alias("revenue")] + \
        [(pl.col("interaction_type") == t).sum().cast(pl.Int64).alias(t) for t in INTERACTION_TYPES]


def _users(events: pl.DataFrame) -> pl.DataFrame:
    latest = ["event_time", "event_id"]
    users = events.group_by("user_id").agg(
        *_counts(), pl.col("event_time").min().alias("first_time"), pl.col("event_time").max().alias("last_time"),
        pl.col("event_id").sort_by(latest).last().alias("last_id"),
        pl.col("platform").sort_by(latest).last().alias("last_platform"))
    items_of = _sketches(events, "user_id", "item_id")
    return users.with_columns(pl.lit(USER).alias("facet"), pl.col("user_id").alias("key"),
                              pl.col("user_id").replace_strict(items_of, default=None, return_dtype=pl.Binary)
                              .alias("sketch")).drop("user_id")


def _items(events: pl.DataFrame) -> pl.DataFrame:
    with_item = events.filter(pl.col("item_id").is_not_null())
    users_of = _sketches(with_item, "item_id", "user_id")
    return with_item.group_by("item_id").agg(*_counts()).with_columns(
        pl.lit(ITEM).alias("facet"), pl.col("item_id").alias("key"),
        pl.col("item_id").replace_strict(users_of, default=None, return_dtype=pl.Binary).alias("sketch")
    ).drop("item_id")


def _sketches(events: pl.DataFrame, key: str, value: str) -> dict[str, bytes]:
    """Key -> serialized HLL sketch of its distinct values among these events."""
    out: dict[str, bytes] = {}
    pairs = events.filter(pl.col(value).is_not_null()).select(key, value).unique()
    for k, values in pairs.group_by(key).agg(pl.col(value)).iter_rows():
        sketch = hll_sketch(SKETCH_LG_K, tgt_hll_type.HLL_8)
        for v in values:
            sketch.update(v)
        out[k] = sketch.serialize_compact()
    return out


def _windows(events: pl.DataFrame, name: str, length: dt.timedelta, lateness: dt.timedelta) -> pl.DataFrame:
    return _truncated(events, length).group_by("start", "interaction_type", "platform").agg(
        pl.len().cast(pl.Int64).alias("interactions"), pl.col("revenue").sum().alias("revenue")).with_columns(
        pl.lit(name).alias("facet"), pl.col("interaction_type").alias("ftype"), pl.col("platform").alias("fplatform"),
        (pl.col("start") + length + lateness).alias("bucket")).drop("interaction_type", "platform")


def _per_user_window(events: pl.DataFrame, name: str, length: dt.timedelta, lateness: dt.timedelta
                     ) -> pl.DataFrame:
    return _truncated(events, length).group_by("user_id", "start").agg(
        pl.len().cast(pl.Int64).alias("interactions")).with_columns(
        pl.lit(name).alias("facet"), pl.col("user_id").alias("key"),
        (pl.col("start") + length + lateness).alias("bucket")).drop("user_id")


def _truncated(events: pl.DataFrame, length: dt.timedelta) -> pl.DataFrame:
    """Events with `start`: the start of their window of `length`, aligned to the epoch (UTC)."""
    return events.with_columns(pl.col("event_time").dt.truncate(length).alias("start"))


def _global(records: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    kinds = records.get_column("kind")
    return pl.DataFrame({
        "facet": [GLOBAL], "key": ["all"], "interactions": [events.height],
        "purchase": [int((events.get_column("interaction_type") == "purchase").sum())],
        "revenue": [float(events.get_column("revenue").sum() or 0.0)],
        "last_time": [events.get_column("event_time").max()],
        "valid_records": [int(records.filter(pl.col("kind") == TALLY).get_column("tally").sum() or 0)],
        "dead_letters": [int((kinds == DEAD_LETTER).sum())], "late_events": [int((kinds == LATE).sum())],
    }, schema_overrides={"last_time": pl.Datetime("us", "UTC")})


def _passing_records(records: pl.DataFrame, key: str | None = None) -> pl.DataFrame:
    """Records that reach the sink one by one, keyed by their coordinates (or, archived events, their event id); they
    leave the state with the watermark's reading of their broker time (interactions.dataflow.watermark_time: a
    record stamped far ahead of the job's clock has none, and leaves with the newest of the others it came with)."""
    coordinates = pl.concat_str([pl.col("partition").cast(pl.Utf8), pl.col("offset").cast(pl.Utf8)], separator=":")
    clock = pl.col("watermark_time") if "watermark_time" in records.columns else pl.col("kafka_timestamp")
    return records.with_columns(pl.col("kind").alias("facet"),
                                (pl.col(key) if key else coordinates).alias("key"),
                                clock.fill_null(clock.max()).fill_null(pl.col("kafka_timestamp")).alias("bucket"))


def conform(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` with exactly the columns of `schema`, in its order and types (absent columns null)."""
    if frame.height == 0:
        return schema.empty_table()
    columns = []
    for f in schema:
        values = frame.get_column(f.name).to_arrow() if f.name in frame.columns else pa.nulls(frame.height)
        columns.append(values.cast(f.type))
    return pa.Table.from_arrays(columns, schema=schema)
