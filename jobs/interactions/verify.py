"""Recompute every aggregate from the raw records, independently of the streaming job, and compare with MongoDB.

Independent means: plain Python over the records (json, dicts, sorting), sharing no code with the job's parsing or
aggregation, only the written contract (the `contract` package and its reference validator, docs/collections.md).
Tests use it as their oracle; `python -m interactions.verify` runs it against a deployment.

Late events: a valid event is late when it reached the broker more than the allowed lateness (the watermark delay)
after its event time, the job's rule; duplicates are counted among the events that are not late. The oracle drops
every repeated event id; the job drops those that reach the broker within its duplicate window (job.duplicate_window)
of the first copy, so a stream whose redeliveries come later than that differs by design.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contract.events import INTERACTION_TYPES
from contract.validation import event_time, invalid_reason

UTC = dt.UTC


class Record(NamedTuple):
    """One Kafka record as read back from the topic."""

    raw: str | None
    partition: int
    offset: int
    timestamp: dt.datetime  # the broker's timestamp, UTC
    topic: str | None = None  # None: not known (records made by hand); set-aside documents then match on the rest


WINDOW_LENGTHS = {"minute_counts": dt.timedelta(minutes=1), "hourly_counts": dt.timedelta(hours=1),
                  "daily_counts": dt.timedelta(days=1)}


@dataclass
class Expected:
    """What MongoDB should hold: {collection: {_id: document}}, and the counts of set-aside records."""

    collections: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    dead_letters: Counter = field(default_factory=Counter)   # raw payload -> how many
    late: Counter = field(default_factory=Counter)           # raw payload -> how many
    late_events: int = 0
    duplicates: int = 0
    # the Kafka coordinates (topic, partition, offset) of the records set aside: dead letters with their reason
    rejected: dict[tuple[str | None, int, int], str] = field(default_factory=dict)
    late_at: set[tuple[str | None, int, int]] = field(default_factory=set)


def recompute(records: Iterable[Record], watermark_delay: dt.timedelta, max_future_skew: dt.timedelta,
              top_users: int = 10, top_items: int = 10, top_users_last_hour: int = 5,
              recent_window: dt.timedelta = dt.timedelta(hours=1),
              recent_slide: dt.timedelta = dt.timedelta(minutes=5)) -> Expected:
    expected = Expected()
    seen_ids: set[str] = set()
    events: list[dict[str, Any]] = []
    for record in records:
        reason = invalid_reason(record.raw, record.timestamp, max_future_skew)
        if reason is not None:
            expected.dead_letters[record.raw] += 1
            expected.rejected[(record.topic, record.partition, record.offset)] = reason
            continue
        event = json.loads(record.raw)
        when = event_time(event["event_time"])
        if when < record.timestamp - watermark_delay:
            expected.late_events += 1
            expected.late[record.raw] += 1
            expected.late_at.add((record.topic, record.partition, record.offset))
            continue
        if event["event_id"] in seen_ids:
            expected.duplicates += 1
            continue
        seen_ids.add(event["event_id"])
        event["_time"] = when
        events.append(event)

    users: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, Any]] = {}
    user_items: dict[str, set[str]] = defaultdict(set)
    item_users: dict[str, set[str]] = defaultdict(set)
    windows: dict[str, dict[Any, dict[str, Any]]] = {"minute_counts": {}, "hourly_counts": {}, "daily_counts": {}}
    for event in events:
        kind, when = event["interaction_type"], event["_time"]
        revenue = (event.get("price") or 0.0) * (event.get("quantity") or 1) if kind == "purchase" else 0.0
        user = users.setdefault(event["user_id"], _counts("user_id", event["user_id"]))
        _add(user, kind, revenue)
        if user["first_event_time"] is None or when < user["first_event_time"]:
            user["first_event_time"] = when
        latest = (when, event["event_id"])
        if user["_latest"] is None or latest > user["_latest"]:
            user["_latest"], user["last_event_time"], user["last_platform"] = latest, when, event["platform"]
        if event.get("item_id") is not None:
            user_items[event["user_id"]].add(event["item_id"])
            item = items.setdefault(event["item_id"], _counts("item_id", event["item_id"]))
            _add(item, kind, revenue)
            item_users[event["item_id"]].add(event["user_id"])
        for name, length in WINDOW_LENGTHS.items():
            start = _floor(when, length)
            key = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}|{kind}|{event['platform']}"
            doc = windows[name].setdefault(key, {
                "_id": key, "window_start": start, "window_end": start + length,
                "interaction_type": kind, "platform": event["platform"], "events": 0, "revenue": 0.0})
            doc["events"] += 1
            doc["revenue"] += revenue

    for user_id, user in users.items():
        user["_id"] = user_id
        user["distinct_items"] = len(user_items[user_id])
        user.pop("_latest")
    for item_id, item in items.items():
        item["_id"] = item_id
        item["distinct_users"] = len(item_users[item_id])
        item["view_to_purchase_rate"] = item["purchase"] / item["view"] if item["view"] else None
        for key in ("_latest", "first_event_time", "last_event_time", "last_platform", "distinct_items"):
            item.pop(key, None)

    c = expected.collections
    c["user_stats"], c["item_stats"] = users, items
    c.update(windows)
    c["top_users"] = _ranked("all", "user_id", users, top_users)
    c["top_items"] = _ranked("all", "item_id", items, top_items)
    if events:
        newest = max(e["_time"] for e in events)
        end = _floor(newest, recent_slide) + recent_slide
        start = end - recent_window
        recent = Counter(e["user_id"] for e in events if start <= e["_time"] < end)
        ranked = sorted(recent.items(), key=lambda kv: (-kv[1], kv[0]))[:top_users_last_hour]
        for rank, (user_id, n) in enumerate(ranked, start=1):
            c["top_users"][f"last_hour:{rank}"] = {"_id": f"last_hour:{rank}", "scope": "last_hour", "rank": rank,
                                                   "user_id": user_id, "interactions": n}
    item_totals = [i["interactions"] for i in items.values()]
    c["totals"] = {"all": {
        "_id": "all", "events": len(events), "users": len(users), "items": len(items),
        "purchases": sum(1 for e in events if e["interaction_type"] == "purchase"),
        "revenue": sum(u["revenue"] for u in users.values()),
        "max_item_interactions": max(item_totals, default=0), "min_item_interactions": min(item_totals, default=0),
        "avg_interactions_per_user": len(events) / len(users) if users else 0.0,
        "dead_letters": sum(expected.dead_letters.values()), "late_events": expected.late_events,
        "duplicates": expected.duplicates}}
    return expected


def recompute_for(config, records: Iterable[Record]) -> Expected:
    """recompute() with the job's settings from a PipelineConfig (lateness, skew, top-N sizes, recent window)."""
    from conf.loader import parse_duration_seconds

    def seconds(text: str) -> dt.timedelta:
        return dt.timedelta(seconds=parse_duration_seconds(text))

    job = config.job
    return recompute(records, seconds(job.watermark_delay), seconds(job.max_future_skew), job.top_n_users,
                     job.top_n_items, job.top_n_users_last_hour, seconds(job.recent_window),
                     seconds(job.recent_slide))


