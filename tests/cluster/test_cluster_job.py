"""The streaming job on a real Spark standalone cluster, submitted the user's way:

    spark-submit --master spark://127.0.0.1:<port> --py-files interactions.zip jobs/aggregate.py --available-now ...

Executors are separate JVMs (with their own Python workers) started by the workers, so this checks what local mode
cannot: the job's package reaches them through --py-files (their Python cannot see the editable install, as on a
real cluster: the `executor_python` fixture), Spark's Kafka source through spark.jars in spark-defaults.conf, and no
code relies on driver-side state. MongoDB is compared with the same independent oracle as in local mode
(ops.verify).
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.verify import compare, read_topic, recompute
from stack.process import PROJECT_ROOT
from stack.spark_cluster import SparkCluster

from processes import run

pytestmark = pytest.mark.integration
WATERMARK = dt.timedelta(minutes=2)
FUTURE_SKEW = dt.timedelta(hours=1)
SUBMIT_TIMEOUT_S = 300


def spark_submit(cluster: SparkCluster, archive: Path, executor_python: Path, script: Path,
                 *args: str) -> subprocess.CompletedProcess:
    """spark-submit from the project's environment (its launcher needs .venv/bin first on PATH), client mode; the
    driver runs this environment's Python (spark.pyspark.driver.python in spark-defaults), executors the wrapper."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = ["spark-submit", "--master", cluster.url, "--py-files", str(archive),
               "--conf", f"spark.pyspark.python={executor_python}", "--conf", "spark.ui.enabled=false",
               str(script), *args]
    result = run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                 timeout=SUBMIT_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"spark-submit exited {result.returncode}:\n{_tail(result.stdout + result.stderr)}", pytrace=False)
    return result


def run_job(cluster, archive, executor_python, kafka_broker, topic, mongo_server, database, checkpoint) -> None:
    """One available-now run of the job: everything in the topic, then stop (a restart from the checkpoint)."""
    spark_submit(cluster, archive, executor_python, PROJECT_ROOT / "jobs" / "aggregate.py",
                 "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic,
                 "--mongo-uri", mongo_server.uri, "--database", database, "--checkpoint-dir", str(checkpoint),
                 "--shuffle-partitions", "2", "--watermark-delay", "2 minutes", "--available-now",
                 "--log-level", "WARNING")


def generate(kafka_broker, topic, *flags: str) -> None:
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", topic, "--rate", "max", "--progress-interval", "60", *flags],
        check=True, timeout=120, capture_output=True)


def test_job_on_a_two_worker_cluster_matches_the_recomputation_with_late_duplicate_and_malformed_events(
        spark_cluster, job_archive, executor_python, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path):
    checkpoint = tmp_path / "checkpoint"  # every worker sees a local path on one host; a real cluster: shared storage
    # Two runs, the second resuming the first's checkpoint on the cluster: clean traffic, then traffic with late,
    # duplicate and malformed events. The same traffic as the local-mode test (tests/jobs/test_streaming_job.py): the
    # cluster must give its results.
    generate(kafka_broker, kafka_topic, "--count", "1000", "--seed", "21", "--users", "300", "--items", "80")
    run_job(spark_cluster, job_archive, executor_python, kafka_broker, kafka_topic, mongo_server, mongo_db.name,
            checkpoint)
    generate(kafka_broker, kafka_topic, "--count", "4000", "--seed", "22", "--users", "300", "--items", "80",
             "--late-ratio", "0.05", "--duplicate-ratio", "0.05", "--malformed-ratio", "0.05")
    run_job(spark_cluster, job_archive, executor_python, kafka_broker, kafka_topic, mongo_server, mongo_db.name,
            checkpoint)

    expected = recompute(read_topic(kafka_broker.bootstrap_servers, kafka_topic), WATERMARK, FUTURE_SKEW)
    report = compare(expected, mongo_db)
    assert report.ok, "MongoDB differs from the recomputation:\n" + "\n".join(report.lines())
    totals = mongo_db.totals.find_one({"_id": "all"})
    assert expected.collections["totals"]["all"]["events"] > 4000
    assert expected.late_events > 50 and totals["late_events"] == expected.late_events
    assert expected.duplicates > 50 and totals["duplicates"] == expected.duplicates
    assert sum(expected.dead_letters.values()) > 50

    # Both runs had an executor on each worker, and each executor fetched the archive and the Kafka source's jar.
    for worker in spark_cluster.workers:
        executor_dirs = [d for d in worker.work_dir.glob("app-*/*") if d.is_dir()]
        shipped = [sorted(p.name for p in d.iterdir()) for d in executor_dirs]
        assert len(executor_dirs) >= 2 and all(
            job_archive.name in names and any(n.startswith("spark-sql-kafka-0-10") for n in names)
            for names in shipped), f"{worker.name}: executor dirs {executor_dirs} hold {shipped}"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
