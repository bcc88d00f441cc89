"""Idempotent MongoDB writers for the job's two streaming queries.

Aggregates: every document is overwritten with absolute values computed from Spark's state (upsert with $set), so
a replayed micro-batch rewrites the same values. Top-N lists are merged from those absolute values (merge_top is
idempotent). Counters that are increments (dead letters, late events) are applied at most once per batch id: the
increment is conditional on the batch id recorded in the same document.
Dead letters (_id = topic:partition:offset) and archived raw events (_id = event_id) are inserted; a replay's
inserts fail as duplicates and are ignored.
"""
from __future__ import annotations

import datetime as dt
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pymongo import ASCENDING, DESCENDING, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from interactions import documents as docs
from interactions.aggregates import ITEM, MINUTE, USER

log = logging.getLogger(__name__)
DUPLICATE_KEY = 11000


def client(uri: str) -> MongoClient:
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)


def ensure_indexes(db: Database, archive_retention_seconds: float = 7 * 86400) -> None:
    """Indexes for the dashboards' queries, and the archive's TTL (created at job start; idempotent)."""
    db[docs.USER_STATS].create_index([("interactions", DESCENDING)])
    db[docs.ITEM_STATS].create_index([("interactions", DESCENDING)])
    for name in (docs.MINUTE_COUNTS, docs.HOURLY_COUNTS):
        db[name].create_index([("window_start", ASCENDING)])
        db[name].create_index([("interaction_type", ASCENDING), ("window_start", ASCENDING)])
    db[docs.TOP_USERS].create_index([("scope", ASCENDING), ("rank", ASCENDING)])
    db[docs.TOP_ITEMS].create_index([("scope", ASCENDING), ("rank", ASCENDING)])
    db[docs.DEAD_LETTERS].create_index([("kafka_timestamp", ASCENDING)])
    db[docs.LATE_EVENTS].create_index([("kafka_timestamp", ASCENDING)])
    db[docs.BATCHES].create_index([("processed_at", ASCENDING)])
    ttl = int(archive_retention_seconds)
    try:
        db[docs.EVENTS_RAW].create_index([("kafka_timestamp", ASCENDING)], name="retention", expireAfterSeconds=ttl)
    except OperationFailure:  # the retention changed: same key, new expiry
        db.command("collMod", docs.EVENTS_RAW, index={"name": "retention", "expireAfterSeconds": ttl})


def ensure_totals_document(db: Database) -> None:
    """Create the totals document before any query runs, so a conditional increment never races its creation."""
    db[docs.TOTALS].update_one({"_id": "all"}, {"$setOnInsert": {
        "events": 0, "users": 0, "items": 0, "purchases": 0, "revenue": 0.0, "dead_letters": 0,
        "late_events": 0, "duplicates": 0}}, upsert=True)


def with_epoch_micros(frame: DataFrame) -> DataFrame:
    """Timestamps as microseconds since the epoch, so executors' local time zones cannot shift them."""
    return frame.select(*[F.unix_micros(f.name).alias(f.name) if isinstance(f.dataType, TimestampType)
                          else F.col(f.name) for f in frame.schema.fields])


MinuteFigures = tuple[dt.datetime, str, str, int, float]  # window start, type, platform, events, revenue


