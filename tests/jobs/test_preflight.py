"""Checks before Spark starts: a checkpoint and a database are bound to each other both ways, and to every setting
that changes how records are classified or counted."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from conf import ConfigError, load_config
from interactions import QUERY
from interactions.preflight import check_checkpoint, warn_on_producer_clock

from processes import run

pytestmark = pytest.mark.integration  # the database side is a real MongoDB-protocol server


@pytest.fixture
def config(tmp_path, mongo_server, mongo_db):
    def make(checkpoint="checkpoint", **job):
        return load_config(env={}, overrides={"mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
                                              "job": {"checkpoint_dir": str(tmp_path / checkpoint), **job}})
    return make


def test_a_new_checkpoint_records_what_it_belongs_to_and_can_be_resumed(config, tmp_path, mongo_db):
    check_checkpoint(config())
    assert (tmp_path / "checkpoint" / "pipeline.json").exists()
    assert mongo_db.pipeline.find_one({"_id": "identity"})["checkpoint_dir"] == str(tmp_path / "checkpoint")
    check_checkpoint(config())  # the same job again: fine


def test_resuming_a_checkpoint_with_another_database_is_refused(config, mongo_db):
    check_checkpoint(config())
    other = config().replace("mongo", database=mongo_db.name + "_elsewhere")
    with pytest.raises(ConfigError, match=rf"was made with database='{mongo_db.name}', not '{mongo_db.name}_"):
        check_checkpoint(other)


@pytest.mark.parametrize("setting, value", [("shuffle_partitions", 16), ("max_future_skew", "1 minute"),
                                            ("archive_raw_events", True), ("duplicate_window", "5 minutes")])
def test_changing_what_a_checkpoint_was_made_with_is_refused(config, setting, value):
    check_checkpoint(config())
    with pytest.raises(ConfigError, match=setting):
        check_checkpoint(config(**{setting: value}))


def test_a_folder_that_is_not_a_checkpoint_is_not_used(config, tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and is not a checkpoint of this job"):
        check_checkpoint(config())


def test_a_new_checkpoint_against_a_database_with_output_is_refused_unless_reset(config, mongo_db):
    check_checkpoint(config("first"))
    mongo_db.user_stats.insert_one({"_id": "u1", "interactions": 3})
    mongo_db.totals.insert_one({"_id": "all", "batch_id": 4})
    with pytest.raises(ConfigError, match="already holds this pipeline's output .* pass --reset"):
        check_checkpoint(config("second"))
    assert mongo_db.user_stats.count_documents({}) == 1  # nothing touched

    check_checkpoint(config("second"), reset=True)
    assert mongo_db.user_stats.count_documents({}) == 0 and mongo_db.totals.count_documents({}) == 0
    with pytest.raises(ConfigError, match="holds the output of another checkpoint"):
        check_checkpoint(config("first"))  # the old checkpoint no longer matches what the database holds


def test_reset_is_refused_for_an_existing_checkpoint(config):
    check_checkpoint(config())
    with pytest.raises(ConfigError, match="--reset clears the database for a new checkpoint"):
        check_checkpoint(config(), reset=True)


def spark_checkpoint(directory, query_id="5f0c1d2e-0000-4000-8000-000000000001", *, planned, committed):
    """The Spark part of a checkpoint as Spark leaves it: its query's id (`metadata`, written when the query first
    starts), `offsets/N` written before batch N runs, `commits/N` after."""
    spark = directory / QUERY
    for log in ("offsets", "commits"):
        (spark / log).mkdir(parents=True, exist_ok=True)
    (spark / "metadata").write_text(json.dumps({"id": query_id}) + "\n")
    for batch in range(planned + 1):
        (spark / "offsets" / str(batch)).write_text('v1\n{}\n{"topic":{"0":%d}}\n' % (10 * batch))
    for batch in range(committed + 1):
        (spark / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')
    return spark


def with_output(mongo_db, batch_id):
    mongo_db.totals.replace_one({"_id": "all"}, {"batch_id": batch_id}, upsert=True)
    mongo_db.user_stats.replace_one({"_id": "u1"}, {"interactions": 3}, upsert=True)


def test_a_checkpoint_that_lost_its_spark_query_is_refused_against_a_database_with_output(config, tmp_path,
                                                                                          mongo_db):
    check_checkpoint(config())
    spark = spark_checkpoint(tmp_path / "checkpoint", planned=4, committed=4)
    with_output(mongo_db, 4)
    check_checkpoint(config())  # whole: fine
    shutil.rmtree(spark)  # pipeline.json stays
    with pytest.raises(ConfigError, match=r"holds output up to batch 4, but checkpoint .* has lost its Spark query"):
        check_checkpoint(config())
    check_checkpoint(config("fresh"), reset=True)  # the way out: a new checkpoint into a cleared database


def test_an_older_copy_of_the_spark_checkpoint_is_refused(config, tmp_path, mongo_db):
    check_checkpoint(config())
    spark_checkpoint(tmp_path / "checkpoint", planned=2, committed=2)
    with_output(mongo_db, 4)
    with pytest.raises(ConfigError, match=r"has planned batches up to 2, but database .* holds output up to batch 4"):
        check_checkpoint(config())


def test_a_spark_checkpoint_of_another_query_is_refused(config, tmp_path, mongo_db):
    from interactions.preflight import bind_query

    check_checkpoint(config())
    spark_checkpoint(tmp_path / "checkpoint", "first-query", planned=4, committed=4)
    bind_query(config(), "first-query")
    with_output(mongo_db, 4)
    check_checkpoint(config())
    shutil.rmtree(tmp_path / "checkpoint" / QUERY)
    spark_checkpoint(tmp_path / "checkpoint", "second-query", planned=6, committed=6)
    with pytest.raises(ConfigError, match="holds Spark query second-query, but database .* the output of Spark "
                                          "query first-query"):
        check_checkpoint(config())


def test_a_batch_written_but_not_committed_is_resumed(config, tmp_path, mongo_db):
    # the sink wrote batch 4 (totals say so), the job died before Spark wrote commits/4: Spark replays batch 4
    check_checkpoint(config())
    spark_checkpoint(tmp_path / "checkpoint", planned=4, committed=3)
    with_output(mongo_db, 4)
    check_checkpoint(config())


def test_a_checkpoint_whose_query_never_started_is_resumed(config, tmp_path, mongo_db):
    check_checkpoint(config())
    assert not (tmp_path / "checkpoint" / QUERY).exists()
    check_checkpoint(config())


def test_a_dry_run_leaves_the_checkpoint_and_the_database_unbound(config, tmp_path, mongo_db):
    check_checkpoint(config(), dry_run=True)
    assert not (tmp_path / "checkpoint").exists() and mongo_db.pipeline.find_one({"_id": "identity"}) is None
    with pytest.raises(ConfigError, match="--reset"):
        check_checkpoint(config(), reset=True, dry_run=True)
    (tmp_path / "checkpoint-dry-run").mkdir()
    (tmp_path / "checkpoint-dry-run" / "notes.txt").write_text("mine")  # not a dry run's: never deleted
    with pytest.raises(ConfigError, match="is where a dry run keeps its own checkpoint, but it holds something"):
        check_checkpoint(config(), dry_run=True)


def test_a_lost_spark_checkpoint_of_the_real_job_is_refused(spark_session, kafka_broker, kafka_topic, mongo_server,
                                                            mongo_db, tmp_path):
    from interactions.pipeline import RunMode, start_queries

    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic",
         kafka_topic, "--rate", "max", "--count", "300", "--seed", "51", "--users", "40", "--items", "10",
         "--progress-interval", "60"], check=True, timeout=300, capture_output=True)
    checkpoint = tmp_path / "checkpoint"
    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic},
        "mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
        "job": {"checkpoint_dir": str(checkpoint), "shuffle_partitions": 2, "max_offsets_per_trigger": 150}})
    check_checkpoint(config)
    pipeline = start_queries(spark_session, config, RunMode(available_now=True))
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()
    assert mongo_db.totals.find_one({"_id": "all"})["batch_id"] >= 1
    check_checkpoint(config)  # resuming the whole checkpoint: fine
    query_id = json.loads((checkpoint / QUERY / "metadata").read_text())["id"]

    shutil.rmtree(checkpoint / QUERY)
    with pytest.raises(ConfigError, match="has lost its Spark query") as refused:
        check_checkpoint(config)
    assert "\n" not in str(refused.value) and "--reset" in str(refused.value)
    assert mongo_db.pipeline.find_one({"_id": "identity"})["query_id"] == query_id  # the database's own record


def test_a_topic_on_the_broker_s_clock_needs_no_warning(kafka_broker, kafka_topic):
    assert warn_on_producer_clock(kafka_broker.bootstrap_servers, kafka_topic, 10) is None


@pytest.mark.parametrize("kafka_topic", ["CreateTime"], indirect=True)
def test_a_topic_on_the_producers_clocks_is_warned_about_in_one_line(kafka_broker, kafka_topic, caplog):
    warning = warn_on_producer_clock(kafka_broker.bootstrap_servers, kafka_topic, 10)
    assert warning is not None and "CreateTime" in warning and "LogAppendTime" in warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]
    assert "\n" not in warning
