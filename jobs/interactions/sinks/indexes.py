"""Indexes for the dashboards' queries and retention (TTL) indexes, created at job start (idempotent).

Only indexes a reader uses: every secondary index is maintained on every write, and the local server's upserts run
~40 % slower with one on `interactions` (bench/sink_ceiling.py). The dashboards read the windowed collections by
time range (served by each one's retention index on `window_start`), the top lists by scope and rank, and nothing
else by a secondary key.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import OperationFailure

from interactions import documents as docs

# collection -> the date field its retention counts from
RETENTION_FIELDS = {docs.MINUTE_COUNTS: "window_start", docs.HOURLY_COUNTS: "window_start",
                    docs.DAILY_COUNTS: "window_start", docs.USER_SLOTS: "window_start",
                    docs.BATCHES: "processed_at", docs.DEAD_LETTERS: "kafka_timestamp",
                    docs.LATE_EVENTS: "kafka_timestamp", docs.EVENTS_RAW: "kafka_timestamp"}
RETENTION_INDEX = "retention"


def ensure_indexes(db: Database, retention_seconds: Mapping[str, float | None]) -> None:
    """Query indexes, and a TTL index per collection with a retention (None: kept for ever, index dropped)."""
    db[docs.TOP_USERS].create_index([("scope", ASCENDING), ("rank", ASCENDING)])
    db[docs.TOP_ITEMS].create_index([("scope", ASCENDING), ("rank", ASCENDING)])
    for name, field in RETENTION_FIELDS.items():
        ensure_retention(db, name, field, retention_seconds.get(name))


def ensure_retention(db: Database, collection: str, field: str, seconds: float | None) -> None:
    """An ascending index on `field` that also expires documents `seconds` after it (the server's TTL monitor
    deletes them; a real mongod every 60 s). Without a retention the index stays, without expiry."""
    indexes = db[collection].index_information()
    for name, spec in indexes.items():  # the same key under another name (an older layout) would refuse ours
        if name != RETENTION_INDEX and spec.get("key") == [(field, ASCENDING)]:
            db[collection].drop_index(name)
    existing = indexes.get(RETENTION_INDEX)
    ttl = None if seconds is None else max(1, int(seconds))
    if existing is not None and existing.get("expireAfterSeconds") == ttl:
        return
    if existing is not None:
        if ttl is not None and "expireAfterSeconds" in existing:
            try:
                db.command("collMod", collection, index={"name": RETENTION_INDEX, "expireAfterSeconds": ttl})
                return
            except OperationFailure:
                pass
        db[collection].drop_index(RETENTION_INDEX)
    options: dict[str, Any] = {"expireAfterSeconds": ttl} if ttl is not None else {}
    db[collection].create_index([(field, ASCENDING)], name=RETENTION_INDEX, **options)
