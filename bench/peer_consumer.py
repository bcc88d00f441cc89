"""A peer for the Spark job that is not Spark: the best batching consumer one person could write for one machine.

    .venv/bin/python -m bench.peer_consumer --bootstrap-servers HOST:PORT --topic interactions \
        --mongo-uri 'mongodb://127.0.0.1:27017/?retryWrites=false' --database peer [--batch-size 200000] \
        [--lateness-seconds 120] [--max-future-skew-seconds 600] [--follow]

It reads the topic with confluent-kafka's batched `consume`, parses every record once with orjson, validates it by
the rules of the reference validator the oracle uses (`contract.validation.invalid_reason`, whose reasons it
reports), sets aside late records by their broker timestamp exactly as `verify` does, drops redelivered events by
`event_id`, groups each batch with polars into per-user, per-item and per-minute x type x platform partial counts,
and adds them to `user_stats`, `item_stats` and `minute_counts` with bulk `$inc`/`$min`/`$max` upserts
(`ordered=False`, bulks of 5,000, from one writer thread, while the main thread reads and aggregates the next
batch), then commits the Kafka offsets. Malformed records go to `dead_letters`, late ones to `late_events`, keyed
`topic:partition:offset` like the job's. The field names are those of docs/collections.md, plus `applied_batch`
(and `last_event_key` on users); the peer does not produce distinct counts (`distinct_items`, `distinct_users`),
`view_to_purchase_rate`, hourly or daily counts, top lists, `totals` or `batches`. Without --follow it stops at
the end offsets it saw when it started.

Exactly once. Before writing batch B the peer records in `peer_progress` the batch number and its offset range per
partition; every aggregate update is conditional on the document's `applied_batch` being below B and sets it to B,
so a batch is applied to each document at most once. After a crash the peer re-reads exactly the recorded ranges,
re-applies batch B (documents that already have it answer E11000 and are skipped) and continues after it; the
Kafka offsets it commits are for monitoring, the database is the source of truth.

Duplicates. An event is a duplicate when an event with the same `event_id` was counted before and that event's
time is at most `dedup horizon` (default lateness + 10 minutes) older than the newest broker timestamp seen before
the batch. Since a counted event is never more than the allowed lateness older than its broker timestamp, this
equals global de-duplication (what `verify` does) as long as a redelivery carries the same event and broker
timestamps, as read, do not run more than 10 minutes behind one another (the project's topics stamp records with
the broker's clock, LogAppendTime, so within a partition they never go back). After a restart the set is rebuilt
from the topic: the records whose broker time is within the horizon plus the allowed future skew before the
resumed batch. `user_stats.last_platform` is the platform of the latest (event time, event_id), as in `verify`: the
peer keeps each user's latest key (`last_event_key`) in memory, loaded from the database on a restart.

One consumer owns every partition of the topic (it assigns them; no group rebalancing), and one database holds one
peer's output (the peer refuses a database written by something else).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import polars as pl

from contract.events import (
    EARLIEST_TIME,
    INTERACTION_TYPES,
    ITEM_INTERACTIONS,
    LATEST_TIME,
    MAX_ID_LENGTH,
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    MAX_PRICE,
    MAX_QUANTITY,
    PLATFORMS,
)
from contract.validation import event_time as parse_event_time
from contract.validation import invalid_reason, payload_text

log = logging.getLogger("peer_consumer")

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = dt.timedelta(microseconds=1)
MINUTE_US = 60_000_000
PROGRESS_ID = "peer"
DEDUP_SLACK_S = 600.0
KAFKA_TIMEOUT_S = 30.0
_EARLIEST_MS, _LATEST_MS = ((t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
                            for t in (EARLIEST_TIME, LATEST_TIME))


@dataclasses.dataclass
class PeerResult:
    """What one run did; `events` are counted events (valid, not late, not duplicates)."""

    records: int = 0
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late: int = 0
    batches: int = 0
    documents: int = 0           # aggregate upserts sent (one per changed document per batch)
    seconds: float = 0.0         # from the first consume to the last commit, start-up and replay included
    replayed_batch: int | None = None  # the batch re-applied after a crash, if any
    write_seconds: float = 0.0   # time spent in MongoDB writes
    already_applied: int = 0     # writes skipped because the document or record already had them (replay)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class PeerError(RuntimeError):
    """A condition a user can cause (wrong database, unreachable service); ends the CLI with one line."""


# ---- one record -> an event, a dead letter or a late event ---------------------------------------------------------

class Classifier:
    """Parses and validates records with the oracle's rules, once per record, in plain Python over orjson's dicts.

    Acceptance here implies `invalid_reason(...) is None`; a record this fast check rejects is handed to
    `invalid_reason` itself, which names the reason (and, should the two readings of JSON ever differ, decides).
    """

    def __init__(self, lateness_s: float, max_future_skew_s: float) -> None:
        self.lateness_us = round(lateness_s * 1_000_000)
        self.skew_us = round(max_future_skew_s * 1_000_000)
        self.skew = dt.timedelta(seconds=max_future_skew_s)
        self._second_us: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch µs, for the generator's exact shape

    def event_time_us(self, text: str) -> int | None:
        """verify.event_time(text) as epoch microseconds; 'YYYY-MM-DDTHH:MM:SS.mmmZ' from a cache of whole seconds."""
        if len(text) == 24 and text[19] == "." and text[23] == "Z":
            base = self._second_us.get(text[:19])
            millis = text[20:23]
            if base is not None and millis.isdigit() and millis.isascii():
                return base + int(millis) * 1000
        when = parse_event_time(text)
        if when is None:
            return None
        us = (when - EPOCH) // ONE_US
        if len(text) == 24 and text[19] == "." and text[23] == "Z" and text[20:23].isdigit() and text[20:23].isascii():
            if len(self._second_us) > 100_000:
                self._second_us.clear()
            self._second_us[text[:19]] = us - int(text[20:23]) * 1000
        return us

    def fast_event(self, value: bytes | None, ts_ms: int) -> tuple[dict, int] | None:
        """(event, event time µs) when the record is valid by the fast check, else None."""
        if value is None or len(value) > MAX_PAYLOAD_BYTES or value.count(b"[") + value.count(b"{") > MAX_NESTING:
            return None  # the bounds checked before parsing: the reference decides
        if not _EARLIEST_MS <= ts_ms < _LATEST_MS:
            return None
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if type(event) is not dict:
            return None
        get = event.get
        event_id, user_id, kind, platform = get("event_id"), get("user_id"), get("interaction_type"), get("platform")
        session_id, when = get("session_id"), get("event_time")
        if (type(event_id) is not str or type(user_id) is not str or type(kind) is not str
                or type(platform) is not str or type(session_id) is not str or type(when) is not str):
            return None
        item_id, price, quantity, country = get("item_id"), get("price"), get("quantity"), get("country")
        if item_id is not None and type(item_id) is not str:
            return None
        if country is not None and type(country) is not str:
            return None
        if price is not None and (type(price) is not float and type(price) is not int or price < 0
                                  or price - price != 0 or price > MAX_PRICE):  # not finite, or past the bound
            return None
        if quantity is not None and (type(quantity) is not int or quantity < 1 or quantity > MAX_QUANTITY):
            return None
        if (len(event_id) > MAX_ID_LENGTH or len(user_id) > MAX_ID_LENGTH or len(session_id) > MAX_ID_LENGTH
                or (item_id is not None and len(item_id) > MAX_ID_LENGTH)):
            return None
        if kind not in _TYPES or platform not in _PLATFORMS or not event_id.strip() or not user_id.strip():
            return None
        if item_id is None and kind in ITEM_INTERACTIONS:
            return None
        t_us = self.event_time_us(when)
        if t_us is None or t_us > ts_ms * 1000 + self.skew_us or not _EARLIEST_MS * 1000 <= t_us < _LATEST_MS * 1000:
            return None
        return event, t_us

    def classify(self, value: bytes | None, ts_ms: int) -> tuple[dict | None, int, str | None]:
        """(event, event time µs, None) for a valid record, (None, 0, reason) for a malformed one."""
        fast = self.fast_event(value, ts_ms)
        if fast is not None:
            return fast[0], fast[1], None
        raw = text_of(value)
        try:
            received: dt.datetime | None = EPOCH + dt.timedelta(milliseconds=ts_ms)
        except OverflowError:
            received = None
        reason = invalid_reason(raw, received, self.skew, size=None if value is None else len(value))
        if reason is not None:
            return None, 0, reason
        import json  # valid for the reference reader but not for orjson: take its reading, like the oracle
        assert raw is not None  # the oracle accepts only text, whose event_time parses
        event = json.loads(raw)
        when = parse_event_time(event["event_time"])
        assert when is not None
        return event, (when - EPOCH) // ONE_US, None


_TYPES = frozenset(INTERACTION_TYPES)
_PLATFORMS = frozenset(PLATFORMS)


def text_of(value: bytes | None) -> str | None:
    return payload_text(value)


# ---- one batch of records -> partial aggregates ----------------------------------------------------------------------

@dataclasses.dataclass
class Batch:
    """One batch of records sorted into counted events (as columns), set-aside records and counts."""

    number: int
    ranges: dict[int, tuple[int, int]]        # partition -> [first offset, end offset)
    records: int = 0
    duplicates: int = 0
    max_ts_ms: int | None = None
    user_id: list = dataclasses.field(default_factory=list)
    item_id: list = dataclasses.field(default_factory=list)
    kind: list = dataclasses.field(default_factory=list)
    platform: list = dataclasses.field(default_factory=list)
    event_id: list = dataclasses.field(default_factory=list)
    t_us: list = dataclasses.field(default_factory=list)
    revenue: list = dataclasses.field(default_factory=list)
    dead_letters: list = dataclasses.field(default_factory=list)  # (partition, offset, ts_ms, raw, reason)
    late: list = dataclasses.field(default_factory=list)          # (partition, offset, ts_ms, raw, event, t_us)

    @property
    def events(self) -> int:
        return len(self.user_id)


class Deduplicator:
    """event_id -> event time (µs) of the counted event; see the module docstring for the horizon."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_us = round(horizon_s * 1_000_000)
        self.seen: dict[str, int] = {}
        self._evicted_below: int | None = None

    def floor_us(self, max_ts_ms: int | None) -> int:
        return -(1 << 62) if max_ts_ms is None else max_ts_ms * 1000 - self.horizon_us

    def evict(self, floor_us: int) -> None:
        """Forget ids that no later record can match (memory only: lookups already ignore them)."""
        if self._evicted_below is None or floor_us - self._evicted_below > MINUTE_US:
            self.seen = {k: v for k, v in self.seen.items() if v >= floor_us}
            self._evicted_below = floor_us


