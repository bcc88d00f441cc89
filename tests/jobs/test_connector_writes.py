"""A batch's collections are written side by side; one failing write must not wait for the others to time out."""
from __future__ import annotations

import threading
import time

import pytest

from interactions.sinks.connector import run_side_by_side


def slow_spark_job(spark_session, seconds: float) -> None:
    """A Spark job whose tasks sleep: stands in for a connector write waiting for an unreachable server."""
    def sleep(batches):
        time.sleep(seconds)
        yield from batches
    spark_session.range(2, numPartitions=2).mapInArrow(sleep, "id long").collect()


def test_every_write_runs_and_the_call_returns_when_all_are_done(spark_session):
    done: list[str] = []
    lock = threading.Lock()

    def write(name):
        def run():
            spark_session.range(10, numPartitions=2).collect()
            with lock:
                done.append(name)
        return run

    run_side_by_side(spark_session.sparkContext, {name: write(name) for name in "abcde"}, 3, "test")
    assert sorted(done) == list("abcde")


def test_the_first_failure_cancels_the_other_writes_and_is_raised_at_once(spark_session):
    class UnreachableError(Exception):
        pass

    def failing():
        time.sleep(1)  # the slow writes have started by now
        raise UnreachableError("MongoDB is gone")

    writes = {"fails": failing, **{f"slow-{n}": (lambda: slow_spark_job(spark_session, 120)) for n in range(4)}}
    started = time.monotonic()
    with pytest.raises(UnreachableError):
        run_side_by_side(spark_session.sparkContext, writes, 3, "test")
    assert time.monotonic() - started < 60, "the failure waited for the other writes"
    # the slow writes' tasks were interrupted, not left holding the cores: a new job runs at once
    began = time.monotonic()
    assert spark_session.range(4, numPartitions=2).count() == 4
    assert time.monotonic() - began < 30
