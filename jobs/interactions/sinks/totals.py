"""The `totals` document: the global running totals from Spark's state, and the user and item counts and the item
extremes carried from batch to batch.

Exactly once: the document records the id of the last batch applied to it, and a batch's update is one atomic
compare-and-set on that id. The global figures are absolute values from state; the user and item counts grow by the
keys a batch *created* (those whose first batch is this one: Spark's batch timestamp, the same on a replay), never
by what a write happened to insert, so a retried task or a half-written batch cannot skew them. Where the carried
values cannot be trusted (no earlier batch, or a batch timestamp not after the latest one applied, kept in
`latest_batch_time`, because the clock stepped back) they are recounted from the collections, after this batch's
documents are written. Not only the first batch after a step back: a key first seen within the step before it gets
an earlier first batch time (the earliest it was seen in) from whichever later batch sees it again, and would count
as new again, until the clock passes the latest batch time.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from contract.times import as_utc
from interactions import documents as docs
from interactions.sinks.summary import Summary

log = logging.getLogger(__name__)
NO_BATCH = -1
INITIAL = {"events": 0, "users": 0, "items": 0, "purchases": 0, "revenue": 0.0, "dead_letters": 0,
           "late_events": 0, "duplicates": 0, "records": 0, "max_item_interactions": 0, "min_item_interactions": 0,
           "min_item_id": None, "avg_interactions_per_user": 0.0, "batch_id": NO_BATCH}


def ensure_totals_document(db: Database) -> None:
    db[docs.TOTALS].update_one({"_id": "all"}, {"$setOnInsert": INITIAL}, upsert=True)


APPLIED, REPLAYED, NEEDS_DOCUMENTS = "applied", "replayed", "needs documents"


class _ReadNeeded(Exception):
    """The batch's totals need the per-key collections, and they are not written yet."""


def apply_batch(db: Database, summary: Summary, batch_id: int, *, documents_written: bool = True) -> str:
    """Apply one batch to `totals`: APPLIED, or REPLAYED when this batch (or a later one) was applied already. Before
    the batch's per-key documents are written (`documents_written` false, so the dashboard's figures go first), a
    batch that must recount users and items or look up the item extremes is left for later: NEEDS_DOCUMENTS."""
    collection = db[docs.TOTALS]
    previous = collection.find_one({"_id": "all"}) or dict(INITIAL)
    applied = previous.get("batch_id", NO_BATCH)
    if applied >= batch_id:
        return REPLAYED

    def read(what: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            if not documents_written:
                raise _ReadNeeded
            return what()
        return run

    try:
        fields = next_totals(previous, summary, read(lambda: _counts(db)), read(lambda: _extremes(db)))
    except _ReadNeeded:
        return NEEDS_DOCUMENTS
    result = collection.update_one({"_id": "all", "batch_id": applied}, {"$set": {**fields, "batch_id": batch_id}})
    if result.matched_count != 1:  # only this job writes totals; someone else did: refuse rather than guess
        raise RuntimeError(f"totals changed under batch {batch_id} (expected batch {applied})")
    return APPLIED


def next_totals(previous: dict[str, Any], summary: Summary, counts: Callable[[], tuple[int, int]],
                extremes: Callable[[], tuple[int, tuple[int, str] | None]]) -> dict[str, Any]:
    """The totals after this batch, from the previous ones and the batch's absolute values. `counts()` reads
    (users, items) from the collections, `extremes()` (most interactions on an item, (fewest, that item))."""
    # the latest batch time applied so far (a document from before this field: its last batch's time)
    latest = _latest(previous.get("latest_batch_time"), previous.get("batch_time"))
    trusted = previous.get("batch_id", NO_BATCH) != NO_BATCH and latest is not None \
        and summary.batch_time is not None and as_utc(summary.batch_time) > latest
    if trusted:
        users, items = previous["users"] + summary.new_users, previous["items"] + summary.new_items
    else:
        log.info("totals: recounting users and items (%s)", "first batch" if latest is None
                 else "the batch clock is not past the latest batch time")
        users, items = counts()
    least_changed = previous.get("min_item_id") in {key for key, _ in summary.items}
    if trusted and not least_changed:  # every item count only grows: the extremes follow from the changed ones
        most = max([previous["max_item_interactions"]] + [n for _, n in summary.items])
        candidates = [(n, key) for key, n in summary.items]
        if previous.get("min_item_id") is not None:
            candidates.append((previous["min_item_interactions"], previous["min_item_id"]))
        least = min(candidates, default=None)
    else:  # the least busy item got busier: which one is least busy now is only known by looking
        most, least = extremes()
    return {"events": summary.events, "purchases": summary.purchases, "revenue": summary.revenue,
            "dead_letters": summary.dead_letters, "late_events": summary.late_events,
            "duplicates": summary.duplicates,
            "records": summary.valid_records + summary.dead_letters + summary.late_events,
            "users": users, "items": items, "max_item_interactions": most,
            "min_item_interactions": least[0] if least else 0, "min_item_id": least[1] if least else None,
            "avg_interactions_per_user": summary.events / users if users else 0.0,
            "newest_event_time": summary.newest_event_time, "batch_time": summary.batch_time,
            "latest_batch_time": _latest(latest, summary.batch_time),
            "updated_at": dt.datetime.now(dt.UTC)}


def _latest(*times: dt.datetime | None) -> dt.datetime | None:
    return max((as_utc(when) for when in times if when is not None), default=None)


def _counts(db: Database) -> tuple[int, int]:
    """A scan of both collections: seconds at 10^6 documents on the local server, so only when needed."""
    return db[docs.USER_STATS].count_documents({}), db[docs.ITEM_STATS].count_documents({})


def _extremes(db: Database) -> tuple[int, tuple[int, str] | None]:
    items = db[docs.ITEM_STATS]
    most = items.find_one({}, {"interactions": 1}, sort=[("interactions", DESCENDING)])
    least = items.find_one({}, {"interactions": 1}, sort=[("interactions", ASCENDING), ("_id", ASCENDING)])
    return most["interactions"] if most else 0, (least["interactions"], least["_id"]) if least else None
