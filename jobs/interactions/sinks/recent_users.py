"""Top users in the last hour, from per-user counts in slots (5 minutes by default), summed over the last 12.

Spark's state keeps each (user, slot) count only while the slot can still change; every batch hands the driver the
absolute counts of the pairs it changed. The driver holds the slots of the current window in memory and ranks the
users by their sum; the window is the one ending at the slot boundary after the newest event time seen, as the
recomputation defines it (ops.verify): [end - window, end).

`user_slots` keeps those slots for a restart: documents per slot and shard of users (by a stable hash of the user
id), holding the shard's absolute counts, rewritten whole when a batch changes it; a few documents per batch instead
of one per user. A shard too big for one document (millions of users in a slot, or long ids) is split, in user
order, into pages of at most PAGE_BYTES, far below MongoDB's 16 MB. A new process loads them (after the batch's own
are written, so the two agree) before its first update.

Idempotent: counts are absolute, so applying a batch twice changes nothing; the ranks are rewritten each batch. A
user's count only grows within a slot, so where a stop between two page writes leaves a user on two pages, loading
keeps the larger count.
"""
from __future__ import annotations

import datetime as dt
import heapq
import zlib
from collections import defaultdict
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database

from contract.times import as_utc, floor
from interactions import documents as docs

SHARDS = 16
PAGE_BYTES = 4 * 1024 * 1024
ENTRY_OVERHEAD = 32  # BSON bytes of one [user, count] pair besides the user id's own


def shard_of(user: str) -> int:
    return zlib.crc32(user.encode("utf-8", "surrogatepass")) % SHARDS


class RecentUsers:
    def __init__(self, window: dt.timedelta, slot: dt.timedelta, top_n: int):
        self.window, self.slot, self.top_n = window, slot, top_n
        self.slots: dict[dt.datetime, dict[str, int]] = defaultdict(dict)
        self.loaded = False

    def window_for(self, newest: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        end = floor(newest, self.slot) + self.slot
        return end - self.window, end

    def load(self, db: Database, start: dt.datetime) -> None:
        """The slots from `start` on, as stored (once per process, before the first update)."""
        for doc in db[docs.USER_SLOTS].find({"window_start": {"$gte": start}}, {"window_start": 1, "counts": 1}):
            users = self.slots[as_utc(doc["window_start"])]
            for user, n in doc["counts"]:
                users[user] = max(int(n), users.get(user, 0))
        self.loaded = True

    def update(self, counts: list[tuple[str, dt.datetime, int]]) -> set[tuple[dt.datetime, int]]:
        """Apply a batch's absolute (user, slot start, count); returns the (slot, shard) pairs it changed."""
        changed = set()
        for user, start, count in counts:
            slot = as_utc(start)
            self.slots[slot][user] = count
            changed.add((slot, shard_of(user)))
        return changed

    def top(self, newest: dt.datetime) -> tuple[dt.datetime, dt.datetime, list[tuple[str, int]]]:
        """(window start, end, the top users by their sum over the window's slots); older slots are let go."""
        start, end = self.window_for(newest)
        for old in [s for s in self.slots if s < start]:
            del self.slots[old]
        sums: dict[str, int] = defaultdict(int)
        for slot_start, users in self.slots.items():
            if slot_start < end:
                for user, count in users.items():
                    sums[user] += count
        return start, end, heapq.nsmallest(self.top_n, sums.items(), key=lambda kv: (-kv[1], kv[0]))

    def documents(self, changed: set[tuple[dt.datetime, int]]) -> list[dict[str, Any]]:
        """The `user_slots` documents of these (slot, shard) pairs, whole: one per page of PAGE_BYTES at most
        (`_id` "<slot>#<shard>", then "<slot>#<shard>.<page>" for the second page on)."""
        out = []
        for slot, shard in sorted(changed):
            users = self.slots.get(slot, {})
            counts = sorted([u, n] for u, n in users.items() if shard_of(u) == shard)
            for page, entries in enumerate(pages(counts)):
                suffix = f".{page}" if page else ""
                out.append({"_id": f"{slot.strftime('%Y-%m-%dT%H:%M:%SZ')}#{shard:02d}{suffix}",
                            "window_start": slot, "window_end": slot + self.slot, "shard": shard, "page": page,
                            "counts": entries})
        return out

    def store(self, db: Database, changed: set[tuple[dt.datetime, int]]) -> int:
        documents = self.documents(changed)
        if documents:
            db[docs.USER_SLOTS].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents],
                                           ordered=False)
        return len(documents)


def pages(counts: list[list[Any]]) -> list[list[list[Any]]]:
    """[user, count] pairs in runs of at most PAGE_BYTES (estimated as BSON stores them); at least one run."""
    out: list[list[list[Any]]] = [[]]
    size = 0
    for entry in counts:
        entry_size = len(entry[0].encode("utf-8", "surrogatepass")) + ENTRY_OVERHEAD
        if out[-1] and size + entry_size > PAGE_BYTES:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += entry_size
    return out
