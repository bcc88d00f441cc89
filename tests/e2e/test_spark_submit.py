"""`spark-submit jobs/aggregate.py`, run exactly as a user runs it (PATH has the project's environment first)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conf import load_config
from ops.verify import compare, read_topic, recompute_for
from stack import free_ports

from processes import run
from user_commands import our_lines, spark_submit

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_spark_submit_fills_mongodb_with_numbers_that_match_the_events(kafka_broker, kafka_topic, mongo_server,
                                                                        mongo_db, tmp_path):
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", kafka_topic, "--count", "2000", "--rate", "max", "--seed", "5",
         "--malformed-ratio", "0.02", "--progress-interval", "60"],
        check=True, timeout=300, capture_output=True)
    result = spark_submit("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
                          "--mongo-uri", mongo_server.uri, "--database", mongo_db.name,
                          "--checkpoint-dir", str(tmp_path / "checkpoint"), "--shuffle-partitions", "2",
                          "--available-now")
    assert result.returncode == 0, result.stderr[-3000:]
    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    report = compare(expected, mongo_db)
    assert report.ok, "\n".join(report.lines())
    assert mongo_db.user_stats.count_documents({}) == len(expected.collections["user_stats"])


def test_an_unreachable_broker_ends_with_one_readable_line(mongo_server, tmp_path):
    [closed_port] = free_ports(1)
    result = spark_submit("--bootstrap-servers", f"127.0.0.1:{closed_port}", "--mongo-uri", mongo_server.uri,
                          "--checkpoint-dir", str(tmp_path / "checkpoint"), timeout=120)
    assert result.returncode == 2
    [line] = our_lines(result)
    assert line.startswith("aggregate: Kafka broker at 127.0.0.1:") and "unreachable" in line
    assert "Traceback" not in result.stdout + result.stderr


def test_a_bad_flag_value_ends_with_one_readable_line(tmp_path):
    result = spark_submit("--watermark-delay", "two minutes", "--checkpoint-dir", str(tmp_path / "c"), timeout=120)
    assert result.returncode == 2
    assert our_lines(result) == [
        "aggregate: job.watermark_delay must look like '2 minutes' or '500 ms', got 'two minutes'"]