class AggregatesSink:
    """foreachBatch sink of the aggregates query. One pass over the batch (one Spark job): every partition upserts
    its documents and hands back what the driver needs to finish (its best user and item candidates, the global
    row, the minute figures for alerting), so the stateful plan runs once and nothing is cached."""

    def __init__(self, uri: str, database: str, write_batch_size: int, top_users: int, top_items: int,
                 on_batch: Callable[[list[MinuteFigures], int], None] | None = None, dry_run: bool = False):
        self.uri, self.database, self.write_batch_size = uri, database, write_batch_size
        self.top_users, self.top_items = top_users, top_items
        self.on_batch = on_batch  # gets the batch's minute figures after they are written (alerting); never raises
        self.dry_run = dry_run  # compute and build every document, write none (only the batch's figures)
        self.last_attempt: int | None = None  # the batch id this sink last started: a repeat is a retry or replay

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = dt.datetime.now(dt.timezone.utc)
        # totals are kept up to date from each batch's new documents; the first batch this process writes and any
        # retried batch recount from the collections instead (a failed attempt may have created documents)
        recount = self.last_attempt is None or batch_id <= self.last_attempt
        self.last_attempt = batch_id
        with client(self.uri) as mongo:
            db = mongo[self.database]
            previous = db[docs.TOTALS].find_one({"_id": "all"}) or {}
            uri, database, size, dry = self.uri, self.database, self.write_batch_size, self.dry_run
            top, least_item = (self.top_users, self.top_items), previous.get("min_item_id")
            parts: list[FacetPartition] = with_epoch_micros(batch).rdd.mapPartitions(
                lambda part: [_write_facet_partition(part, uri, database, size, dry, top, least_item)]).collect()
            if not any(p.rows for p in parts):  # a no-data batch that only moved the watermark
                return
            written = sum(p.written for p in parts)
            mongo_seconds = busy_seconds([span for p in parts for span in p.spans])
            if self.on_batch is not None:
                self.on_batch([minute for p in parts for minute in p.minutes], batch_id)
            summary_started = time.monotonic()
            if not self.dry_run:
                _merge_top(db[docs.TOP_USERS], "all", "user_id",
                           _best([c for p in parts for c in p.users], self.top_users), self.top_users)
                _merge_top(db[docs.TOP_ITEMS], "all", "item_id",
                           _best([c for p in parts for c in p.items], self.top_items), self.top_items)
                global_rows = [row for p in parts for row in p.global_rows]
                if global_rows:
                    _refresh_totals(db, docs.totals_fields(global_rows[0]), previous, parts, recount)
            summary_ms = int((time.monotonic() - summary_started) * 1000)
            db[docs.BATCHES].update_one(
                {"_id": _batch_key("aggregates", batch_id)},
                {"$set": {"query": "aggregates", "batch_id": batch_id, "processed_at": started,
                          "changed_documents": int(written), "dry_run": self.dry_run,
                          "write_ms": int((dt.datetime.now(dt.timezone.utc) - started).total_seconds() * 1000),
                          "mongo_write_ms": int(mongo_seconds * 1000), "summary_ms": summary_ms}},
                upsert=True)
        log.info("aggregates batch %d: %d documents written in %.2fs (%.2fs waiting on MongoDB bulk writes)",
                 batch_id, written, (dt.datetime.now(dt.timezone.utc) - started).total_seconds(), mongo_seconds)


@dataclass
class FacetPartition:
    """What one partition's pass hands back to the driver."""
    rows: int = 0
    written: int = 0
    spans: list[tuple[float, float]] = field(default_factory=list)  # wall-clock spans of its bulk writes
    users: list[tuple[str, int]] = field(default_factory=list)  # its best (user, interactions), at most top-N
    items: list[tuple[str, int]] = field(default_factory=list)
    global_rows: list[dict[str, Any]] = field(default_factory=list)
    minutes: list[MinuteFigures] = field(default_factory=list)
    new_users: int = 0  # documents its upserts created
    new_items: int = 0
    least_item: tuple[int, str] | None = None  # its item with the fewest interactions (interactions, item)
    touched_least_item: bool = False  # it changed the item that had the fewest interactions before this batch