def sort_batch(batch: Batch, messages: Iterable, classifier: Classifier, dedup: Deduplicator,
               floor_us: int) -> Batch:
    """Classify every record of the batch and add it to the batch's columns or set-aside lists."""
    fast_event = classifier.fast_event
    lateness_us = classifier.lateness_us
    seen = dedup.seen
    user_id, item_id, kind_col, platform_col = batch.user_id, batch.item_id, batch.kind, batch.platform
    event_id_col, t_col, revenue_col = batch.event_id, batch.t_us, batch.revenue
    max_ts = batch.max_ts_ms
    for message in messages:
        value = message.value()
        ts_ms = message.timestamp()[1]
        if max_ts is None or ts_ms > max_ts:
            max_ts = ts_ms
        fast = fast_event(value, ts_ms)
        if fast is None:
            event, t_us, reason = classifier.classify(value, ts_ms)
            if event is None:  # malformed: `reason` says why
                batch.dead_letters.append((message.partition(), message.offset(), ts_ms, text_of(value), reason))
                continue
        else:
            event, t_us = fast
        if t_us < ts_ms * 1000 - lateness_us:
            batch.late.append((message.partition(), message.offset(), ts_ms, text_of(value), event, t_us))
            continue
        event_id = event["event_id"]
        previous = seen.get(event_id)
        if previous is not None and previous >= floor_us:
            batch.duplicates += 1
            continue
        seen[event_id] = t_us
        kind = event["interaction_type"]
        user_id.append(event["user_id"])
        item_id.append(event.get("item_id"))
        kind_col.append(kind)
        platform_col.append(event["platform"])
        event_id_col.append(event_id)
        t_col.append(t_us)
        if kind == "purchase":
            revenue_col.append(float((event.get("price") or 0.0) * (event.get("quantity") or 1)))
        else:
            revenue_col.append(0.0)
    batch.max_ts_ms = max_ts
    return batch