def _counts(key_field: str, key: str) -> dict[str, Any]:
    return {key_field: key, "interactions": 0, **{t: 0 for t in INTERACTION_TYPES}, "revenue": 0.0,
            "first_event_time": None, "last_event_time": None, "last_platform": None, "_latest": None}


def _add(doc: dict[str, Any], kind: str, revenue: float) -> None:
    doc["interactions"] += 1
    doc[kind] += 1
    doc["revenue"] += revenue


def _floor(when: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((when - epoch) // step) * step


def _ranked(scope: str, key_field: str, docs: Mapping[str, Mapping[str, Any]], n: int) -> dict[str, dict]:
    ranked = sorted(((k, d["interactions"]) for k, d in docs.items()), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {f"{scope}:{rank}": {"_id": f"{scope}:{rank}", "scope": scope, "rank": rank, key_field: key,
                                "interactions": value} for rank, (key, value) in enumerate(ranked, start=1)}


# ---- comparison -------------------------------------------------------------------------------------------------

# distinct_items / distinct_users come from Apache DataSketches HLL sketches with lgConfigK = 12 (k = 4096 slots).
# A sketch keeps each distinct value's 32-bit coupon (a 26-bit address and a 6-bit leading-zero count taken from the
# value's hash: BaseHllSketch.coupon) in a list, then a hash set, until the set would be more than 3/4 full at its
# largest size, 2^(lgConfigK - 3) = 512 slots (CouponList.couponUpdate, CouponHashSet.checkGrowOrPromote; HllUtil:
# LG_INIT_LIST_SIZE 3, RESIZE_NUMER/RESIZE_DENOM 3/4). Up to 384 distinct values its estimate is the coupon count
# (interpolation adds under 0.5 there), short by one for every two values whose coupons coincide: same address and
# same count, probability 2^-26 * 1/3 per pair, n^2/2 * 5e-9 <= 3.7e-4 per key at n = 384 (~0.5 % of runs of the
# test suite would see one somewhere); two coincidences in one key, ~1e-7. So: exact, or one below.
HLL_LG_K = 12
HLL_COUPON_MODE_MAX = 3 * 2 ** (HLL_LG_K - 3) // 4   # 384 distinct values
HLL_COUPON_SHORTFALL = 1
# Beyond that, HLL mode: relative standard error sqrt(3 ln 2 - 1) / sqrt(k) = 1.03896 / 64 = 1.62 % for a sketch built
# by merging (the non-HIP estimator, HllUtil.HLL_NON_HIP_RSE_FACTOR; the HIP estimator of a sketch updated in order
# is better, 0.8326 / 64); 5 standard errors: a false alarm with probability ~6e-7 per key (normal tails).
HLL_RELATIVE_STANDARD_ERROR = math.sqrt(3 * math.log(2) - 1) / math.sqrt(2 ** HLL_LG_K)
HLL_TOLERANCE_STANDARD_ERRORS = 5
APPROXIMATE = {"distinct_items", "distinct_users"}

SET_ASIDE = ("dead_letters", "late_events")      # one document per Kafka record, `_id` = topic:partition:offset
WINDOWS = tuple(WINDOW_LENGTHS)                  # one document per event-time window


@dataclass(frozen=True)
class Coverage:
    """What the records still in the topic can account for once retention has deleted the start of a partition.

    Set-aside documents (dead letters, late events) are records' own: those at or after each partition's first
    retained offset are checked exactly, earlier ones not at all. A window document is complete when no deleted
    record can have counted in it: with the broker's clock (LogAppendTime) a partition's timestamps never go back, so
    a deleted record reached the broker no later than the partition's first retained record, and a counted event is
    at most max_future_skew ahead of its broker timestamp; windows starting after `windows_after` are checked exactly
    (a redelivery carries its original's event time, so a retained duplicate of a deleted event falls before too).
    Per-user and per-item statistics, top lists and totals add up every event ever read: not checked.
    """

    first_offsets: Mapping[int, int]                 # partition -> first offset still in the topic
    windows_after: dt.datetime | None = None         # None: no window can be shown complete (producer clocks)


@dataclass
class Mismatch:
    collection: str
    doc_id: Any
    problem: str


@dataclass
class Report:
    checked: Counter = field(default_factory=Counter)
    mismatches: list[Mismatch] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)   # collection -> why
    notes: dict[str, str] = field(default_factory=dict)          # collection -> what was left out of it

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self, examples: int = 5) -> list[str]:
        out = []
        by_collection: dict[str, list[Mismatch]] = defaultdict(list)
        for m in self.mismatches:
            by_collection[m.collection].append(m)
        for name in sorted(set(self.checked) | set(by_collection) | set(self.not_compared)):
            if name in self.not_compared:
                out.append(f"{name:<16} not compared: {self.not_compared[name]}")
                continue
            bad = by_collection.get(name, [])
            note = f" ({self.notes[name]})" if name in self.notes else ""
            out.append(f"{name:<16} {self.checked[name]:>8} documents  "
                       f"{'OK' if not bad else f'{len(bad)} MISMATCHES'}{note}")
            out += [f"    {m.doc_id!r}: {m.problem}" for m in bad[:examples]]
        return out


def compare(expected: Expected, db, scopes: Iterable[str] = ("all", "last_hour"),
            coverage: Coverage | None = None) -> Report:
    """Compare every expected document with MongoDB, and report documents MongoDB has that it should not.

    Dead letters and late events are compared record by record: the coordinates (`_id` = topic:partition:offset)
    the oracle sets aside, and a dead letter's reason. With `coverage` (retention has deleted the start of the topic)
    only what the remaining records account for is compared (see Coverage).
    """
    report = Report()
    for name, wanted in expected.collections.items():
        if coverage is not None and name not in WINDOWS:
            report.not_compared[name] = "it adds up records that retention has deleted"
            continue
        if coverage is not None and coverage.windows_after is None:
            report.not_compared[name] = ("the topic's timestamps are the producers' (CreateTime), so no window can be "
                                         "shown to hold only retained records")
            continue
        query: dict[str, Any] = {"scope": {"$in": list(scopes)}} if name == "top_users" else {}
        if coverage is not None:
            query = {"window_start": {"$gt": coverage.windows_after}}
            wanted = {k: v for k, v in wanted.items() if _utc(v["window_start"]) > coverage.windows_after}
            report.notes[name] = f"windows starting after {coverage.windows_after:%Y-%m-%dT%H:%M:%SZ}"
        actual = {d["_id"]: d for d in db[name].find(query)}
        report.checked[name] = len(wanted)
        for doc_id, want in wanted.items():
            got = actual.get(doc_id)
            if got is None:
                report.mismatches.append(Mismatch(name, doc_id, "missing in MongoDB"))
                continue
            for key, value in want.items():
                problem = _differs(key, value, got.get(key, _ABSENT))
                if problem:
                    report.mismatches.append(Mismatch(name, doc_id, f"{key}: expected {value!r}, found {problem}"))
                    break
        for doc_id in actual.keys() - wanted.keys():
            report.mismatches.append(Mismatch(name, doc_id, "in MongoDB but not expected"))
    _compare_set_aside(report, db, "dead_letters", expected.rejected, coverage)
    _compare_set_aside(report, db, "late_events", dict.fromkeys(expected.late_at), coverage)
    return report


def _compare_set_aside(report: Report, db, name: str, wanted: Mapping[tuple, str | None],
                       coverage: Coverage | None) -> None:
    """Record by record: the coordinates the oracle sets aside against the documents' `_id`s (and, for dead letters,
    the reason). Records whose topic the oracle does not know (built by hand) match on partition and offset."""
    known_topic = all(topic is not None for topic, _, _ in wanted)
    actual: dict[tuple, Any] = {}
    before_retained = 0
    for doc in db[name].find({}, {"reason": 1}):
        key = _coordinates(doc["_id"])
        if key is None:
            report.mismatches.append(Mismatch(name, doc["_id"], "_id is not topic:partition:offset"))
            continue
        if coverage is not None and key[2] < coverage.first_offsets.get(key[1], 0):
            before_retained += 1
            continue
        actual[key if known_topic else (None, key[1], key[2])] = doc.get("reason")
    report.checked[name] = len(wanted)
    if before_retained:
        report.notes[name] = f"and {before_retained} of records retention has deleted, not checked"
    for key in sorted(wanted.keys() - actual.keys(), key=lambda k: k[1:]):
        reason = f" ({wanted[key]})" if wanted[key] is not None else ""
        report.mismatches.append(Mismatch(name, _id_of(key), f"set aside by the oracle{reason}, not in MongoDB"))
    for key in sorted(actual.keys() - wanted.keys(), key=lambda k: k[1:]):
        report.mismatches.append(Mismatch(name, _id_of(key), "in MongoDB but the oracle does not set it aside"))
    for key in sorted(wanted.keys() & actual.keys(), key=lambda k: k[1:]):
        if wanted[key] is not None and actual[key] != wanted[key]:
            report.mismatches.append(Mismatch(name, _id_of(key),
                                              f"reason: expected {wanted[key]!r}, found {actual[key]!r}"))


def _coordinates(doc_id: Any) -> tuple[str, int, int] | None:
    topic, _, rest = str(doc_id).partition(":")  # a Kafka topic name has no ':'
    partition, _, offset = rest.partition(":")
    return (topic, int(partition), int(offset)) if partition.isdigit() and offset.isdigit() and topic else None


def _id_of(key: tuple) -> str:
    topic, partition, offset = key
    return f"{topic if topic is not None else '*'}:{partition}:{offset}"


def _utc(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


_ABSENT = object()


def _differs(key: str, want: Any, got: Any) -> str | None:
    if got is _ABSENT:
        return "no such field"
    if key in APPROXIMATE:
        return None if _within_sketch_error(want, got) else repr(got)
    if isinstance(want, dt.datetime):
        if not isinstance(got, dt.datetime):
            return repr(got)
        got = got if got.tzinfo else got.replace(tzinfo=UTC)
        return None if abs((got - want).total_seconds()) < 0.0005 else repr(got)
    if isinstance(want, float) and not isinstance(want, bool):
        if isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6):
            return None
        return repr(got)
    return None if got == want else repr(got)


def _within_sketch_error(exact: int, estimate: Any) -> bool:
    """Whether a sketch's distinct count is one the sketch can give for `exact` distinct values (see HLL_*)."""
    if not isinstance(estimate, (int, float)) or isinstance(estimate, bool):
        return False
    if exact <= HLL_COUPON_MODE_MAX:
        return exact - HLL_COUPON_SHORTFALL <= round(estimate) <= exact
    return abs(estimate - exact) <= HLL_TOLERANCE_STANDARD_ERRORS * HLL_RELATIVE_STANDARD_ERROR * exact


# ---- reading the topic back ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartitionRange:
    """The offsets of one partition that were read: [first, end)."""

    partition: int
    first: int                                    # the first offset still in the partition
    end: int                                      # one past the last offset when reading began (its high watermark)
    records: int
    first_timestamp: dt.datetime | None = None    # the broker timestamp of the record at `first`

    @property
    def cut(self) -> bool:
        """Retention (or a deletion) removed the partition's first records."""
        return self.first > 0

    def describe(self) -> str:
        if self.records == 0 and not self.cut:
            return f"partition {self.partition}: empty"
        read = (f"offsets {self.first}-{self.end - 1} ({self.records} records)" if self.records
                else f"no records left (end offset {self.end})")
        gone = f"; offsets 0-{self.first - 1} deleted (retention)" if self.cut else ""
        return f"partition {self.partition}: {read}{gone}"


@dataclass
class TopicRead:
    topic: str
    records: list[Record]          # in (broker timestamp, partition, offset) order
    partitions: list[PartitionRange]

    @property
    def cut(self) -> list[PartitionRange]:
        return [p for p in self.partitions if p.cut]


def read_topic(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of `topic` up to its current end, in (broker timestamp, partition, offset) order."""
    return read_partitions(bootstrap_servers, topic, timeout).records


def read_partitions(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> TopicRead:
    """Every record still in `topic`, partition by partition, from each partition's first retained offset (its low
    watermark) to its end when reading began (its high watermark). `timeout` bounds the wait for the next record of
    a partition, not the whole read: a large topic takes as long as it takes while records keep coming. Raises
    TimeoutError naming the partition and offset where records stopped coming."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"verify-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise LookupError(f"topic {topic!r}: {metadata.error.str()}")
        records: list[Record] = []
        ranges = []
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            ranges.append(_read_partition(consumer, topic, partition, low, high, timeout, records))
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return TopicRead(topic, records, ranges)
    finally:
        consumer.close()


def _read_partition(consumer, topic: str, partition: int, low: int, high: int, timeout: float,
                    records: list[Record]) -> PartitionRange:
    """Offsets [low, high) of one partition into `records`; the deadline restarts with every record that arrives."""
    from confluent_kafka import KafkaError, TopicPartition

    first: int | None = None
    first_timestamp = None
    count = 0
    next_offset = low
    if high > low:
        consumer.assign([TopicPartition(topic, partition, low)])
        last_progress = time.monotonic()
        while next_offset < high:
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and message.partition() == partition:
                        next_offset = high  # the rest of the range holds no records (e.g. transaction markers)
                    continue
                if message.partition() != partition or message.offset() >= high:
                    continue
                value = message.value()
                _, millis = message.timestamp()
                when = dt.datetime.fromtimestamp(millis / 1000, UTC)
                records.append(Record(value.decode("utf-8", "replace") if value is not None else None,
                                      partition, message.offset(), when, topic))
                if first is None:
                    first, first_timestamp = message.offset(), when
                count += 1
                next_offset = message.offset() + 1
                last_progress = time.monotonic()
            if next_offset < high and time.monotonic() - last_progress > timeout:
                raise TimeoutError(f"partition {partition} of {topic}: no record for {timeout:g} s at offset "
                                   f"{next_offset} (reading offsets {low}-{high - 1}, {count} read)")
        consumer.unassign()
    # Retention may delete more while we read: then the first record read is later than the low watermark was.
    first = first if first is not None else high
    return PartitionRange(partition, first, high, count, first_timestamp)


def coverage_after_retention(read: TopicRead, timestamp_type: str | None,
                             max_future_skew: dt.timedelta) -> Coverage | None:
    """What a comparison can still check when retention has cut partitions of `read` (None when none is cut):
    see Coverage. `timestamp_type` is the topic's message.timestamp.type."""
    cut = read.cut
    if not cut:
        return None
    windows_after = None
    if timestamp_type == "LogAppendTime":
        kept_from = [p.first_timestamp for p in cut if p.first_timestamp is not None]
        if len(kept_from) == len(cut):
            windows_after = max(kept_from) + max_future_skew
    return Coverage({p.partition: p.first for p in read.partitions}, windows_after)


# ---- command line ------------------------------------------------------------------------------------------------

def manifest_records(path: str, topic: str | None = None) -> list[Record]:
    """Records from a generator manifest (--emit-manifest), with the broker timestamps its delivery reports gave;
    a manifest does not name its topic, so `topic` says which it was."""
    out = []
    with open(path) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                out.append(Record(row["payload"], row["partition"], row["offset"],
                                  dt.datetime.fromtimestamp(row["timestamp"] / 1000, UTC), topic))
    out.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from conf import ConfigError, load_config

    parser = argparse.ArgumentParser(
        prog="python -m interactions.verify",
        description="Recompute every aggregate independently from the raw events and compare with MongoDB.")
    parser.add_argument("--config", help="configuration file (default conf/pipeline.toml)")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default from conf)")
    parser.add_argument("--topic", help="topic to read (default from conf)")
    parser.add_argument("--mongo-uri", help="MongoDB connection string (default from conf)")
    parser.add_argument("--database", help="database to check (default from conf)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", metavar="FILE", help="read the events from a generator manifest instead")
    source.add_argument("--from", dest="start", metavar="ISO",
                        help="only records the broker received at or after this time (the database must have been "
                             "built from the same range, e.g. by a backfill)")
    parser.add_argument("--to", dest="end", metavar="ISO", help="only records received before this time")
    parser.add_argument("--examples", type=int, default=5, help="mismatches shown per collection (default 5)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="give up on a partition when no record of it arrives for this long (default 60)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, overrides={
            "kafka": {"bootstrap_servers": args.bootstrap_servers, "topic": args.topic},
            "mongo": {"uri": args.mongo_uri, "database": args.database}})
        start = _iso(args.start, "--from")
        end = _iso(args.end, "--to")
    except ConfigError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2

    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    topic = config.kafka.topic
    coverage = None
    context: list[str] = []  # what was read and compared, printed after the summary line
    try:
        if args.manifest:
            records = manifest_records(args.manifest, topic)
            context.append(f"read {len(records)} records of topic {topic} from the manifest {args.manifest}")
        else:
            read = read_partitions(config.kafka.bootstrap_servers, topic, args.timeout)
            records = read.records
            context.append(f"read topic {topic}, {len(read.partitions)} partitions:")
            context += [f"  {partition.describe()}" for partition in read.partitions]
            if read.cut and start is None:
                coverage = _coverage_after_retention(config, read, context)
        if start is not None or end is not None:
            records = [r for r in records if (start is None or r.timestamp >= start)
                       and (end is None or r.timestamp < end)]
            context.append(f"compared the {len(records)} records the broker received in "
                           f"[{args.start or 'the start'}, {args.end or 'now'})")
    except (OSError, TimeoutError, LookupError, ValueError) as exc:
        print(f"verify: cannot read the events: {exc}", file=sys.stderr)
        return 2
    expected = recompute_for(config, records)
    try:
        with MongoClient(config.mongo.uri, tz_aware=True, serverSelectionTimeoutMS=10_000) as client:
            report = compare(expected, client[config.mongo.database], coverage=coverage)
    except PyMongoError as exc:
        print(f"verify: MongoDB unreachable: {str(exc).split(',')[0]}", file=sys.stderr)
        return 2
    totals = expected.collections.get("totals", {}).get("all", {})
    print(f"verify: {len(records)} records -> {totals.get('events', 0)} events counted, "
          f"{sum(expected.dead_letters.values())} dead-lettered, {expected.late_events} late, "
          f"{expected.duplicates} duplicates; database {config.mongo.database}")
    print("\n".join(f"verify: {line}" for line in context))
    print("\n".join(report.lines(args.examples)))
    print("verify: OK, every document matches" if report.ok
          else f"verify: FAILED, {len(report.mismatches)} mismatching documents")
    return 0 if report.ok else 1


def _coverage_after_retention(config, read: TopicRead, context: list[str]) -> Coverage | None:
    """The partial comparison after retention; adds the lines that say what it leaves out to `context`."""
    from conf.loader import parse_duration_seconds
    from generator.topics import TopicConfigUnavailable, topic_timestamp_type

    context.append(f"retention has deleted the start of {len(read.cut)} of {len(read.partitions)} partitions: the "
                   f"aggregates include events that are gone, so only what the remaining records account for is "
                   f"compared (for everything: backfill a fresh database with --starting-timestamp, then verify it "
                   f"with --from)")
    try:
        timestamp_type = topic_timestamp_type(config.kafka.bootstrap_servers, read.topic)
    except TopicConfigUnavailable as exc:
        context.append(f"{exc}: window documents are not compared")
        timestamp_type = None
    skew = dt.timedelta(seconds=parse_duration_seconds(config.job.max_future_skew))
    return coverage_after_retention(read, timestamp_type, skew)


def _iso(text: str | None, flag: str) -> dt.datetime | None:
    from conf import ConfigError

    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} must be an ISO-8601 time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


if __name__ == "__main__":
    import sys

    sys.exit(main())
