"""Top users of the last hour: slot counts summed over the window the recomputation defines, kept for a restart in a
few documents per slot, and the same after a reload."""
from __future__ import annotations

import datetime as dt

import pytest

from interactions.sinks.recent_users import SHARDS, RecentUsers, shard_of

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
FIVE = dt.timedelta(minutes=5)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_users_are_ranked_by_their_sum_over_the_hour_ending_at_the_next_slot():
    recent = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=2)
    recent.update([("ann", at(0), 5), ("bob", at(30), 4), ("bob", at(55), 3), ("cy", at(60), 6)])
    # newest event at 11:02 -> window [10:05, 11:05): ann's 10:00 slot is out of it
    start, end, best = recent.top(at(62))
    assert (start, end) == (at(5), at(65))
    assert best == [("bob", 7), ("cy", 6)]


def test_counts_are_absolute_so_a_batch_applied_twice_changes_nothing():
    recent = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=3)
    batch = [("ann", at(0), 2), ("ann", at(5), 1)]
    recent.update(batch)
    recent.update(batch)
    assert recent.top(at(6))[2] == [("ann", 3)]


def test_shards_are_stable_and_cover_every_user():
    users = [f"u{i:05d}" for i in range(2000)] + ["\u00e9l\u00e8ve", "a.b$c"]
    assert all(0 <= shard_of(u) < SHARDS for u in users)
    assert shard_of("u00042") == shard_of("u00042") and len({shard_of(u) for u in users}) == SHARDS


@pytest.mark.integration
def test_a_new_process_loads_the_window_it_needs_and_ranks_the_same(mongo_db):
    first = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=3)
    changed = first.update([(f"u{i}", at(10 * (i % 7)), i) for i in range(40)])
    assert first.store(mongo_db, changed) == len(changed) <= 7 * SHARDS  # a document per slot and shard touched
    again = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=3)
    again.load(mongo_db, again.window_for(at(64))[0])
    assert again.top(at(64)) == first.top(at(64))


def users_of_shard(shard: int, count: int, length: int) -> list[str]:
    """`count` distinct user ids of `length` characters that all hash to `shard`."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        user = f"{i:x}".rjust(length, "u")
        if shard_of(user) == shard:
            found.append(user)
        i += 1
    return found


@pytest.mark.integration
def test_a_shard_too_big_for_one_document_is_split_into_pages_a_reader_decodes(mongo_db):
    """120k users of the longest id the contract allows (128 characters), all in one shard and slot: ~19 MB of
    counts, more than MongoDB's 16 MB document. Stored as pages, each a document the server takes and pymongo reads;
    a new process loads every count back."""
    import bson

    users = users_of_shard(3, 120_000, 128)
    recent = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=3)
    changed = recent.update([(user, at(0), 1 + n % 5) for n, user in enumerate(users)])
    documents = recent.documents(changed)
    assert len(documents) >= 2
    assert all(len(bson.encode(d)) < 16 * 1024 * 1024 for d in documents)
    recent.store(mongo_db, changed)
    again = RecentUsers(dt.timedelta(hours=1), FIVE, top_n=3)
    again.load(mongo_db, at(0))
    assert again.slots[at(0)] == recent.slots[at(0)]
    assert again.top(at(1)) == recent.top(at(1))
