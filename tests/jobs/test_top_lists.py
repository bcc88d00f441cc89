"""Top lists stay exact when a write stops between two ranks (a MongoDB step-down is retried), and a batch merged
twice (a replay) changes nothing."""
from __future__ import annotations

import pymongo.collection
import pytest
from pymongo.errors import AutoReconnect

from interactions.sinks.top_lists import merge_into_list

pytestmark = pytest.mark.integration  # a real MongoDB-protocol server


def ranks(db, scope="all"):
    return [(d["user_id"], d["interactions"]) for d in db.top_users.find({"scope": scope}, sort=[("rank", 1)])]


def test_a_write_stopped_between_two_ranks_loses_no_entry_on_the_retry(mongo_db, monkeypatch):
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("a", 9), ("b", 7), ("c", 5)], n=3, batch_id=0)
    # batch 1: d overtakes a and b; c, unchanged, drops out; the rank writes stop after the first rank
    real = pymongo.collection.Collection.bulk_write

    def first_rank_then_step_down(self, operations, *args, **kwargs):
        real(self, operations[:1], *args, **kwargs)
        raise AutoReconnect("primary stepped down")

    monkeypatch.setattr(pymongo.collection.Collection, "bulk_write", first_rank_then_step_down)
    with pytest.raises(AutoReconnect):
        merge_into_list(mongo_db, "top_users", "all", "user_id", [("d", 10)], n=3, batch_id=1)
    assert ranks(mongo_db)[0] == ("d", 10)  # half written: rank 1 new, ranks 2 and 3 old
    monkeypatch.setattr(pymongo.collection.Collection, "bulk_write", real)

    merge_into_list(mongo_db, "top_users", "all", "user_id", [("d", 10)], n=3, batch_id=1)  # the retry
    assert ranks(mongo_db) == [("d", 10), ("a", 9), ("b", 7)]
    # the next batch changes only b: a, neither changed nor in a half-written list, keeps its place
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("b", 8)], n=3, batch_id=2)
    assert ranks(mongo_db) == [("d", 10), ("a", 9), ("b", 8)]


def test_a_replayed_batch_changes_nothing(mongo_db):
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("a", 3), ("b", 2)], n=2, batch_id=4)
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("c", 5)], n=2, batch_id=5)
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("c", 5)], n=2, batch_id=5)
    merge_into_list(mongo_db, "top_users", "all", "user_id", [("a", 3), ("b", 2)], n=2, batch_id=4)  # older: ignored
    assert ranks(mongo_db) == [("c", 5), ("a", 3)]
    assert mongo_db.top_lists.find_one({"_id": "top_users:all"})["batch_id"] == 5