def remember_counted(messages: Iterable, classifier: Classifier, dedup: Deduplicator, floor_us: int) -> int:
    """Rebuild the duplicate set from records before the resumed batch: every counted event no older than floor."""
    seen = dedup.seen
    count = 0
    for message in messages:
        ts_ms = message.timestamp()[1]
        event, t_us, _ = classifier.classify(message.value(), ts_ms)
        if event is not None and t_us >= ts_ms * 1000 - classifier.lateness_us and t_us >= floor_us:
            seen.setdefault(event["event_id"], t_us)
            count += 1
    return count


_TYPE_SUMS = [(pl.col("interaction_type") == kind).sum().cast(pl.Int64).alias(kind) for kind in INTERACTION_TYPES]


def partial_aggregates(batch: Batch) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(per user, per item, per minute x type x platform) partial counts of the batch's counted events."""
    frame = pl.DataFrame({"user_id": batch.user_id, "item_id": batch.item_id, "interaction_type": batch.kind,
                          "platform": batch.platform, "event_id": batch.event_id, "t_us": batch.t_us,
                          "revenue": batch.revenue},
                         schema={"user_id": pl.String, "item_id": pl.String, "interaction_type": pl.String,
                                 "platform": pl.String, "event_id": pl.String, "t_us": pl.Int64,
                                 "revenue": pl.Float64})
    latest = ["t_us", "event_id"]
    users = frame.group_by("user_id").agg(
        pl.len().cast(pl.Int64).alias("interactions"), *_TYPE_SUMS, pl.col("revenue").sum(),
        pl.col("t_us").min().alias("first_us"), pl.col("t_us").max().alias("last_us"),
        pl.col("platform").sort_by(latest).last().alias("last_platform"),
        pl.col("event_id").sort_by(latest).last().alias("last_event_id"))
    items = frame.filter(pl.col("item_id").is_not_null()).group_by("item_id").agg(
        pl.len().cast(pl.Int64).alias("interactions"), *_TYPE_SUMS, pl.col("revenue").sum())
    minutes = frame.with_columns((pl.col("t_us") // MINUTE_US * MINUTE_US).alias("start_us")).group_by(
        "start_us", "interaction_type", "platform").agg(pl.len().cast(pl.Int64).alias("events"),
                                                        pl.col("revenue").sum())
    return users, items, minutes


def to_datetime(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def latest_key(us: int, event_id: str) -> str:
    """Sorts like verify's (event time, event_id): fixed-width UTC time with microseconds, then the id."""
    when = to_datetime(us)
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
            f".{when.microsecond:06d}Z|{event_id}")


def user_updates(users: pl.DataFrame, batch_number: int, latest: dict[str, str]) -> list:
    """Guarded upserts for user_stats; `latest` (user -> last_event_key in MongoDB) decides last_platform."""
    from pymongo import UpdateOne

    ops = []
    for row in users.iter_rows(named=True):
        user = row["user_id"]
        key = latest_key(row["last_us"], row["last_event_id"])
        fields = {"user_id": user, "applied_batch": batch_number}
        if key > latest.get(user, ""):
            latest[user] = key
            fields["last_platform"] = row["last_platform"]
            fields["last_event_key"] = key
        ops.append(UpdateOne(
            {"_id": user, "applied_batch": {"$lt": batch_number}},
            {"$inc": {"interactions": row["interactions"], **{t: row[t] for t in INTERACTION_TYPES},
                      "revenue": row["revenue"]},
             "$min": {"first_event_time": to_datetime(row["first_us"])},
             "$max": {"last_event_time": to_datetime(row["last_us"])},
             "$set": fields}, upsert=True))
    return ops


def item_updates(items: pl.DataFrame, batch_number: int) -> list:
    from pymongo import UpdateOne

    return [UpdateOne({"_id": row["item_id"], "applied_batch": {"$lt": batch_number}},
                      {"$inc": {"interactions": row["interactions"], **{t: row[t] for t in INTERACTION_TYPES},
                                "revenue": row["revenue"]},
                       "$set": {"item_id": row["item_id"], "applied_batch": batch_number}}, upsert=True)
            for row in items.iter_rows(named=True)]


def minute_updates(minutes: pl.DataFrame, batch_number: int) -> list:
    from pymongo import UpdateOne

    ops = []
    for start_us, kind, platform, events, revenue in minutes.iter_rows():
        start = to_datetime(start_us)
        doc_id = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}|{kind}|{platform}"
        ops.append(UpdateOne({"_id": doc_id, "applied_batch": {"$lt": batch_number}},
                             {"$inc": {"events": events, "revenue": revenue},
                              "$set": {"window_start": start, "window_end": start + dt.timedelta(minutes=1),
                                       "interaction_type": kind, "platform": platform,
                                       "applied_batch": batch_number}}, upsert=True))
    return ops