def _best(candidates: Iterable[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """Top n by interactions desc, key asc. Each facet key lives in exactly one partition, so the best n of the
    partitions' best n are the batch's best n."""
    return heapq.nsmallest(n, candidates, key=lambda kv: (-kv[1], kv[0]))


class RecordsSink:
    """foreachBatch sink of the records query: dead letters, and the raw-event archive when it is on."""

    def __init__(self, uri: str, database: str, write_batch_size: int, dry_run: bool = False):
        self.uri, self.database, self.write_batch_size = uri, database, write_batch_size
        self.dry_run = dry_run  # count what would be stored, store nothing (only the batch's figures)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        uri, database, size, dry = self.uri, self.database, self.write_batch_size, self.dry_run
        frame = with_epoch_micros(batch.withColumn("batch_id", F.lit(batch_id)))
        counted = frame.rdd.mapPartitions(lambda part: [_insert_records(part, uri, database, size, dry)]) \
            .fold({}, _add_counts)
        letters, late = counted.get(docs.DEAD_LETTERS, 0), counted.get(docs.LATE_EVENTS, 0)
        with client(self.uri) as mongo:
            db = mongo[self.database]
            if not self.dry_run:
                add_once(db[docs.TOTALS], "all", "dead_letters", letters, "dead_letters_batch", batch_id)
                add_once(db[docs.TOTALS], "all", "late_events", late, "late_events_batch", batch_id)
            db[docs.BATCHES].update_one(
                {"_id": _batch_key("records", batch_id)},
                {"$set": {"query": "records", "batch_id": batch_id, "dead_letters": letters, "late_events": late,
                          "archived_events": counted.get(docs.EVENTS_RAW, 0)}},
                upsert=True)
        if letters or late:
            log.info("records batch %d: %d malformed and %d late records set aside", batch_id, letters, late)


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


class RecentUsersSink:
    """foreachBatch sink of the recent-activity query: per sliding window, the top users merged from the absolute
    per-(window, user) counts of this batch; then `top_users` scope "last_hour" = the window that ends at the
    next slide boundary after the newest event time seen (it covers the last window-length minus at most a slide).
    """

    def __init__(self, uri: str, database: str, top_n: int, window_seconds: float, slide_seconds: float,
                 dry_run: bool = False):
        self.uri, self.database, self.top_n = uri, database, top_n
        self.window = dt.timedelta(seconds=window_seconds)
        self.slide = dt.timedelta(seconds=slide_seconds)
        self.dry_run = dry_run  # compute the candidates, write nothing

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import Window

        ranked = with_epoch_micros(batch).withColumn("rank", F.row_number().over(
            Window.partitionBy("window_start").orderBy(F.desc("interactions"), F.asc("user_id"))))
        best: dict[int, list[tuple[str, int]]] = {}
        for row in ranked.where(F.col("rank") <= self.top_n).collect():
            best.setdefault(row["window_start"], []).append((row["user_id"], int(row["interactions"])))
        if not best or self.dry_run:
            return
        with client(self.uri) as mongo:
            db = mongo[self.database]
            windows = db[docs.TOP_USERS_BY_WINDOW]
            for start_micros, candidates in best.items():
                start = docs._utc(start_micros)
                doc_id = start.strftime("%Y-%m-%dT%H:%M:%SZ")
                existing = windows.find_one({"_id": doc_id}) or {}
                current = [(u["user_id"], u["interactions"]) for u in existing.get("users", [])]
                merged = docs.merge_top(current, candidates, self.top_n)
                windows.replace_one({"_id": doc_id}, {
                    "window_start": start, "window_end": start + self.window,
                    "users": [{"user_id": u, "interactions": n} for u, n in merged]}, upsert=True)
            newest = windows.find_one({}, sort=[("window_start", DESCENDING)])
            # the window ending one slide after the newest window starts holds the last hour up to now
            target_end = newest["window_start"] + self.slide
            current = windows.find_one({"window_end": target_end}) or newest
            users = current.get("users", [])
            top = db[docs.TOP_USERS]
            for rank, user in enumerate(users, start=1):
                top.replace_one({"_id": f"last_hour:{rank}"}, {
                    "scope": "last_hour", "rank": rank, "user_id": user["user_id"],
                    "interactions": user["interactions"], "window_start": current["window_start"],
                    "window_end": current["window_end"]}, upsert=True)
            top.delete_many({"scope": "last_hour", "rank": {"$gt": len(users)}})
            # windows the watermark has closed long ago are no longer needed
            windows.delete_many({"window_end": {"$lt": current["window_start"]}})


def add_once(collection, doc_id: str, field: str, amount: int, guard_field: str, batch_id: int) -> bool:
    """$inc field by amount unless this batch id (or a later one) was already applied; True if applied."""
    try:
        result = collection.update_one(
            {"_id": doc_id, guard_field: {"$not": {"$gte": batch_id}}},
            {"$inc": {field: amount}, "$set": {guard_field: batch_id}}, upsert=True)
        return result.modified_count + (1 if result.upserted_id is not None else 0) > 0
    except DuplicateKeyError:
        return False  # the document exists with this batch already applied: a replay


def _batch_key(query: str, batch_id: int) -> str:
    return f"{query}:{batch_id}"


def busy_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals: how long at least one of them was open."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _write_facet_partition(rows: Iterable[Any], uri: str, database: str, size: int, dry_run: bool,
                           top: tuple[int, int], least_item: str | None = None) -> FacetPartition:
    """Upsert one partition's facet documents in bulk (absolute values, $set), and gather the partition's share of
    the driver's work; the bulk writes' spans let the driver tell time waiting on MongoDB from time computing."""
    out = FacetPartition()
    pending: dict[str, list[UpdateOne]] = {}
    users: list[tuple[str, int]] = []
    items: list[tuple[str, int]] = []
    with client(uri) as mongo:
        db = mongo[database]

        def flush(name: str) -> None:
            if pending.get(name):
                if not dry_run:
                    started = time.time()
                    created = db[name].bulk_write(pending[name], ordered=False).upserted_count
                    out.spans.append((started, time.time()))
                    if name == docs.USER_STATS:
                        out.new_users += created
                    elif name == docs.ITEM_STATS:
                        out.new_items += created
                out.written += len(pending[name])
                pending[name] = []

        for row in rows:
            out.rows += 1
            values = row.asDict()
            facet = values["facet"]
            if facet == USER:
                users.append((values["key"], int(values["interactions"])))
            elif facet == ITEM:
                items.append((values["key"], int(values["interactions"])))
                out.touched_least_item |= values["key"] == least_item
            elif facet == MINUTE:
                out.minutes.append((docs._utc(values["bucket"]), values["facet_type"], values["facet_platform"],
                                    int(values["interactions"]), float(values["revenue"] or 0.0)))
            target = docs.facet_document(values)
            if target is None:  # the global facet: the driver writes the totals
                out.global_rows.append(values)
                continue
            name, document = target
            pending.setdefault(name, []).append(
                UpdateOne({"_id": document["_id"]}, {"$set": document}, upsert=True))
            if len(pending[name]) >= size:
                flush(name)
        for name in list(pending):
            flush(name)
    out.users, out.items = _best(users, top[0]), _best(items, top[1])
    out.least_item = min(((n, key) for key, n in items), default=None)
    return out


def _insert_records(rows: Iterable[Any], uri: str, database: str, size: int,
                    dry_run: bool = False) -> dict[str, int]:
    """Insert dead letters and late events (_id = topic:partition:offset) and archived events (_id = event_id); a
    replay's or a redelivery's inserts are duplicates and skipped. Returns how many of each the partition held: the
    caller adds the batch's counts once, guarded by the batch id, whatever part of it a crash had written."""
    counts: dict[str, int] = {}
    pending: dict[str, list[InsertOne]] = {docs.DEAD_LETTERS: [], docs.LATE_EVENTS: [], docs.EVENTS_RAW: []}
    with client(uri) as mongo:
        db = mongo[database]

        def flush(name: str) -> None:
            if not pending[name] or dry_run:
                pending[name] = []
                return
            try:
                db[name].bulk_write(pending[name], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise
            pending[name] = []

        for row in rows:
            name, document = docs.set_aside_document(row.asDict())
            pending[name].append(InsertOne(document))
            counts[name] = counts.get(name, 0) + 1
            if len(pending[name]) >= size:
                flush(name)
        for name in pending:
            flush(name)
    return counts


def _merge_top(collection, scope: str, key_field: str, candidates: list[tuple[str, int]], n: int) -> None:
    if not candidates:
        return
    current = [(d[key_field], int(d["interactions"])) for d in collection.find({"scope": scope})]
    merged = docs.merge_top(current, candidates, n)
    operations = [ReplaceOne({"_id": f"{scope}:{rank}"},
                             {"scope": scope, "rank": rank, key_field: key, "interactions": value}, upsert=True)
                  for rank, (key, value) in enumerate(merged, start=1)]
    collection.bulk_write(operations, ordered=True)
    collection.delete_many({"scope": scope, "rank": {"$gt": len(merged)}})


def _refresh_totals(db: Database, exact: dict[str, Any], previous: dict[str, Any], parts: list[FacetPartition],
                    recount: bool) -> None:
    """The totals document: the global facet's exact figures, plus the user and item counts and the item extremes.

    Those are kept from the previous totals and this batch's changes, which is exact because every figure only
    grows (a count by the documents this batch created, the busiest item by this batch's busiest); the least busy
    item is looked up again only when this batch changed it. `recount` (first batch of a process, a retried batch)
    reads them from the collections instead: a scan, seconds per batch at 10^5-10^6 documents on the local server.
    """
    stats_items = db[docs.ITEM_STATS]
    batch_least = min((p.least_item for p in parts if p.least_item), default=None)
    batch_most = max((n for p in parts for _, n in p.items[:1]), default=0)
    known = all(key in previous for key in ("users", "items", "max_item_interactions", "min_item_id"))
    if recount or not known:
        users = db[docs.USER_STATS].count_documents({})
        items = stats_items.count_documents({})
        most = stats_items.find_one({}, {"interactions": 1}, sort=[("interactions", DESCENDING)])
        most_n = most["interactions"] if most else 0
        least = _least_item(stats_items)
    else:
        users = previous["users"] + sum(p.new_users for p in parts)
        items = previous["items"] + sum(p.new_items for p in parts)
        most_n = max(previous["max_item_interactions"], batch_most)
        if any(p.touched_least_item for p in parts) or previous["min_item_id"] is None:
            least = _least_item(stats_items)
        else:
            before = (previous["min_item_interactions"], previous["min_item_id"])
            least = min(before, batch_least) if batch_least else before
    db[docs.TOTALS].update_one({"_id": "all"}, {"$set": {
        **exact, "users": users, "items": items, "max_item_interactions": most_n,
        "min_item_interactions": least[0] if least else 0, "min_item_id": least[1] if least else None,
        "avg_interactions_per_user": (exact["events"] / users) if users else 0.0,
        "updated_at": dt.datetime.now(dt.timezone.utc)}}, upsert=True)


def _least_item(collection) -> tuple[int, str] | None:
    doc = collection.find_one({}, {"interactions": 1}, sort=[("interactions", ASCENDING), ("_id", ASCENDING)])
    return (doc["interactions"], doc["_id"]) if doc else None


def record_progress(db: Database, query: str, progress: dict[str, Any], counts_totals: bool) -> None:
    """Per-batch health figures from a StreamingQueryProgress. When `counts_totals` (the aggregates query),
    duplicates are added to the totals, at most once per batch id. Progress arrives just after a batch commits, so
    a crash in that instant loses one batch's figures (never counts them twice)."""
    batch_id = int(progress["batchId"])
    operators = progress.get("stateOperators") or []
    dropped = sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in operators)
    duplicates = sum(int((op.get("customMetrics") or {}).get("numDroppedDuplicateRows", 0)) for op in operators)
    watermark = (progress.get("eventTime") or {}).get("watermark")
    fields: dict[str, Any] = {
        "query": query, "batch_id": batch_id, "input_rows": int(progress.get("numInputRows", 0)),
        "dropped_by_watermark": dropped, "duplicates": duplicates,
        "duration_ms": int((progress.get("durationMs") or {}).get("triggerExecution", 0)),
        # where the batch's time went (addBatch = the sink, with the plan it runs; latestOffset, walCommit, ...)
        "phases_ms": {k: int(v) for k, v in (progress.get("durationMs") or {}).items() if k != "triggerExecution"},
        "state_commit_ms": sum(int(op.get("commitTimeMs", 0)) for op in operators),
        "input_rows_per_second": float(progress.get("inputRowsPerSecond") or 0.0),
        "processed_rows_per_second": float(progress.get("processedRowsPerSecond") or 0.0)}
    if progress.get("timestamp"):  # when the batch was triggered
        fields["processed_at"] = dt.datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00"))
    if watermark and not watermark.startswith("1970-01-01"):  # no watermark before the first batch
        fields["watermark"] = dt.datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    db[docs.BATCHES].update_one({"_id": _batch_key(query, batch_id)}, {"$set": fields}, upsert=True)
    if dropped:
        log.warning("%s batch %d: Spark's watermark dropped %d events the lateness rule had accepted",
                    query, batch_id, dropped)
    if duplicates and counts_totals:
        add_once(db[docs.TOTALS], "all", "duplicates", duplicates, "duplicates_batch", batch_id)
