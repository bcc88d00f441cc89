"""kill -9 of the job at random moments mid-stream, restarts from the checkpoint: nothing lost, nothing counted
twice. The job runs as a user runs it (spark-submit, its own process group), so SIGKILL takes the driver, the JVM
and the Python workers down at once, wherever they are, also in the middle of a foreachBatch write."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conf import load_config
from interactions import QUERY
from ops.verify import compare, read_topic, recompute_for

from processes import Processes, run
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def generate(kafka_broker, topic, *flags):
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", topic, "--rate", "max", "--progress-interval", "60", "--users", "400",
         "--items", "100", *flags], check=True, timeout=300, capture_output=True)


class Job:
    """spark-submit jobs/aggregate.py in its own process group, which `processes` ends after the test whatever
    happens (a failed assertion, a timeout)."""

    def __init__(self, processes: Processes, log_path: Path, *args: str):
        env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = processes.start(["spark-submit", "jobs/aggregate.py", *args], cwd=ROOT, env=env,
                                           stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


def committed_batches(db) -> int:
    return db.batches.count_documents({"query": QUERY, "input_rows": {"$gt": 0}})


def test_the_aggregates_survive_kill_9_at_random_points(kafka_broker, kafka_topic, mongo_server, mongo_db,
                                                        tmp_path, processes):
    args = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
            "--mongo-uri", mongo_server.uri, "--database", mongo_db.name,
            "--checkpoint-dir", str(tmp_path / "checkpoint"), "--shuffle-partitions", "2"]
    log = tmp_path / "job.log"
    generate(kafka_broker, kafka_topic, "--count", "1000", "--seed", "31")
    assert Job(processes, log, *args, "--available-now").wait(timeout=300) == 0, log.read_text()[-3000:]

    generate(kafka_broker, kafka_topic, "--count", "7000", "--seed", "32", "--late-ratio", "0.03",
             "--duplicate-ratio", "0.05", "--malformed-ratio", "0.03")
    rng = random.Random(7)
    kills = 3
    for attempt in range(kills):
        before = committed_batches(mongo_db)
        job = Job(processes, log, *args, "--trigger-interval", "1 second", "--max-offsets-per-trigger", "400")
        # let it commit at least one new batch, then kill it somewhere inside a later one
        def committed_or_exited(job: Job = job, before: int = before) -> bool:
            return committed_batches(mongo_db) > before or job.process.poll() is not None

        wait_until(committed_or_exited, timeout=240, message=f"the job committed no batch after restart {attempt}")
        assert job.process.poll() is None, log.read_text()[-3000:]
        time.sleep(rng.uniform(0.2, 2.5))  # a random point in the stream, not a wait for a result
        job.kill()

    # finally let it catch up and stop by itself
    assert Job(processes, log, *args, "--available-now").wait(timeout=300) == 0, log.read_text()[-3000:]
    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    report = compare(expected, mongo_db)  # every count exact, the duplicates too
    assert report.ok, f"after {kills} kills MongoDB differs from the recomputation:\n" + "\n".join(report.lines())
    assert expected.collections["totals"]["all"]["events"] > 6000
    assert mongo_db.totals.find_one({"_id": "all"})["duplicates"] == expected.duplicates > 100
