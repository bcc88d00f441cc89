"""Recompute every aggregate from the raw records, independently of the streaming job, and compare with MongoDB.

Independent means: plain Python over the records (json, dicts, sorting), sharing no code with the job's parsing or
aggregation, only the written contract (interactions.schema, docs/collections.md). Tests use it as their oracle;
`python -m interactions.verify` runs it against a deployment (added with the operator tooling).

Late events: a valid event is late when it reached the broker more than the allowed lateness (the watermark delay)
after its event time, the job's rule; duplicates are counted among the events that are not late.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

from interactions.schema import INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

UTC = dt.timezone.utc
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
FIELD_TYPES = {"event_id": str, "user_id": str, "item_id": str, "interaction_type": str, "platform": str,
               "session_id": str, "event_time": str, "price": float, "quantity": int, "country": str}


class Record(NamedTuple):
    """One Kafka record as read back from the topic."""
    raw: str | None
    partition: int
    offset: int
    timestamp: dt.datetime  # the broker's timestamp, UTC


def invalid_reason(raw: str | None, received: dt.datetime, max_future_skew: dt.timedelta) -> str | None:
    """Why the record is not a valid event (None when it is)."""
    try:
        event = json.loads(raw) if raw is not None else None
    except ValueError:
        return "not JSON"
    if not isinstance(event, dict):
        return "not a JSON object"
    for name in REQUIRED_FIELDS:
        if event.get(name) is None:
            return f"missing {name}"
    for name, kind in FIELD_TYPES.items():
        value = event.get(name)
        if value is None:
            continue
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            return f"wrong type {name}"
    if not event["event_id"].strip() or not event["user_id"].strip():
        return "empty id"
    if event["interaction_type"] not in INTERACTION_TYPES:
        return "unknown interaction_type"
    if event["platform"] not in PLATFORMS:
        return "unknown platform"
    if event["interaction_type"] in ITEM_INTERACTIONS and event.get("item_id") is None:
        return "missing item_id"
    when = event_time(event["event_time"])
    if when is None:
        return "bad event_time"
    if when > received + max_future_skew:
        return "future event_time"
    if event.get("price") is not None and event["price"] < 0:
        return "negative price"
    if event.get("quantity") is not None and event["quantity"] < 1:
        return "bad quantity"
    return None


def event_time(text: str) -> dt.datetime | None:
    if not _TIME.match(text):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC)


@dataclass
class Expected:
    """What MongoDB should hold: {collection: {_id: document}}, and the counts of set-aside records."""
    collections: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    dead_letters: Counter = field(default_factory=Counter)   # raw payload -> how many
    late: Counter = field(default_factory=Counter)           # raw payload -> how many
    late_events: int = 0
    duplicates: int = 0


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
            continue
        event = json.loads(record.raw)
        when = event_time(event["event_time"])
        if when < record.timestamp - watermark_delay:
            expected.late_events += 1
            expected.late[record.raw] += 1
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
    windows: dict[str, dict[Any, dict[str, Any]]] = {"minute_counts": {}, "hourly_counts": {}}
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
        for name, unit in (("minute_counts", "minute"), ("hourly_counts", "hour")):
            start = _truncate(when, unit)
            key = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}|{kind}|{event['platform']}"
            doc = windows[name].setdefault(key, {
                "_id": key, "window_start": start,
                "window_end": start + (dt.timedelta(minutes=1) if unit == "minute" else dt.timedelta(hours=1)),
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


def _truncate(when: dt.datetime, unit: str) -> dt.datetime:
    return when.replace(second=0, microsecond=0) if unit == "minute" else when.replace(minute=0, second=0,
                                                                                       microsecond=0)


def _floor(when: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((when - epoch) // step) * step


def _ranked(scope: str, key_field: str, docs: Mapping[str, Mapping[str, Any]], n: int) -> dict[str, dict]:
    ranked = sorted(((k, d["interactions"]) for k, d in docs.items()), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {f"{scope}:{rank}": {"_id": f"{scope}:{rank}", "scope": scope, "rank": rank, key_field: key,
                                "interactions": value} for rank, (key, value) in enumerate(ranked, start=1)}


# ---- comparison -------------------------------------------------------------------------------------------------

# HyperLogLog++ in the job (approx_count_distinct, 5 % relative standard deviation, 512 registers): accept three
# deviations plus 3, since on small sets the error is whole hash collisions (4 for 6 items was seen once in ~10,000
# users); a deviation beyond that has odds below 1e-6 per key up to 20 items (Poisson collisions, n^2/1024)
APPROXIMATE = {"distinct_items", "distinct_users"}
APPROXIMATE_SLACK = 3


@dataclass
class Mismatch:
    collection: str
    doc_id: Any
    problem: str


@dataclass
class Report:
    checked: Counter = field(default_factory=Counter)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self, examples: int = 5) -> list[str]:
        out = []
        by_collection: dict[str, list[Mismatch]] = defaultdict(list)
        for m in self.mismatches:
            by_collection[m.collection].append(m)
        for name in sorted(set(self.checked) | set(by_collection)):
            bad = by_collection.get(name, [])
            out.append(f"{name:<16} {self.checked[name]:>8} documents  {'OK' if not bad else f'{len(bad)} MISMATCHES'}")
            out += [f"    {m.doc_id!r}: {m.problem}" for m in bad[:examples]]
        return out


HEALTH_COUNTS = ("duplicates",)


def compare(expected: Expected, db, scopes: Iterable[str] = ("all", "last_hour"),
            health_counts_exact: bool = True) -> Report:
    """Compare every expected document with MongoDB, and report documents MongoDB has that it should not.

    The duplicate count comes from Spark's progress reports, written just after a batch commits; after a crash in
    that instant it can miss one batch (never count twice). With health_counts_exact=False it only has to be at
    most the expected value.
    """
    report = Report()
    for name, wanted in expected.collections.items():
        query = {"scope": {"$in": list(scopes)}} if name == "top_users" else {}
        actual = {d["_id"]: d for d in db[name].find(query)}
        report.checked[name] = len(wanted)
        for doc_id, want in wanted.items():
            got = actual.get(doc_id)
            if got is None:
                report.mismatches.append(Mismatch(name, doc_id, "missing in MongoDB"))
                continue
            for key, value in want.items():
                if not health_counts_exact and name == "totals" and key in HEALTH_COUNTS:
                    found = got.get(key, 0)
                    problem = None if 0 <= found <= value else repr(found)
                else:
                    problem = _differs(key, value, got.get(key, _ABSENT))
                if problem:
                    report.mismatches.append(Mismatch(name, doc_id, f"{key}: expected {value!r}, found {problem}"))
                    break
        for doc_id in actual.keys() - wanted.keys():
            report.mismatches.append(Mismatch(name, doc_id, "in MongoDB but not expected"))
    for name, wanted_raw, what in (("dead_letters", expected.dead_letters, "malformed"),
                                   ("late_events", expected.late, "late")):
        found = Counter(d["raw"] for d in db[name].find({}, {"raw": 1}))
        report.checked[name] = sum(wanted_raw.values())
        for raw in list(wanted_raw - found)[:5]:
            report.mismatches.append(Mismatch(name, raw, f"{what} record not set aside"))
        for raw in list(found - wanted_raw)[:5]:
            report.mismatches.append(Mismatch(name, raw, "set aside more often than received"))
    return report


_ABSENT = object()


def _differs(key: str, want: Any, got: Any) -> str | None:
    if got is _ABSENT:
        return "no such field"
    if key in APPROXIMATE:
        return None if abs(got - want) <= 0.15 * want + APPROXIMATE_SLACK else repr(got)
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


# ---- reading the topic back ---------------------------------------------------------------------------------------

def read_topic(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of `topic` up to its current end, in (broker timestamp, partition, offset) order."""
    from confluent_kafka import Consumer, TopicPartition
    import time

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"verify-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        remaining = dict(ends)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read only {len(records)} records of {topic} in {timeout:.0f}s")
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() or message.partition() not in remaining:
                    continue
                value = message.value()
                _, millis = message.timestamp()
                records.append(Record(value.decode("utf-8", "replace") if value is not None else None,
                                      message.partition(), message.offset(),
                                      dt.datetime.fromtimestamp(millis / 1000, UTC)))
                if message.offset() + 1 >= remaining[message.partition()]:
                    del remaining[message.partition()]
        records.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return records
    finally:
        consumer.close()