def set_aside_documents(batch: Batch, topic: str) -> tuple[list[dict], list[dict]]:
    """(dead_letters, late_events) documents, shaped like the job's (interactions.documents.set_aside_document)."""
    letters = [{"_id": f"{topic}:{p}:{o}", "topic": topic, "partition": p, "offset": o,
                "kafka_timestamp": to_datetime(ts * 1000), "raw": raw, "reason": reason, "batch_id": batch.number}
               for p, o, ts, raw, reason in batch.dead_letters]
    late = [{"_id": f"{topic}:{p}:{o}", "topic": topic, "partition": p, "offset": o,
             "kafka_timestamp": to_datetime(ts * 1000), "event_time": to_datetime(t_us),
             "lateness_seconds": (ts * 1000 - t_us) / 1e6, "event_id": event["event_id"],
             "user_id": event["user_id"], "interaction_type": event["interaction_type"], "raw": raw,
             "batch_id": batch.number}
            for p, o, ts, raw, event, t_us in batch.late]
    return letters, late


# ---- MongoDB -------------------------------------------------------------------------------------------------------

class Store:
    """The peer's database: guarded bulk upserts, idempotent inserts, the progress record."""

    def __init__(self, uri: str, database: str, bulk_size: int, kill_at: tuple[int, int] | None = None) -> None:
        from pymongo import MongoClient

        self.client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
        self.db = self.client[database]
        self.bulk_size = bulk_size
        self.kill_at = kill_at
        self._batch = 0
        self._bulks = 0  # of the current batch

    def check(self, topic: str) -> dict | None:
        """The progress record, after checking that this database is the peer's for this topic."""
        from pymongo.errors import PyMongoError

        try:
            progress = self.db.peer_progress.find_one({"_id": PROGRESS_ID})
            foreign = progress is None and self.db.user_stats.find_one({}, {"_id": 1}) is not None
        except PyMongoError as exc:
            raise PeerError(f"MongoDB unreachable: {str(exc).split(',')[0]}") from None
        if foreign:
            raise PeerError(f"database {self.db.name} already holds user_stats not written by the peer")
        if progress is not None and progress["topic"] != topic:
            raise PeerError(f"database {self.db.name} holds the peer's output for topic {progress['topic']!r}, "
                            f"not {topic!r}")
        return progress

    def user_keys(self) -> dict[str, str]:
        return {d["_id"]: d.get("last_event_key", "") for d in self.db.user_stats.find({}, {"last_event_key": 1})}

    def record_batch(self, topic: str, batch: Batch, floor_us: int, max_ts_before_ms: int | None) -> None:
        self._batch, self._bulks = batch.number, 0
        self.db.peer_progress.replace_one({"_id": PROGRESS_ID}, {
            "_id": PROGRESS_ID, "topic": topic, "batch": batch.number,
            "ranges": {str(p): list(r) for p, r in sorted(batch.ranges.items())},
            "floor_us": floor_us, "max_ts_ms": max_ts_before_ms, "recorded_at": dt.datetime.now(UTC)}, upsert=True)

    def write(self, collection: str, ops: list) -> int:
        """Bulk writes; E11000 is a document that already has this batch (guard) or this record (insert)."""
        from pymongo.errors import BulkWriteError

        skipped = 0
        target = self.db[collection]
        for at in range(0, len(ops), self.bulk_size):
            try:
                target.bulk_write(ops[at:at + self.bulk_size], ordered=False)
            except BulkWriteError as exc:
                other = [e for e in exc.details["writeErrors"] if e["code"] != 11000]
                if other:
                    raise
                skipped += len(exc.details["writeErrors"])
            self._bulks += 1
            if self.kill_at == (self._batch, self._bulks):
                log.warning("killing myself after bulk write %d of batch %d (--kill-at)", self._bulks, self._batch)
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)
        return skipped

    def insert(self, collection: str, documents: list[dict]) -> int:
        from pymongo import InsertOne

        return self.write(collection, [InsertOne(d) for d in documents])

    def close(self) -> None:
        self.client.close()


