"""Counting stays exact when Spark retries a task that had already written part of its documents."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conf import load_config
from ops.verify import compare, read_topic, recompute_for

from processes import run

pytestmark = pytest.mark.integration
DRIVER = Path(__file__).with_name("retrying_job.py")


def test_a_retried_write_task_leaves_every_count_exact(kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic",
         kafka_topic, "--rate", "max", "--count", "3000", "--seed", "61", "--users", "300", "--items", "80",
         "--duplicate-ratio", "0.03", "--malformed-ratio", "0.04", "--progress-interval", "60"],
        check=True, timeout=300, capture_output=True)
    markers = tmp_path / "markers"
    markers.mkdir()
    job = run([sys.executable, str(DRIVER), kafka_broker.bootstrap_servers, kafka_topic, mongo_server.uri,
               mongo_db.name, str(tmp_path / "checkpoint"), str(markers)], timeout=600, capture_output=True,
              text=True)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    failed = sorted(p.name.split("-")[0] for p in markers.iterdir())
    # each collection's write failed once, part-way, then was retried (dead letters: inserts meeting their own _id)
    assert failed == ["dead_letters", "item_stats", "user_stats"]
    assert "injected failure" in job.stderr

    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    report = compare(expected, mongo_db)
    assert report.ok, "after retried tasks MongoDB differs from the recomputation:\n" + "\n".join(report.lines())
    totals = mongo_db.totals.find_one({"_id": "all"})
    assert (totals["users"], totals["items"]) == (len(expected.collections["user_stats"]),
                                                  len(expected.collections["item_stats"]))
