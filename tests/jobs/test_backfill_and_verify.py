"""Operating the job: a backfill into a fresh database equals the live result, and `python -m ops.verify`
reports a clean database as matching and each kind of damage as a mismatch."""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from conf import load_config
from interactions.pipeline import RunMode, start_queries

from processes import run as run_process

pytestmark = pytest.mark.integration
# bookkeeping that names the micro-batch or the moment of writing, which differ between two runs by design
LIVE_MANIFEST: list = []
VOLATILE = {"updated_at", "processed_at", "batch_id", "batch_time", "latest_batch_time"}


def run(spark, kafka_broker, topic, mongo_server, database, checkpoint, **kafka):
    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic, **kafka},
        "mongo": {"uri": mongo_server.uri, "database": database},
        "job": {"checkpoint_dir": str(checkpoint), "shuffle_partitions": 2, "archive_raw_events": True}})
    pipeline = start_queries(spark, config, RunMode(available_now=True))
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()


@pytest.fixture(scope="module")
def live(spark_session, kafka_broker, kafka_admin, mongo_server, mongo_client, tmp_path_factory):
    """A topic with a seeded, faulty stream, and the live job's database built from it."""
    from confluent_kafka.admin import NewTopic

    topic = f"ops-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(timeout=60)
    produce = [sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
               "--topic", topic, "--rate", "max", "--users", "150", "--items", "40", "--progress-interval", "60"]
    manifests = tmp_path_factory.mktemp("manifests")
    run_process([*produce, "--count", "800", "--seed", "41", "--emit-manifest", str(manifests / "1.jsonl")],
                check=True, timeout=300, capture_output=True)
    database = f"live_{uuid.uuid4().hex[:8]}"
    checkpoint = tmp_path_factory.mktemp("live-checkpoint")
    run(spark_session, kafka_broker, topic, mongo_server, database, checkpoint)
    run_process([*produce, "--count", "2500", "--seed", "42", "--late-ratio", "0.03", "--duplicate-ratio",
                 "0.03", "--malformed-ratio", "0.03", "--emit-manifest", str(manifests / "2.jsonl")],
                check=True, timeout=300, capture_output=True)
    run(spark_session, kafka_broker, topic, mongo_server, database, checkpoint)
    (manifests / "all.jsonl").write_text((manifests / "1.jsonl").read_text() + (manifests / "2.jsonl").read_text())
    LIVE_MANIFEST.append(manifests / "all.jsonl")
    yield topic, database
    mongo_client.drop_database(database)


def snapshot(db, collection):
    return {d["_id"]: {k: v for k, v in d.items() if k not in VOLATILE} for d in db[collection].find()}


def test_a_backfill_from_a_timestamp_into_a_fresh_database_equals_the_live_result(
        live, spark_session, kafka_broker, mongo_server, mongo_client, tmp_path):
    topic, live_db = live
    backfill_db = f"backfill_{uuid.uuid4().hex[:8]}"
    run(spark_session, kafka_broker, topic, mongo_server, backfill_db, tmp_path / "backfill-checkpoint",
        starting_timestamp="2000-01-01T00:00:00Z")
    try:
        for name in ("user_stats", "item_stats", "minute_counts", "hourly_counts", "top_users", "top_items",
                     "daily_counts", "user_slots", "totals", "dead_letters", "late_events", "events_raw"):
            live_docs = snapshot(mongo_client[live_db], name)
            assert live_docs, f"the live job wrote no {name}"
            assert snapshot(mongo_client[backfill_db], name) == live_docs, f"{name} differs after the backfill"
    finally:
        mongo_client.drop_database(backfill_db)


def verify(kafka_broker, topic, mongo_server, database, *flags: str) -> subprocess.CompletedProcess:
    return run_process([sys.executable, "-m", "ops.verify", "--bootstrap-servers",
                        kafka_broker.bootstrap_servers, "--topic", topic, "--mongo-uri", mongo_server.uri,
                        "--database", database, *flags], capture_output=True, text=True, timeout=120)


def test_verify_reports_a_clean_run_as_matching(live, kafka_broker, mongo_server):
    topic, database = live
    result = verify(kafka_broker, topic, mongo_server, database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK, every document matches" in result.stdout
    assert " late, " in result.stdout.splitlines()[0] and "dead-lettered" in result.stdout.splitlines()[0]


def test_verify_from_the_generators_manifest_agrees(live, kafka_broker, mongo_server):
    topic, database = live
    result = verify(kafka_broker, topic, mongo_server, database, "--manifest", str(LIVE_MANIFEST[0]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("verify: 3300 records")


@pytest.fixture
def damaged_copy(live, mongo_client):
    """A copy of the live database to damage."""
    _, database = live
    name = f"copy_{uuid.uuid4().hex[:8]}"
    for collection in mongo_client[database].list_collection_names():
        docs = list(mongo_client[database][collection].find())
        if docs:
            mongo_client[name][collection].insert_many(docs)
    yield mongo_client[name]
    mongo_client.drop_database(name)


def test_verify_reports_an_altered_document(live, kafka_broker, mongo_server, damaged_copy):
    victim = damaged_copy.user_stats.find_one(sort=[("_id", 1)])
    damaged_copy.user_stats.update_one({"_id": victim["_id"]}, {"$set": {"view": victim["view"] + 1}})
    result = verify(kafka_broker, live[0], mongo_server, damaged_copy.name)
    assert result.returncode == 1
    assert f"'{victim['_id']}': view: expected {victim['view']}, found {victim['view'] + 1}" in result.stdout


def test_verify_reports_a_deleted_document(live, kafka_broker, mongo_server, damaged_copy):
    victim = damaged_copy.item_stats.find_one(sort=[("_id", 1)])
    damaged_copy.item_stats.delete_one({"_id": victim["_id"]})
    result = verify(kafka_broker, live[0], mongo_server, damaged_copy.name)
    assert result.returncode == 1
    assert f"'{victim['_id']}': missing in MongoDB" in result.stdout


def test_verify_reports_a_batch_applied_twice(live, kafka_broker, mongo_server, damaged_copy):
    """What a naive incrementing sink does on a replay: the minute counts of one batch added a second time."""
    minute = damaged_copy.minute_counts.find_one(sort=[("events", -1)])
    damaged_copy.minute_counts.update_many({"window_start": minute["window_start"]},
                                           {"$mul": {"events": 2, "revenue": 2}})
    damaged_copy.totals.update_one({"_id": "all"}, {"$inc": {"events": minute["events"]}})
    result = verify(kafka_broker, live[0], mongo_server, damaged_copy.name)
    assert result.returncode == 1
    assert "minute_counts" in result.stdout and "MISMATCHES" in result.stdout
    assert "events: expected" in result.stdout