# ---- command line ------------------------------------------------------------------------------------------------

def manifest_records(path: str) -> list[Record]:
    """Records from a generator manifest (--emit-manifest), with the broker timestamps its delivery reports gave."""
    out = []
    with open(path) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                out.append(Record(row["payload"], row["partition"], row["offset"],
                                  dt.datetime.fromtimestamp(row["timestamp"] / 1000, UTC)))
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

    try:
        if args.manifest:
            records = manifest_records(args.manifest)
        else:
            records = read_topic(config.kafka.bootstrap_servers, config.kafka.topic)
        records = [r for r in records if (start is None or r.timestamp >= start) and (end is None or r.timestamp < end)]
    except (OSError, TimeoutError, KeyError, ValueError) as exc:
        print(f"verify: cannot read the events: {exc}", file=sys.stderr)
        return 2
    expected = recompute_for(config, records)
    try:
        with MongoClient(config.mongo.uri, tz_aware=True, serverSelectionTimeoutMS=10_000) as client:
            report = compare(expected, client[config.mongo.database])
    except PyMongoError as exc:
        print(f"verify: MongoDB unreachable: {str(exc).split(',')[0]}", file=sys.stderr)
        return 2
    totals = expected.collections.get("totals", {}).get("all", {})
    print(f"verify: {len(records)} records -> {totals.get('events', 0)} events counted, "
          f"{sum(expected.dead_letters.values())} dead-lettered, {expected.late_events} late, "
          f"{expected.duplicates} duplicates; database {config.mongo.database}")
    print("\n".join(report.lines(args.examples)))
    print("verify: OK, every document matches" if report.ok
          else f"verify: FAILED, {len(report.mismatches)} mismatching documents")
    return 0 if report.ok else 1


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
