"""Checks before Spark starts: a checkpoint and a database are bound to each other both ways, and to every setting
that changes how records are classified or counted."""
from __future__ import annotations

import pytest

from conf import ConfigError, load_config
from interactions.preflight import check_checkpoint, warn_on_producer_clock

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


def test_a_topic_on_the_broker_s_clock_needs_no_warning(kafka_broker, kafka_topic):
    assert warn_on_producer_clock(kafka_broker.bootstrap_servers, kafka_topic, 10) is None


@pytest.mark.parametrize("kafka_topic", ["CreateTime"], indirect=True)
def test_a_topic_on_the_producers_clocks_is_warned_about_in_one_line(kafka_broker, kafka_topic, caplog):
    warning = warn_on_producer_clock(kafka_broker.bootstrap_servers, kafka_topic, 10)
    assert warning is not None and "CreateTime" in warning and "LogAppendTime" in warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]
    assert "\n" not in warning
