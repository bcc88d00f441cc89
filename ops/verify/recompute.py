"""The documents MongoDB should hold, recomputed from the records in plain Python, and the records set aside.

Late events: a valid event is late when it reached the broker more than the allowed lateness (the watermark delay)
after its event time, the job's rule; duplicates are counted among the events that are not late. The oracle drops
every repeated event id; the job drops those that reach the broker within its duplicate window (job.duplicate_window)
of the first copy, so a stream whose redeliveries come later than that differs by design.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conf import PipelineConfig
from conf.loader import parse_duration_seconds
from contract.events import INTERACTION_TYPES
from contract.times import floor
from contract.validation import event_time, invalid_reason
from ops.verify.read import Record

WINDOW_LENGTHS = {"minute_counts": dt.timedelta(minutes=1), "hourly_counts": dt.timedelta(hours=1),
                  "daily_counts": dt.timedelta(days=1)}

Documents = dict[Any, dict[str, Any]]  # _id -> document


@dataclass
class Expected:
    """What MongoDB should hold: {collection: {_id: document}}, and the counts of set-aside records."""

    collections: dict[str, Documents] = field(default_factory=dict)
    dead_letters: Counter = field(default_factory=Counter)   # raw payload -> how many
    late: Counter = field(default_factory=Counter)           # raw payload -> how many
    late_events: int = 0
    duplicates: int = 0
    # the Kafka coordinates (topic, partition, offset) of the records set aside: dead letters with their reason
    rejected: dict[tuple[str | None, int, int], str] = field(default_factory=dict)
    late_at: set[tuple[str | None, int, int]] = field(default_factory=set)


@dataclass(frozen=True, kw_only=True)
class TopSizes:
    """How many entries each top list keeps, and the window of the last hour's top users."""

    users: int = 10
    items: int = 10
    users_last_hour: int = 5
    recent_window: dt.timedelta = dt.timedelta(hours=1)
    recent_slide: dt.timedelta = dt.timedelta(minutes=5)


def recompute(records: Iterable[Record], watermark_delay: dt.timedelta, max_future_skew: dt.timedelta,
              top: TopSizes = TopSizes()) -> Expected:
    """Every document the job should have written for `records`, with the job's lateness and future-skew rules."""
    expected = Expected()
    events = counted_events(records, expected, watermark_delay=watermark_delay, max_future_skew=max_future_skew)
    users, items = per_key_stats(events)
    c = expected.collections
    c["user_stats"], c["item_stats"] = users, items
    c.update(window_counts(events))
    c["top_users"] = {**ranked("all", "user_id", users, top.users), **recent_top_users(events, top)}
    c["top_items"] = ranked("all", "item_id", items, top.items)
    c["totals"] = {"all": totals(events, users, items, expected)}
    return expected


def recompute_for(config: PipelineConfig, records: Iterable[Record]) -> Expected:
    """recompute() with the job's settings from a PipelineConfig (lateness, skew, top-N sizes, recent window)."""
    def seconds(text: str) -> dt.timedelta:
        return dt.timedelta(seconds=parse_duration_seconds(text))

    job = config.job
    top = TopSizes(users=job.top_n_users, items=job.top_n_items, users_last_hour=job.top_n_users_last_hour,
                   recent_window=seconds(job.recent_window), recent_slide=seconds(job.recent_slide))
    return recompute(records, seconds(job.watermark_delay), seconds(job.max_future_skew), top)


def counted_events(records: Iterable[Record], expected: Expected, *, watermark_delay: dt.timedelta,
                   max_future_skew: dt.timedelta) -> list[dict[str, Any]]:
    """The events the aggregates count, each with its parsed time in `_time`; the rest go into `expected` as dead
    letters (with the reference validator's reason), late events or duplicates."""
    seen_ids: set[str] = set()
    events: list[dict[str, Any]] = []
    for record in records:
        reason = invalid_reason(record.raw, record.timestamp, max_future_skew, size=record.size)
        if reason is not None:
            expected.dead_letters[record.raw] += 1
            expected.rejected[(record.topic, record.partition, record.offset)] = reason
            continue
        assert record.raw is not None, "the validator rejects a record without a payload"
        event = json.loads(record.raw)
        when = event_time(event["event_time"])
        assert when is not None, "a valid event has a valid event_time"
        assert record.timestamp is not None, "the validator rejects a record without a broker time"
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
    return events