# ---- Kafka ---------------------------------------------------------------------------------------------------------

def consumer_config(bootstrap_servers: str, group_id: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap_servers, "group.id": group_id, "client.id": "peer-consumer",
            "enable.auto.commit": False, "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False, "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024, "fetch.wait.max.ms": 100,
            "queued.min.messages": 500_000, "queued.max.messages.kbytes": 512 * 1024}


class Reader:
    """The topic's partitions, assigned to this one consumer; reads batches and exact offset ranges."""

    def __init__(self, bootstrap_servers: str, topic: str, group_id: str, consume_size: int = 50_000) -> None:
        from confluent_kafka import Consumer, KafkaException

        self.topic = topic
        self.consume_size = consume_size
        self.consumer = Consumer(consumer_config(bootstrap_servers, group_id))
        try:
            metadata = self.consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            raise PeerError(f"Kafka at {bootstrap_servers} unreachable: {exc}") from None
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise PeerError(f"topic {topic!r} does not exist at {bootstrap_servers}")
        self.partitions = sorted(metadata.partitions)

    def _tp(self, partition: int, offset: int | None = None):
        from confluent_kafka import TopicPartition

        return TopicPartition(self.topic, partition) if offset is None else TopicPartition(self.topic, partition,
                                                                                            offset)

    def watermarks(self) -> dict[int, tuple[int, int]]:
        return {p: self._watermarks(p) for p in self.partitions}

    def _watermarks(self, partition: int) -> tuple[int, int]:
        """(low, high), retried while the broker is still electing the partition's leader (a new topic)."""
        from confluent_kafka import KafkaError, KafkaException

        electing = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                    KafkaError.UNKNOWN_TOPIC_OR_PART}
        deadline = time.monotonic() + KAFKA_TIMEOUT_S
        while True:
            try:
                return self.consumer.get_watermark_offsets(self._tp(partition), timeout=KAFKA_TIMEOUT_S)
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.code() in electing) or time.monotonic() > deadline:
                    raise PeerError(f"cannot read the offsets of {self.topic} [{partition}]: {exc}") from None
                time.sleep(0.2)

    def offsets_at(self, ts_ms: int) -> dict[int, int]:
        """Per partition, the first offset with broker timestamp >= ts_ms (the end offset when none)."""
        found = self.consumer.offsets_for_times([self._tp(p, max(ts_ms, 0)) for p in self.partitions],
                                                timeout=KAFKA_TIMEOUT_S)
        marks = self.watermarks()
        return {tp.partition: (tp.offset if tp.offset >= 0 else marks[tp.partition][1]) for tp in found}

    def assign(self, positions: dict[int, int]) -> None:
        self.consumer.assign([self._tp(p, o) for p, o in positions.items()])

    def poll(self, timeout: float, most: int | None = None) -> list:
        from confluent_kafka import KafkaError, KafkaException

        messages = self.consumer.consume(min(most or self.consume_size, self.consume_size), timeout=timeout)
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("Kafka: %s", error)
        return good

    def position(self, partition: int) -> int:
        return self.consumer.position([self._tp(partition)])[0].offset

    def read_ranges(self, ranges: dict[int, tuple[int, int]], timeout: float = 120.0) -> Iterator[list]:
        """Exactly the records with start <= offset < end of each partition, in lists as consumed."""
        pending = {p: (s, e) for p, (s, e) in ranges.items() if e > s}
        if not pending:
            return
        self.assign({p: s for p, (s, _) in pending.items()})
        deadline = time.monotonic() + timeout
        next_offset = {p: s for p, (s, _) in pending.items()}
        while pending:
            if time.monotonic() > deadline:
                raise PeerError(f"could not re-read offsets {pending} of {self.topic} in {timeout:.0f} s")
            chunk = []
            for message in self.poll(1.0):
                p, offset = message.partition(), message.offset()
                if p in pending and next_offset[p] <= offset < pending[p][1]:
                    chunk.append(message)
                    next_offset[p] = offset + 1
            for p in list(pending):
                if next_offset[p] >= pending[p][1] or (not chunk and self.position(p) >= pending[p][1]):
                    del pending[p]
            if chunk:
                yield chunk
        self.consumer.unassign()

    def commit(self, offsets: dict[int, int]) -> None:
        if offsets:
            self.consumer.commit(offsets=[self._tp(p, o) for p, o in offsets.items()], asynchronous=True)

    def close(self) -> None:
        self.consumer.close()


