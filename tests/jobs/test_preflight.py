"""Checks before Spark starts: a checkpoint is bound to its topic, database and state layout."""
from __future__ import annotations

import pytest

from conf import ConfigError, load_config
from interactions.preflight import check_checkpoint


def config(tmp_path, **job):
    return load_config(env={}, overrides={"job": {"checkpoint_dir": str(tmp_path / "checkpoint"), **job}})


def test_a_new_checkpoint_records_what_it_belongs_to_and_can_be_resumed(tmp_path):
    check_checkpoint(config(tmp_path))
    assert (tmp_path / "checkpoint" / "pipeline.json").exists()
    check_checkpoint(config(tmp_path))  # the same job again: fine


def test_resuming_a_checkpoint_with_another_database_is_refused(tmp_path):
    check_checkpoint(config(tmp_path))
    other = config(tmp_path).replace("mongo", database="elsewhere")
    with pytest.raises(ConfigError, match=r"was made with database='analytics', not 'elsewhere'"):
        check_checkpoint(other)


def test_changing_the_state_layout_of_a_checkpoint_is_refused(tmp_path):
    check_checkpoint(config(tmp_path))
    with pytest.raises(ConfigError, match="shuffle_partitions"):
        check_checkpoint(config(tmp_path, shuffle_partitions=16))


def test_a_folder_that_is_not_a_checkpoint_is_not_used(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and is not a checkpoint of this job"):
        check_checkpoint(config(tmp_path))
