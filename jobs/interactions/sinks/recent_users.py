"""Top users in the last hour, from per-user counts in slots (5 minutes by default), summed over the last 12.

Spark's state keeps each (user, slot) count only while the slot can still change; every batch hands the driver the
absolute counts of the pairs it changed, and the `user_slots` collection keeps them (with a retention a little
longer than the window). The driver holds the slots of the current window in memory, loaded from that collection
when the process starts (after the batch's own slots are written, so the two agree), and ranks the users by their
sum. The window is the one ending at the slot boundary after the newest event time seen, as the recomputation
defines it (interactions.verify): [end - window, end).

Idempotent: counts are absolute, so applying a batch twice changes nothing; the ranks are rewritten each batch.
"""
from __future__ import annotations

import datetime as dt
import heapq
from collections import defaultdict

from pymongo.database import Database

from interactions import documents as docs

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


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
        for doc in db[docs.USER_SLOTS].find({"window_start": {"$gte": start}},
                                            {"user_id": 1, "window_start": 1, "interactions": 1}):
            self.slots[_utc(doc["window_start"])][doc["user_id"]] = int(doc["interactions"])
        self.loaded = True

    def update(self, counts: list[tuple[str, dt.datetime, int]], newest: dt.datetime | None
               ) -> tuple[dt.datetime, dt.datetime, list[tuple[str, int]]] | None:
        """Apply a batch's absolute (user, slot start, count); (window start, end, top users) or None before any
        event."""
        for user, start, count in counts:
            self.slots[_utc(start)][user] = count
        if newest is None:
            return None
        start, end = self.window_for(_utc(newest))
        for old in [s for s in self.slots if s < start]:
            del self.slots[old]
        sums: dict[str, int] = defaultdict(int)
        for slot_start, users in self.slots.items():
            if slot_start < end:
                for user, count in users.items():
                    sums[user] += count
        best = heapq.nsmallest(self.top_n, sums.items(), key=lambda kv: (-kv[1], kv[0]))
        return start, end, best


def floor(when: dt.datetime, step: dt.timedelta) -> dt.datetime:
    return EPOCH + ((when - EPOCH) // step) * step


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)