# ---- the loop ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Prepared:
    """A batch ready to write: its documents, computed while the previous batch was being written."""

    batch: Batch
    floor_us: int
    max_ts_before_ms: int | None
    ops: dict[str, list]
    letters: list[dict]
    late: list[dict]
    compute_s: float


def run(bootstrap_servers: str, topic: str, mongo_uri: str, database: str, *, lateness_s: float = 120.0,
        max_future_skew_s: float = 600.0, batch_size: int = 200_000, until_end: bool = True,
        dedup_horizon_s: float | None = None, bulk_size: int = 5000, max_batch_wait_s: float = 1.0,
        overlap: bool = True, group_id: str | None = None, stop: threading.Event | None = None,
        kill_at: tuple[int, int] | None = None) -> PeerResult:
    """Consume `topic` into `database` exactly once; returns what it did.

    until_end: stop at the end offsets seen at start (after any replay); otherwise run until `stop` is set.
    batch_size: most records per batch; a batch also closes after max_batch_wait_s, or when the topic is drained.
    overlap: read and aggregate the next batch while one writer thread writes this one (the database, a separate
    process, is the slower side); batches are still recorded and written strictly one after the other.
    kill_at: (batch, bulk): for the crash test, SIGKILL this process right after that bulk write of that batch.
    """
    result = PeerResult()
    started = time.monotonic()
    classifier = Classifier(lateness_s, max_future_skew_s)
    dedup = Deduplicator(dedup_horizon_s if dedup_horizon_s is not None else lateness_s + DEDUP_SLACK_S)
    store = Store(mongo_uri, database, bulk_size, kill_at)
    reader = Reader(bootstrap_servers, topic, group_id or f"peer-{database}")
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="peer-writer")
    in_flight: tuple[concurrent.futures.Future, Prepared] | None = None
    try:
        latest, number, max_ts_ms, positions = starting_point(store, reader, classifier=classifier, dedup=dedup,
                                                              result=result)
        ends = {p: high for p, (_, high) in reader.watermarks().items()} if until_end else None
        reader.assign(positions)
        while not (stop is not None and stop.is_set()):
            if ends is not None and at_end(reader, positions, ends):
                break
            messages = collect(reader, positions, ends=ends, batch_size=batch_size, max_wait_s=max_batch_wait_s,
                               stop=stop)
            prepared = None
            if messages:
                number += 1
                batch = batch_of(number, positions, messages)
                prepared = prepare(batch, messages, topic=topic, classifier=classifier, dedup=dedup, latest=latest,
                                   max_ts_ms=max_ts_ms)
                max_ts_ms = newest(max_ts_ms, batch.max_ts_ms)
                for p, (_, end) in batch.ranges.items():
                    positions[p] = end
            if in_flight is not None:
                finish(*in_flight, reader, result)
                in_flight = None
            if prepared is not None:
                in_flight = writer.submit(write, prepared, topic, store), prepared
                if not overlap:
                    finish(*in_flight, reader, result)
                    in_flight = None
        if in_flight is not None:
            finish(*in_flight, reader, result)
            in_flight = None
    finally:
        if in_flight is not None:
            in_flight[0].cancel()
        writer.shutdown(wait=True)
        result.seconds = time.monotonic() - started
        reader.close()
        store.close()
    log.info("done: %d records -> %d events, %d duplicates, %d dead letters, %d late in %d batches, %.1f s "
             "(%.0f records/s)", result.records, result.events, result.duplicates, result.dead_letters, result.late,
             result.batches, result.seconds, result.records_per_s)
    return result


