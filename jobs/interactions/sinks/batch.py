"""The job's foreachBatch sink: one micro-batch's running totals and passing records -> MongoDB.

1. The batch (the aggregation's output: a few documents per changed key, plus the passing records) is cached, and
   one small Spark job brings the driver its summary (interactions.sinks.summary).
2. The dashboard first: the minute, hour and day counts (whole documents by `_id`, from the summary's absolute
   figures), then the totals and the top lists (each once per batch id), all from the driver with pymongo: a few
   hundred documents and no Spark job, so the dashboard is fresh even when the batch changes tens of thousands of
   users and items.
3. Then the rest, side by side: user_stats and item_stats through the connector (whole documents by `_id`); dead
   letters, late events and the archive as inserts from the executors (interactions.sinks.inserts); then the totals
   if they had to wait for these (a recount of users and items, or the item extremes, reads them), the top users of
   the last hour (and the few slot documents behind them), the batch's record in `batches`, and the alert rules.

Writing a batch twice (a retry after MongoDB came back, a replay after a crash) leaves MongoDB as if it had been
written once: the connector rewrites the same documents, an insert that meets its own `_id` is that document
already written, the derived documents are guarded by the batch id (see each module).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from pymongo import MongoClient, ReplaceOne
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from interactions import QUERY
from interactions import documents as docs
from interactions.parsing import UNEXPECTED
from interactions.sinks import top_lists, totals
from interactions.sinks.connector import replace_documents, run_side_by_side
from interactions.sinks.inserts import insert_documents
from interactions.sinks.recent_users import RecentUsers
from interactions.sinks.summary import Summary, busiest_users, collect_summary

log = logging.getLogger(__name__)
WRITERS = 3  # collections written at once
Write = Callable[[DataFrame, str, str, str, int], None]


class AlertHooks(Protocol):
    def on_aggregates_batch(self, minutes: list[tuple[dt.datetime, str, str, int, float]], batch_id: int) -> None: ...

    def on_busiest_users(self, rows: list[tuple[dt.datetime, str, int]], batch_id: int) -> None: ...


@dataclass(frozen=True)
class SinkSettings:
    uri: str
    database: str
    topic: str
    write_batch_size: int
    top_n_users: int
    top_n_items: int
    top_n_users_last_hour: int
    recent_window: dt.timedelta
    recent_slide: dt.timedelta
    archive: bool = False  # job.archive_raw_events: the passing records include every counted event
    dry_run: bool = False  # compute and build every document, store none (only the batch's figures)
    query: str = QUERY  # the label of the batch's `batches` record (a dry run's is its own)


def client(uri: str) -> MongoClient:
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)


class BatchWriter:
    def __init__(self, settings: SinkSettings, alerts: AlertHooks | None = None, write: Write = replace_documents,
                 insert: Write = insert_documents):
        self.settings = settings
        self.alerts = alerts
        self.write, self.insert = write, insert  # the connector's replace, the set-aside inserts (tests inject)
        self.recent = RecentUsers(settings.recent_window, settings.recent_slide, settings.top_n_users_last_hour)
        self.writers = docs.collection_writers(settings.topic, settings.archive)
        self.write_ms: dict[str, int] = {}  # the last batch's, per collection

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        processed_at = dt.datetime.now(dt.UTC)
        # cached until the batch is written: a retry of this function after MongoDB came back reuses it instead of
        # running the stateful plan a second time
        batch.persist(StorageLevel.MEMORY_AND_DISK)
        summary = collect_summary(batch)
        summary_s = time.monotonic() - started
        if not summary.has_data and not summary.documents:  # a batch that only moved the watermark
            batch.unpersist()
            return
        s = self.settings
        self.write_ms = {}
        written = {collection: summary.documents.get(docs.FACET_OF[collection], 0)
                   for collection in (*docs.WINDOW_COLLECTIONS.values(), *self.writers)}
        written = {collection: rows for collection, rows in written.items() if rows}
        with client(s.uri) as mongo:
            db = mongo[s.database]
            self._write_windows(db, summary)
            totals_state = self._totals_and_lists(db, summary, batch_id, documents_written=False)
            dashboard_s = time.monotonic() - started
            write_s = self._write_documents(batch, batch_id, [c for c in written if c in self.writers])
            derived_started = time.monotonic()
            if totals_state == totals.NEEDS_DOCUMENTS:
                self._totals_and_lists(db, summary, batch_id, documents_written=True)
            self._recent_users(db, summary, batch_id)
            derived_s = time.monotonic() - derived_started
            db[docs.BATCHES].update_one({"_id": f"{s.query}:{batch_id}"}, {"$set": {
                "query": s.query, "batch_id": batch_id, "processed_at": processed_at,
                "dead_letters": summary.documents.get("dead_letter", 0),
                "late_events": summary.documents.get("late", 0),
                "archived_events": summary.documents.get("archive", 0),
                "unexpected_errors": summary.unexpected_errors,
                "changed_documents": sum(written.values()), "documents": written, "dry_run": s.dry_run,
                "write_ms": int((time.monotonic() - started) * 1000), "summary_ms": int(summary_s * 1000),
                "dashboard_ms": int(dashboard_s * 1000), "mongo_write_ms": int(write_s * 1000),
                "write_ms_by_collection": self.write_ms,
                "derived_ms": int(derived_s * 1000)}}, upsert=True)
        batch.unpersist()
        if summary.unexpected_errors:
            log.warning("%s batch %d: %d records set aside because a rule raised on them (dead letters whose reason "
                        "starts %r): a bug in the classification", s.query, batch_id, summary.unexpected_errors,
                        UNEXPECTED)
        if self.alerts is not None and summary.has_data:
            self.alerts.on_aggregates_batch(summary.minutes, batch_id)
            if summary.user_rates:
                self.alerts.on_busiest_users(busiest_users(summary.user_rates), batch_id)
        log.info("%s batch %d: %d documents written in %.2f s (summary %.2f s, dashboard by %.2f s, documents %.2f "
                 "s, totals and lists %.2f s)", s.query, batch_id, sum(written.values()),
                 time.monotonic() - started, summary_s, dashboard_s, write_s, derived_s)

    def _write_documents(self, batch: DataFrame, batch_id: int, collections: list[str]) -> float:
        """These collections' documents from this batch, side by side (seconds taken): each Spark job's fixed cost
        (~0.1 s here) overlaps the others' waiting on MongoDB; the first failure cancels the others and is raised
        for the retry."""
        began = time.monotonic()
        if self.settings.dry_run or not collections:
            return time.monotonic() - began
        run_side_by_side(batch.sparkSession.sparkContext, {
            collection: partial(self._write_collection, batch, batch_id, collection) for collection in collections},
            WRITERS, f"{self.settings.query} batch {batch_id}")
        return time.monotonic() - began

    def _write_windows(self, db, summary: Summary) -> None:
        """The minute, hour and day counts this batch changed, whole documents by `_id` (absolute values)."""
        if self.settings.dry_run:
            return
        for facet, collection in docs.WINDOW_COLLECTIONS.items():
            documents = docs.window_documents(facet, summary.windows[facet])
            if documents:
                db[collection].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents],
                                          ordered=False)

    def _write_collection(self, batch: DataFrame, batch_id: int, collection: str) -> None:
        s = self.settings
        began = time.monotonic()
        write = self.insert if collection in docs.INSERTED else self.write
        write(self.writers[collection](batch, batch_id), s.uri, s.database, collection, s.write_batch_size)
        self.write_ms[collection] = int((time.monotonic() - began) * 1000)

    def _totals_and_lists(self, db, summary: Summary, batch_id: int, *, documents_written: bool) -> str | None:
        """The totals and the top lists, once per batch id; NEEDS_DOCUMENTS when the totals must wait for the
        batch's per-key documents (then the lists wait with them: they are written together)."""
        s = self.settings
        if s.dry_run or not summary.has_data:
            return None
        state = totals.apply_batch(db, summary, batch_id, documents_written=documents_written)
        if state == totals.NEEDS_DOCUMENTS:
            return state
        top_lists.merge_into_list(db, docs.TOP_USERS, "all", "user_id", _best(summary.users, s.top_n_users),
                                  n=s.top_n_users, batch_id=batch_id)
        top_lists.merge_into_list(db, docs.TOP_ITEMS, "all", "item_id", _best(summary.items, s.top_n_items),
                                  n=s.top_n_items, batch_id=batch_id)
        return state

    def _recent_users(self, db, summary: Summary, batch_id: int) -> None:
        if summary.newest_event_time is None:
            return
        if not self.recent.loaded:
            self.recent.load(db, self.recent.window_for(summary.newest_event_time)[0])
        changed = self.recent.update(summary.slots)
        start, end, best = self.recent.top(summary.newest_event_time)
        if self.settings.dry_run:
            return
        self.recent.store(db, changed)
        top_lists.replace_list(db, docs.TOP_USERS, "last_hour", "user_id", best, batch_id=batch_id,
                               extra={"window_start": start, "window_end": end})


def _best(counted: list[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    return docs.ranked(counted, n)