def per_key_stats(events: list[dict[str, Any]]) -> tuple[Documents, Documents]:
    """`user_stats` and `item_stats`: counts per interaction type, revenue, distinct counterparts, first and last."""
    users: Documents = {}
    items: Documents = {}
    user_items: dict[str, set[str]] = defaultdict(set)
    item_users: dict[str, set[str]] = defaultdict(set)
    for event in events:
        kind, when = event["interaction_type"], event["_time"]
        revenue = _revenue(event)
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
    return users, items


def window_counts(events: list[dict[str, Any]]) -> dict[str, Documents]:
    """Events and revenue per (window, interaction type, platform) for each window length."""
    windows: dict[str, Documents] = {name: {} for name in WINDOW_LENGTHS}
    for event in events:
        kind, platform = event["interaction_type"], event["platform"]
        for name, length in WINDOW_LENGTHS.items():
            start = floor(event["_time"], length)
            key = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}|{kind}|{platform}"
            doc = windows[name].setdefault(key, {
                "_id": key, "window_start": start, "window_end": start + length,
                "interaction_type": kind, "platform": platform, "events": 0, "revenue": 0.0})
            doc["events"] += 1
            doc["revenue"] += _revenue(event)
    return windows


def ranked(scope: str, key_field: str, docs: Mapping[str, Mapping[str, Any]], n: int) -> Documents:
    """The top `n` keys by interactions (ties by key), as `<scope>:<rank>` documents."""
    top = sorted(((k, d["interactions"]) for k, d in docs.items()), key=lambda kv: (-kv[1], kv[0]))[:n]
    return {f"{scope}:{rank}": {"_id": f"{scope}:{rank}", "scope": scope, "rank": rank, key_field: key,
                                "interactions": value} for rank, (key, value) in enumerate(top, start=1)}


def recent_top_users(events: list[dict[str, Any]], top: TopSizes) -> Documents:
    """The last hour's top users: the window ends at the slot boundary after the newest event time."""
    if not events:
        return {}
    newest = max(e["_time"] for e in events)
    end = floor(newest, top.recent_slide) + top.recent_slide
    start = end - top.recent_window
    recent = Counter(e["user_id"] for e in events if start <= e["_time"] < end)
    return {f"last_hour:{rank}": {"_id": f"last_hour:{rank}", "scope": "last_hour", "rank": rank,
                                  "user_id": user_id, "interactions": n}
            for rank, (user_id, n) in enumerate(
                sorted(recent.items(), key=lambda kv: (-kv[1], kv[0]))[:top.users_last_hour], start=1)}


def totals(events: list[dict[str, Any]], users: Documents, items: Documents, expected: Expected) -> dict[str, Any]:
    """The `totals` document: counts over everything, and the set-aside counts."""
    item_totals = [i["interactions"] for i in items.values()]
    return {
        "_id": "all", "events": len(events), "users": len(users), "items": len(items),
        "purchases": sum(1 for e in events if e["interaction_type"] == "purchase"),
        "revenue": sum(u["revenue"] for u in users.values()),
        "max_item_interactions": max(item_totals, default=0), "min_item_interactions": min(item_totals, default=0),
        "avg_interactions_per_user": len(events) / len(users) if users else 0.0,
        "dead_letters": sum(expected.dead_letters.values()), "late_events": expected.late_events,
        "duplicates": expected.duplicates}


def _revenue(event: Mapping[str, Any]) -> float:
    if event["interaction_type"] != "purchase":
        return 0.0
    return (event.get("price") or 0.0) * (event.get("quantity") or 1)


def _counts(key_field: str, key: str) -> dict[str, Any]:
    return {key_field: key, "interactions": 0, **{t: 0 for t in INTERACTION_TYPES}, "revenue": 0.0,
            "first_event_time": None, "last_event_time": None, "last_platform": None, "_latest": None}


def _add(doc: dict[str, Any], kind: str, revenue: float) -> None:
    doc["interactions"] += 1
    doc[kind] += 1
    doc["revenue"] += revenue
