"""The generator killed with SIGKILL mid-run: what the broker acknowledged is in the topic and counted exactly once;
a stream with 10 % malformed records puts every one of them in dead_letters and every valid event in the
aggregates."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from conf import load_config
from interactions.pipeline import RunMode, start_queries
from ops.verify import compare, read_topic, recompute_for

from waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_killed_generator_loses_nothing_it_had_acknowledged(spark_session, kafka_broker, kafka_topic,
                                                             mongo_server, mongo_db, tmp_path, processes):
    manifest = tmp_path / "manifest.jsonl"
    generator = processes.start(
        [sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic",
         kafka_topic, "--rate", "2000", "--duration", "120", "--seed", "71", "--malformed-ratio", "0.10",
         "--users", "300", "--items", "80", "--emit-manifest", str(manifest), "--progress-interval", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: manifest.exists() and manifest.stat().st_size > 200_000, timeout=120,
                   message="the generator acknowledged too little before the kill")
    finally:
        generator.send_signal(signal.SIGKILL)
        generator.wait(timeout=30)

    records = read_topic(kafka_broker.bootstrap_servers, kafka_topic)
    in_topic = {(r.partition, r.offset): r.raw for r in records}
    acknowledged = [json.loads(line) for line in manifest.read_text().splitlines()
                    if line.endswith("}")]          # the kill may cut the last, unflushed line
    assert acknowledged and all(in_topic.get((a["partition"], a["offset"])) == a["payload"] for a in acknowledged)

    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic},
        "mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
        "job": {"checkpoint_dir": str(tmp_path / "checkpoint"), "shuffle_partitions": 2}})
    pipeline = start_queries(spark_session, config, RunMode(available_now=True))
    try:
        pipeline.await_termination()
    finally:
        pipeline.stop()
    expected = recompute_for(config, records)
    report = compare(expected, mongo_db)
    assert report.ok, "\n".join(report.lines())
    malformed = sum(expected.dead_letters.values())
    assert 0.07 * len(records) < malformed < 0.13 * len(records)          # ~10 % of the stream
    assert mongo_db.dead_letters.count_documents({}) == malformed
    assert mongo_db.totals.find_one({"_id": "all"})["events"] == expected.collections["totals"]["all"]["events"]
