"""Facet totals -> MongoDB documents: which collection, which _id, which fields. Pure Python, no Spark, no I/O.

docs/collections.md is the contract these functions implement.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from interactions.aggregates import GLOBAL, HOUR, ITEM, MINUTE, USER
from interactions.schema import INTERACTION_TYPES

USER_STATS = "user_stats"
ITEM_STATS = "item_stats"
MINUTE_COUNTS = "minute_counts"
HOURLY_COUNTS = "hourly_counts"
TOP_USERS = "top_users"
TOP_ITEMS = "top_items"
TOP_USERS_BY_WINDOW = "top_users_by_window"
TOTALS = "totals"
DEAD_LETTERS = "dead_letters"
EVENTS_RAW = "events_raw"
LATE_EVENTS = "late_events"
BATCHES = "batches"

FACET_COLLECTIONS = {USER: USER_STATS, ITEM: ITEM_STATS, MINUTE: MINUTE_COUNTS, HOUR: HOURLY_COUNTS}
WINDOW_LENGTH = {MINUTE: dt.timedelta(minutes=1), HOUR: dt.timedelta(hours=1)}


def facet_document(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(collection, document) for one row of facet_totals; None for the global facet (see totals_fields)."""
    facet = row["facet"]
    by_type = {t: int(row[t]) for t in INTERACTION_TYPES}
    if facet == USER:
        return USER_STATS, {
            "_id": row["key"], "user_id": row["key"], "interactions": int(row["interactions"]), **by_type,
            "distinct_items": int(row["distinct_items"]), "first_event_time": _utc(row["first_event_time"]),
            "last_event_time": _utc(row["last_event_time"]), "last_platform": row["last_platform"],
            "revenue": float(row["revenue"] or 0.0)}
    if facet == ITEM:
        views = by_type["view"]
        return ITEM_STATS, {
            "_id": row["key"], "item_id": row["key"], "interactions": int(row["interactions"]), **by_type,
            "distinct_users": int(row["distinct_users"]), "revenue": float(row["revenue"] or 0.0),
            "view_to_purchase_rate": (by_type["purchase"] / views) if views else None}
    if facet in (MINUTE, HOUR):
        start = _utc(row["bucket"])
        return FACET_COLLECTIONS[facet], {
            "_id": window_id(start, row["facet_type"], row["facet_platform"]),
            "window_start": start, "window_end": start + WINDOW_LENGTH[facet],
            "interaction_type": row["facet_type"], "platform": row["facet_platform"],
            "events": int(row["interactions"]), "revenue": float(row["revenue"] or 0.0)}
    if facet == GLOBAL:
        return None
    raise ValueError(f"unknown facet {facet!r}")


def set_aside_document(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(collection, document) for a row of the records query: a dead letter, a late event, or an archived event."""
    received = _utc(row["kafka_timestamp"])
    if row["reason"] is not None:
        return DEAD_LETTERS, {"_id": row["coordinates"], "topic": row["topic"], "partition": row["partition"],
                              "offset": row["offset"], "kafka_timestamp": received, "raw": row["raw"],
                              "reason": row["reason"], "batch_id": row["batch_id"]}
    if row["late"]:
        happened = _utc(row["event_time"])
        return LATE_EVENTS, {"_id": row["coordinates"], "topic": row["topic"], "partition": row["partition"],
                             "offset": row["offset"], "kafka_timestamp": received, "event_time": happened,
                             "lateness_seconds": (received - happened).total_seconds(), "event_id": row["event_id"],
                             "user_id": row["user_id"], "interaction_type": row["interaction_type"],
                             "raw": row["raw"], "batch_id": row["batch_id"]}
    return EVENTS_RAW, {"_id": row["event_id"], "user_id": row["user_id"], "item_id": row["item_id"],
                        "interaction_type": row["interaction_type"], "platform": row["platform"],
                        "session_id": row["session_id"], "event_time": _utc(row["event_time"]),
                        "price": row["price"], "quantity": row["quantity"], "country": row["country"],
                        "topic": row["topic"], "partition": row["partition"], "offset": row["offset"],
                        "kafka_timestamp": received}


def window_id(start: dt.datetime, interaction_type: str, platform: str) -> str:
    return f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}|{interaction_type}|{platform}"


def totals_fields(global_row: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the `totals` document that the global facet knows exactly."""
    return {"events": int(global_row["interactions"]), "purchases": int(global_row["purchase"]),
            "revenue": float(global_row["revenue"] or 0.0)}


def merge_top(current: list[tuple[str, int]], candidates: list[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    """Top n (id, value) by value desc, id asc, from the current list and fresh absolute values.

    Correct because totals only grow: a key that is neither in the current top nor changed in this batch cannot
    have overtaken one that is. Idempotent: merging the same candidates twice gives the same list.
    """
    merged = dict(current)
    for key, value in candidates:
        merged[key] = max(value, merged.get(key, value))
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _utc(value: dt.datetime | int) -> dt.datetime:
    """A UTC datetime from microseconds since the epoch (what the sink hands over: Spark turns timestamps into naive
    datetimes in the *Python process's* local zone, so the sink ships them as unix_micros instead)."""
    if isinstance(value, int):
        return EPOCH + dt.timedelta(microseconds=value)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