def starting_point(store: Store, reader: Reader, *, classifier: Classifier, dedup: Deduplicator,
                   result: PeerResult) -> tuple[dict[str, str], int, int | None, dict[int, int]]:
    """(each user's latest key, the last batch's number, the newest broker timestamp before the next batch, where
    each partition continues): the topic's start for a new database, else after resuming from its progress record."""
    progress = store.check(reader.topic)
    if progress is None:
        positions = {p: low for p, (low, _) in reader.watermarks().items()}
        return {}, 0, None, positions
    latest = store.user_keys()
    number, max_ts_ms, positions = resume(progress, reader, store, classifier=classifier, dedup=dedup,
                                          latest=latest, result=result)
    return latest, number, max_ts_ms, positions


def at_end(reader: Reader, positions: dict[int, int], ends: dict[int, int]) -> bool:
    """Every non-empty partition read up to the end offset this run stops at."""
    return all(positions.get(p, 0) >= e or reader.position(p) >= e for p, e in ends.items() if e > 0)


def batch_of(number: int, positions: dict[int, int], messages: list) -> Batch:
    """Batch `number` over `messages`, with every partition's range, empty ones too: the progress record is where
    each partition resumes."""
    batch = Batch(number, {p: (offset, offset) for p, offset in positions.items()})
    for m in messages:
        p = m.partition()
        batch.ranges[p] = (batch.ranges[p][0], m.offset() + 1)
    return batch


def collect(reader: Reader, positions: dict[int, int], *, ends: dict[int, int] | None, batch_size: int,
            max_wait_s: float, stop: threading.Event | None) -> list:
    """Up to batch_size new records: stops early when the topic is drained or max_wait_s has passed."""
    messages: list = []
    deadline = time.monotonic() + max_wait_s
    while len(messages) < batch_size and time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            break
        chunk = reader.poll(min(0.5, max(deadline - time.monotonic(), 0.01)), batch_size - len(messages))
        if not chunk:
            if messages:
                break
            continue
        for m in chunk:
            p, offset = m.partition(), m.offset()
            if offset < positions.get(p, 0) or (ends is not None and offset >= ends.get(p, 0)):
                continue  # re-delivered from an old fetch, or beyond the end this run stops at
            messages.append(m)
    return messages


def newest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def prepare(batch: Batch, messages: list, *, topic: str, classifier: Classifier, dedup: Deduplicator,
            latest: dict[str, str], max_ts_ms: int | None) -> Prepared:
    """Sort and aggregate one batch into its writes (main thread; updates the duplicate set and `latest`)."""
    began = time.monotonic()
    floor_us = dedup.floor_us(max_ts_ms)
    dedup.evict(floor_us)
    batch.records = len(messages)
    sort_batch(batch, messages, classifier, dedup, floor_us)
    users, items, minutes = partial_aggregates(batch)
    ops = {"user_stats": user_updates(users, batch.number, latest),
           "item_stats": item_updates(items, batch.number),
           "minute_counts": minute_updates(minutes, batch.number)}
    letters, late = set_aside_documents(batch, topic)
    return Prepared(batch, floor_us, max_ts_ms, ops, letters, late, time.monotonic() - began)


def write(prepared: Prepared, topic: str, store: Store) -> tuple[int, float]:
    """Record the batch, then write it (the writer thread); returns (writes already applied, seconds)."""
    began = time.monotonic()
    store.record_batch(topic, prepared.batch, prepared.floor_us, prepared.max_ts_before_ms)
    skipped = sum(store.write(name, ops) for name, ops in prepared.ops.items())
    skipped += store.insert("dead_letters", prepared.letters) + store.insert("late_events", prepared.late)
    return skipped, time.monotonic() - began


