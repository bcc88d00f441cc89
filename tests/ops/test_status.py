"""`ops.status`: a bad flag is one line and exit code 2; the last batch is found along an index, not by sorting the
whole `batches` collection (a week of batches, one a second) on every --watch tick."""
from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from typing import Any

import pymongo
import pytest
from pymongo import monitoring

from conf import load_config
from interactions import QUERY
from interactions import documents as docs
from interactions.sinks.indexes import ensure_indexes
from ops import status
from stack import free_ports
from stack.process import PROJECT_ROOT

from processes import run


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_a_watch_interval_that_is_no_interval_is_one_line_and_exit_code_2(value):
    kafka_port, mongo_port = free_ports(2)  # nothing listens there: no service of anyone's is touched
    env = {**os.environ, "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
           "PIPELINE_MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}/"}
    finished = run([sys.executable, "-m", "ops.status", "--watch", value], cwd=PROJECT_ROOT, env=env,
                   capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr.startswith("status: --watch must be a number of seconds")
    assert finished.stderr.count("\n") == 1 and "Traceback" not in finished.stderr


class Finds(monitoring.CommandListener):
    """The find commands a client sends."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def stages(plan: dict[str, Any]) -> list[str]:
    children = [plan["inputStage"]] if "inputStage" in plan else plan.get("inputStages", [])
    return [plan["stage"], *(stage for child in children for stage in stages(child))]


@pytest.mark.integration
def test_the_last_batch_is_read_along_an_index(mongo_server, mongo_db, monkeypatch):
    ensure_indexes(mongo_db, {docs.BATCHES: 7 * 86400})  # as the job creates them
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    mongo_db[docs.BATCHES].insert_many([
        {"_id": f"{QUERY}:{i}", "query": QUERY, "batch_id": i, "processed_at": start + dt.timedelta(seconds=i),
         "input_rows": 100 + i, "duration_ms": 900, "state_rows": 7, "state_memory_bytes": 0} for i in range(40)])
    # the batch in progress: written by the sink, not yet reported by Spark (no input_rows)
    mongo_db[docs.BATCHES].insert_one({"_id": f"{QUERY}:40", "query": QUERY, "batch_id": 40,
                                       "processed_at": start + dt.timedelta(seconds=40)})
    finds = Finds()
    monkeypatch.setattr(pymongo, "MongoClient", functools.partial(pymongo.MongoClient, event_listeners=[finds]))
    monkeypatch.setattr(status, "kafka_lag", lambda config: {0: 0})  # no broker needed
    config = load_config(env={}, overrides={"mongo": {"uri": mongo_server.uri, "database": mongo_db.name}})

    lines = status.render(config)

    assert any(line.startswith(f"query   {QUERY} batch     39 ") and "139 rows" in line for line in lines), lines
    batch_reads = [c for c in finds.commands if c["find"] == docs.BATCHES]
    assert batch_reads, finds.commands
    for command in batch_reads:
        explained = mongo_db.command("explain", {key: command[key] for key in ("find", "filter", "sort", "limit")
                                                 if key in command}, verbosity="queryPlanner")
        plan = stages(explained["queryPlanner"]["winningPlan"])
        assert "SORT" not in plan and "IXSCAN" in plan, plan


@pytest.mark.integration
def test_records_dropped_behind_the_watermark_in_the_last_hour_are_shown(mongo_server, mongo_db, monkeypatch):
    ensure_indexes(mongo_db, {docs.BATCHES: 7 * 86400})
    now = dt.datetime.now(dt.UTC)
    mongo_db[docs.BATCHES].insert_many([
        {"_id": f"{QUERY}:1", "query": QUERY, "batch_id": 1, "processed_at": now - dt.timedelta(hours=2),
         "input_rows": 10, "dropped_by_watermark": 500},  # too old to show
        {"_id": f"{QUERY}:2", "query": QUERY, "batch_id": 2, "processed_at": now - dt.timedelta(minutes=20),
         "input_rows": 10, "dropped_by_watermark": 3},
        {"_id": f"{QUERY}:3", "query": QUERY, "batch_id": 3, "processed_at": now - dt.timedelta(minutes=2),
         "input_rows": 10, "dropped_by_watermark": 4}])
    monkeypatch.setattr(status, "kafka_lag", lambda config: {0: 0})
    config = load_config(env={}, overrides={"mongo": {"uri": mongo_server.uri, "database": mongo_db.name}})

    [line] = [line for line in status.render(config) if line.startswith("DROPPED")]

    assert line.startswith("DROPPED 7 records in the last hour")
