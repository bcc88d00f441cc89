"""Retention: every collection that grows with time expires by a TTL index the configuration sets, changes when the
configuration changes, and is kept for ever when told so; no index a reader does not use."""
from __future__ import annotations

import pytest

from conf import load_config
from interactions.pipeline import retention_seconds
from interactions.sinks.indexes import RETENTION_INDEX, ensure_indexes

pytestmark = pytest.mark.integration


def ttl_of(db, collection):
    info = db[collection].index_information().get(RETENTION_INDEX)
    return None if info is None else info.get("expireAfterSeconds", "no expiry")


def test_the_configured_retentions_become_ttl_indexes_and_follow_the_configuration(mongo_db):
    config = load_config(env={})
    ensure_indexes(mongo_db, retention_seconds(config))
    assert ttl_of(mongo_db, "minute_counts") == 2 * 86400
    assert ttl_of(mongo_db, "hourly_counts") == 60 * 86400
    assert ttl_of(mongo_db, "daily_counts") == "no expiry"  # kept for ever, still indexed for the range queries
    assert ttl_of(mongo_db, "batches") == 7 * 86400
    assert ttl_of(mongo_db, "dead_letters") == ttl_of(mongo_db, "late_events") == 30 * 86400
    assert ttl_of(mongo_db, "events_raw") == 7 * 86400

    shorter = config.replace("retention", minute_counts="6 hours", dead_letters="")
    ensure_indexes(mongo_db, retention_seconds(shorter))
    assert ttl_of(mongo_db, "minute_counts") == 6 * 3600
    assert ttl_of(mongo_db, "dead_letters") == "no expiry"


def test_an_older_index_on_the_same_key_gives_way(mongo_db):
    mongo_db.minute_counts.create_index([("window_start", 1)])  # what an earlier version created
    ensure_indexes(mongo_db, retention_seconds(load_config(env={})))
    assert ttl_of(mongo_db, "minute_counts") == 2 * 86400
    assert "window_start_1" not in mongo_db.minute_counts.index_information()


def test_the_statistics_carry_no_secondary_index(mongo_db):
    ensure_indexes(mongo_db, retention_seconds(load_config(env={})))
    for name in ("user_stats", "item_stats"):
        assert set(mongo_db[name].index_information()) <= {"_id_"}, name
