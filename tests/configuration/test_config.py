"""The configuration: one file, overlaid by PIPELINE_<SECTION>_<KEY> variables, then by flags; every mistake a user
can make ends in one readable ConfigError."""
from __future__ import annotations

import pytest

from conf import ConfigError, load_config


def test_the_default_file_loads_and_binds_services_to_loopback():
    config = load_config(env={})
    assert config.stack.host == "127.0.0.1"
    assert config.kafka.bootstrap_servers.startswith("127.0.0.1:")
    assert "127.0.0.1" in config.mongo.uri


def test_environment_overrides_the_file_and_flags_override_the_environment():
    env = {"PIPELINE_KAFKA_TOPIC": "from-env", "PIPELINE_JOB_SHUFFLE_PARTITIONS": "8"}
    assert load_config(env=env).kafka.topic == "from-env"
    assert load_config(env=env).job.shuffle_partitions == 8
    flagged = load_config(env=env, overrides={"kafka": {"topic": "from-flag"}, "job": {"shuffle_partitions": None}})
    assert flagged.kafka.topic == "from-flag"
    assert flagged.job.shuffle_partitions == 8  # a flag left unset does not override


def test_variables_of_other_tools_with_the_same_prefix_are_ignored():
    assert load_config(env={"PIPELINE_ID": "42", "PIPELINE_RUNNER_NAME": "x"}).kafka.topic


@pytest.mark.parametrize("env, message", [
    ({"PIPELINE_KAFKA_TOPICS": "x"}, "environment variable PIPELINE_KAFKA_TOPICS names no configuration key"),
    ({"PIPELINE_JOB_SHUFFLE_PARTITIONS": "many"}, "job.shuffle_partitions must be int, got 'many'"),
    ({"PIPELINE_JOB_SHUFFLE_PARTITIONS": "0"}, "job.shuffle_partitions must be >= 1"),
    ({"PIPELINE_JOB_WATERMARK_DELAY": "2 fortnights"},
     "job.watermark_delay must look like '2 minutes' or '500 ms', got '2 fortnights'"),
    ({"PIPELINE_MONGO_URI": "http://localhost"}, "mongo.uri must start with mongodb://"),
    ({"PIPELINE_MONGO_DATABASE": "a.b"}, "mongo.database 'a.b' is not a valid MongoDB database name"),
    ({"PIPELINE_KAFKA_STARTING_OFFSETS": "middle"}, "kafka.starting_offsets must be earliest or latest"),
    ({"PIPELINE_JOB_RECENT_SLIDE": "7 minutes"},
     "job.recent_slide must divide job.recent_window (e.g. 1 hour sliding every 5 minutes)"),
    ({"PIPELINE_STACK_MONGO_PORT": "70000"}, "stack.mongo_port must be a TCP port (1-65535)"),
])
def test_a_bad_value_is_one_readable_line(env, message):
    with pytest.raises(ConfigError) as error:
        load_config(env=env)
    assert str(error.value) == message


def test_an_unknown_key_in_the_file_is_rejected(tmp_path):
    from conf.loader import DEFAULT_PATH

    text = DEFAULT_PATH.read_text().replace("[kafka]\n", "[kafka]\ntopik = \"x\"\n")
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"unknown key kafka\.topik$"):
        load_config(path, env={})


def test_a_file_that_is_not_toml_is_rejected(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(path, env={})


def test_a_missing_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize("env, key", [
    ({"PIPELINE_JOB_WATERMARK_DELAY": "inf s"}, "job.watermark_delay"),
    ({"PIPELINE_JOB_TRIGGER_INTERVAL": "Infinity seconds"}, "job.trigger_interval"),
    ({"PIPELINE_RETENTION_BATCHES": "1e308 days"}, "retention.batches"),  # finite, but infinite in seconds
    ({"PIPELINE_RETENTION_ALERTS": "25000 days"}, "retention.alerts"),  # beyond MongoDB's longest TTL
    ({"PIPELINE_HEALTH_METRICS_RETENTION": "1e10 s"}, "health.metrics_retention"),
    ({"PIPELINE_MONGO_UNAVAILABLE_PATIENCE": "nan s"}, "mongo.unavailable_patience"),
])
def test_a_duration_that_is_not_finite_or_absurdly_long_is_one_line_naming_the_key(env, key):
    with pytest.raises(ConfigError) as error:
        load_config(env=env)
    message = str(error.value)
    assert message.startswith(f"{key} must ") and "\n" not in message


def test_resolved_alerts_have_a_retention_like_the_other_collections():
    assert load_config(env={}).retention.alerts == "90 days"
    assert load_config(env={"PIPELINE_RETENTION_ALERTS": ""}).retention.alerts == ""  # kept for ever
    with pytest.raises(ConfigError, match=r"^retention\.alerts must be at least 1 second"):
        load_config(env={"PIPELINE_RETENTION_ALERTS": "0 s"})