def finish(future: concurrent.futures.Future, prepared: Prepared, reader: Reader, result: PeerResult) -> None:
    """Wait for a batch's writes, then commit its offsets to Kafka and count it."""
    skipped, write_s = future.result()
    batch = prepared.batch
    reader.commit({p: end for p, (_, end) in batch.ranges.items()})
    documents = sum(len(o) for o in prepared.ops.values())
    result.records += batch.records
    result.events += batch.events
    result.duplicates += batch.duplicates
    result.dead_letters += len(batch.dead_letters)
    result.late += len(batch.late)
    result.batches += 1
    result.documents += documents
    result.write_seconds += write_s
    result.already_applied += skipped
    log.info("batch %d: %d records -> %d events, %d duplicates, %d dead letters, %d late; %d documents "
             "(%d already applied); compute %.2f s, write %.2f s (%.0f documents/s)",
             batch.number, batch.records, batch.events, batch.duplicates, len(batch.dead_letters), len(batch.late),
             documents, skipped, prepared.compute_s, write_s, documents / write_s if write_s else 0.0)


def resume(progress: dict, reader: Reader, store: Store, *, classifier: Classifier, dedup: Deduplicator,
           latest: dict[str, str], result: PeerResult) -> tuple[int, int | None, dict[int, int]]:
    """After a stop or crash: rebuild the duplicate set, re-apply the last recorded batch, continue after it."""
    number = progress["batch"]
    ranges = {int(p): (r[0], r[1]) for p, r in progress["ranges"].items()}
    floor_us, max_ts_ms = progress["floor_us"], progress["max_ts_ms"]
    # a counted event at or above the floor reached the broker at most max_future_skew before its event time
    since = reader.offsets_at(floor_us // 1000 - classifier.skew_us // 1000) if max_ts_ms is not None else {}
    before = {p: (min(since.get(p, s), s), s) for p, (s, _) in ranges.items()}
    remembered = sum(remember_counted(chunk, classifier, dedup, floor_us) for chunk in reader.read_ranges(before))
    messages = [m for chunk in reader.read_ranges(ranges) for m in chunk]
    log.info("resuming: %d counted events re-read for de-duplication; re-applying batch %d (%d records)",
             remembered, number, len(messages))
    prepared = prepare(Batch(number, ranges), messages, topic=reader.topic, classifier=classifier, dedup=dedup,
                       latest=latest, max_ts_ms=max_ts_ms)
    done: concurrent.futures.Future = concurrent.futures.Future()
    done.set_result(write(prepared, reader.topic, store))
    finish(done, prepared, reader, result)
    result.replayed_batch = number
    positions = {p: low for p, (low, _) in reader.watermarks().items()}
    positions.update({p: e for p, (_, e) in ranges.items()})
    return number, newest(max_ts_ms, prepared.batch.max_ts_ms), positions


# ---- command line --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_consumer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--lateness-seconds", type=float, default=120.0, help="allowed lateness (default 120)")
    parser.add_argument("--max-future-skew-seconds", type=float, default=600.0, help="default 600")
    parser.add_argument("--batch-size", type=int, default=200_000, help="most records per batch (default 200000)")
    parser.add_argument("--bulk-size", type=int, default=5000, help="operations per bulk write (default 5000)")
    parser.add_argument("--follow", action="store_true", help="keep consuming (default: stop at the end offsets)")
    parser.add_argument("--kill-at", metavar="BATCH:BULK", type=_kill_at,
                        help="for the crash test: SIGKILL itself right after that bulk write of that batch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        result = run(args.bootstrap_servers, args.topic, args.mongo_uri, args.database,
                     lateness_s=args.lateness_seconds, max_future_skew_s=args.max_future_skew_seconds,
                     batch_size=args.batch_size, bulk_size=args.bulk_size, until_end=not args.follow, stop=stop,
                     kill_at=args.kill_at)
    except PeerError as exc:
        print(f"peer_consumer: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a service that went away mid-run: one line; a restart resumes exactly once
        from confluent_kafka import KafkaException
        from pymongo.errors import PyMongoError

        if not isinstance(exc, (KafkaException, PyMongoError)):
            raise
        print(f"peer_consumer: stopped: {str(exc).split(',')[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(orjson.dumps({**dataclasses.asdict(result), "records_per_s": result.records_per_s}).decode())
    return 0


def _kill_at(text: str) -> tuple[int, int]:
    batch, _, bulk = text.partition(":")
    try:
        return int(batch), int(bulk)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BATCH:BULK, got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
