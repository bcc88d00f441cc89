"""The streaming job against real services: Apache Kafka, the MongoDB-protocol server and Spark's Kafka source.

Every test compares MongoDB, document by document, with an independent recomputation from the records read back
from the topic (ops.verify), never with numbers copied from the job.
"""
from __future__ import annotations

import sys

import pytest

from conf import load_config
from interactions import DRY_RUN_QUERY, QUERY
from interactions.pipeline import RunMode, start_queries
from ops.verify import compare, read_topic, recompute_for

from processes import run

pytestmark = pytest.mark.integration


def job_config(kafka_broker, topic, mongo_server, database, checkpoint):
    return load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic},
        "mongo": {"uri": mongo_server.uri, "database": database},
        "job": {"checkpoint_dir": str(checkpoint), "shuffle_partitions": 2, "watermark_delay": "2 minutes"},
    })


def generate(kafka_broker, topic, *flags: str) -> None:
    """Run the generator as a user would; it exits when every message is acknowledged."""
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", topic, "--rate", "max", "--progress-interval", "60", *flags],
        check=True, timeout=300, capture_output=True)


def run_job_until_caught_up(spark_session, config) -> None:
    """Process everything in the topic now (available-now trigger), then stop: a restart from the checkpoint."""
    pipeline = start_queries(spark_session, config, RunMode(available_now=True))
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()


def assert_matches_recomputation(kafka_broker, topic, db):
    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, topic))
    report = compare(expected, db)
    assert report.ok, "MongoDB differs from the recomputation:\n" + "\n".join(report.lines())
    return expected


def test_per_user_counts_equal_a_recomputation_from_the_produced_events(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    generate(kafka_broker, kafka_topic, "--count", "3000", "--seed", "11", "--users", "200", "--items", "50")
    run_job_until_caught_up(spark_session, job_config(kafka_broker, kafka_topic, mongo_server, mongo_db.name,
                                                      tmp_path / "checkpoint"))
    expected = assert_matches_recomputation(kafka_broker, kafka_topic, mongo_db)
    assert expected.collections["totals"]["all"]["events"] == 3000
    assert mongo_db.user_stats.count_documents({}) == len(expected.collections["user_stats"]) > 50


def test_late_duplicate_and_malformed_events_are_set_aside_and_counted_once(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    config = job_config(kafka_broker, kafka_topic, mongo_server, mongo_db.name, tmp_path / "checkpoint")
    # two runs: the second resumes from the checkpoint, with state from the first
    generate(kafka_broker, kafka_topic, "--count", "1000", "--seed", "21", "--users", "300", "--items", "80")
    run_job_until_caught_up(spark_session, config)
    generate(kafka_broker, kafka_topic, "--count", "4000", "--seed", "22", "--users", "300", "--items", "80",
             "--late-ratio", "0.05", "--duplicate-ratio", "0.05", "--malformed-ratio", "0.05")
    run_job_until_caught_up(spark_session, config)

    expected = assert_matches_recomputation(kafka_broker, kafka_topic, mongo_db)
    totals = mongo_db.totals.find_one({"_id": "all"})
    assert expected.late_events > 100 and totals["late_events"] == expected.late_events
    assert expected.duplicates > 100 and totals["duplicates"] == expected.duplicates
    assert sum(expected.dead_letters.values()) > 100
    letter = mongo_db.dead_letters.find_one()
    assert letter["reason"] and letter["raw"] is not None and letter["_id"] == (
        f"{kafka_topic}:{letter['partition']}:{letter['offset']}")


def test_a_dry_run_computes_every_document_and_stores_none(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    generate(kafka_broker, kafka_topic, "--count", "2000", "--seed", "31", "--users", "150", "--items", "40",
             "--malformed-ratio", "0.02")
    config = job_config(kafka_broker, kafka_topic, mongo_server, mongo_db.name, tmp_path / "checkpoint")
    pipeline = start_queries(spark_session, config, RunMode(available_now=True, dry_run=True))
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()

    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    batches = list(mongo_db.batches.find({"query": DRY_RUN_QUERY, "changed_documents": {"$exists": True}}))
    assert len(batches) == 1 and batches[0]["dry_run"]
    built = batches[0]["documents"]
    for name in ("user_stats", "item_stats", "minute_counts", "hourly_counts"):
        assert built[name] == len(expected.collections[name]), name
    assert built["dead_letters"] == sum(expected.dead_letters.values()) > 0
    for name in ("user_stats", "item_stats", "minute_counts", "hourly_counts", "top_users", "dead_letters"):
        assert mongo_db[name].count_documents({}) == 0, name
    assert mongo_db.totals.find_one({"_id": "all"})["events"] == 0


def test_a_dry_run_leaves_every_record_to_the_real_run(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    generate(kafka_broker, kafka_topic, "--count", "1500", "--seed", "33", "--users", "120", "--items", "30")
    config = job_config(kafka_broker, kafka_topic, mongo_server, mongo_db.name, tmp_path / "checkpoint")
    dry = start_queries(spark_session, config, RunMode(available_now=True, dry_run=True))
    try:
        dry.await_termination()
    finally:
        dry.stop()
    assert mongo_db.batches.count_documents({"query": DRY_RUN_QUERY}) > 0
    assert not (tmp_path / "checkpoint").exists()  # the real checkpoint: untouched

    run_job_until_caught_up(spark_session, config)  # the same configuration, not dry
    assert_matches_recomputation(kafka_broker, kafka_topic, mongo_db)
    real = list(mongo_db.batches.find({"query": QUERY, "changed_documents": {"$exists": True}}))
    assert real and not any(batch["dry_run"] for batch in real)


def test_totals_kept_from_batch_to_batch_equal_a_recount(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    # many small batches in one run: after the first, user/item counts and item extremes are carried forward from
    # each batch's new documents instead of recounted; new users and items keep arriving (Zipf tail)
    generate(kafka_broker, kafka_topic, "--count", "3000", "--seed", "41", "--users", "2000", "--items", "600",
             "--duplicate-ratio", "0.03")
    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic},
        "mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
        "job": {"checkpoint_dir": str(tmp_path / "checkpoint"), "shuffle_partitions": 2,
                "max_offsets_per_trigger": 400}})
    run_job_until_caught_up(spark_session, config)

    assert mongo_db.batches.count_documents({"query": QUERY, "changed_documents": {"$gt": 0}}) >= 5
    assert_matches_recomputation(kafka_broker, kafka_topic, mongo_db)
    totals = mongo_db.totals.find_one({"_id": "all"})
    least = mongo_db.item_stats.find_one({}, sort=[("interactions", 1)])
    assert totals["min_item_interactions"] == least["interactions"]
    assert totals["users"] == mongo_db.user_stats.count_documents({})
