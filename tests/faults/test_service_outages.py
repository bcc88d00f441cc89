"""Services that go away mid-stream: the job waits for them (with backoff) and catches up; nothing is lost or
counted twice. Each test has its own broker or database, since it takes it down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conf import load_config
from ops.verify import compare, read_topic, recompute_for
from stack import KafkaBroker, MongoServer, free_ports

from processes import Processes, run
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
OUTAGE_S = 30


def generate(processes: Processes, bootstrap, topic, *flags):
    return processes.start([sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap, "--topic", topic,
                            "--users", "300", "--items", "80", "--progress-interval", "60", *flags],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def start_job(processes: Processes, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    with open(log, "ab") as output:  # the child keeps its own descriptor
        return processes.start(["spark-submit", "jobs/aggregate.py", "--trigger-interval", "1 second",
                                "--shuffle-partitions", "2", *args], cwd=ROOT, env=env, stdout=output,
                               stderr=subprocess.STDOUT)


def stop_job(job: subprocess.Popen) -> int:
    """A clean stop, as the job documents it: SIGTERM to the Python driver (spark-submit's child), which stops the
    queries after their current batch and ends the JVM with it."""
    drivers = run(["pgrep", "-P", str(job.pid), "-f", "aggregate.py"], capture_output=True, text=True, timeout=30)
    for pid in drivers.stdout.split():
        os.kill(int(pid), signal.SIGTERM)
    return job.wait(timeout=120)


def counted(db) -> int:
    return (db.totals.find_one({"_id": "all"}) or {}).get("events", 0)


def matches_recomputation(bootstrap, topic, db) -> bool:
    """Every document equals the recomputation (the side queries trigger less often than the aggregates, so they
    may still be catching up when the totals already are)."""
    return compare(recompute_for(load_config(env={}), read_topic(bootstrap, topic)), db).ok


def catch_up_stop_and_check(bootstrap, topic, db, job, log: Path, after: str) -> None:
    """Wait until the totals count every event and every output equals the recomputation, stop the job cleanly and
    compare again."""
    total = expected_events(bootstrap, topic)
    wait_until(lambda: counted(db) == total, timeout=300,
               message=f"the job did not catch up to {total} events after {after}")
    wait_until(lambda: matches_recomputation(bootstrap, topic, db), timeout=120, interval=2,
               message="the job's other outputs did not catch up")
    assert stop_job(job) == 0, log.read_text()[-3000:]
    check(bootstrap, topic, db)


def check(bootstrap, topic, db):
    expected = recompute_for(load_config(env={}), read_topic(bootstrap, topic))
    report = compare(expected, db)
    assert report.ok, "\n".join(report.lines())
    return expected


def expected_events(bootstrap, topic) -> int:
    return recompute_for(load_config(env={}), read_topic(bootstrap, topic)).collections["totals"]["all"]["events"]


def test_the_job_waits_for_mongodb_and_catches_up(kafka_broker, kafka_topic, tmp_path, processes):
    from pymongo import MongoClient

    mongo = MongoServer(tmp_path / "mongo", port=free_ports(1)[0])
    mongo.start(timeout=120)
    log = tmp_path / "job.log"
    try:
        assert generate(processes, kafka_broker.bootstrap_servers, kafka_topic, "--count", "1000", "--rate", "max",
                        "--seed", "51").wait(timeout=300) == 0
        job = start_job(processes, log, "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
                        "--mongo-uri", mongo.uri, "--database", "outage", "--checkpoint-dir",
                        str(tmp_path / "checkpoint"))
        db = MongoClient(mongo.uri, tz_aware=True)["outage"]
        wait_until(lambda: counted(db) >= 1000, timeout=300, message="the job never counted the first events")

        mongo.stop()  # the database goes away mid-stream, for as long as this traffic lasts
        producer = generate(processes, kafka_broker.bootstrap_servers, kafka_topic, "--rate", "200", "--duration",
                            str(OUTAGE_S), "--seed", "52", "--malformed-ratio", "0.02")
        wait_until(lambda: "MongoDB unavailable" in log.read_text(), timeout=120,
                   message="the job did not notice that MongoDB was gone")
        assert producer.wait(timeout=OUTAGE_S + 120) == 0, producer.stderr.read()[-2000:]
        assert job.poll() is None, "the job died while MongoDB was away:\n" + log.read_text()[-3000:]
        mongo.start(timeout=120)  # back, on the same data

        catch_up_stop_and_check(kafka_broker.bootstrap_servers, kafka_topic, db, job, log, "MongoDB came back")
    finally:
        mongo.stop()


def test_a_frozen_broker_delays_but_loses_nothing(mongo_server, mongo_db, tmp_path, processes):
    kafka_port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path / "kafka", port=kafka_port, controller_port=controller_port)
    broker.start(timeout=180)
    log = tmp_path / "job.log"
    topic = "frozen"
    try:
        assert generate(processes, broker.bootstrap_servers, topic, "--count", "500", "--rate", "max", "--seed", "61",
                        "--partitions", "2").wait(timeout=300) == 0
        job = start_job(processes, log, "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
                        "--mongo-uri", mongo_server.uri, "--database", mongo_db.name,
                        "--checkpoint-dir", str(tmp_path / "checkpoint"))
        wait_until(lambda: counted(mongo_db) >= 500, timeout=300, message="the job never counted the first events")
        producer = generate(processes, broker.bootstrap_servers, topic, "--rate", "100", "--duration",
                            str(OUTAGE_S + 20), "--seed", "62")
        wait_until(lambda: counted(mongo_db) > 500, timeout=120, message="no new traffic reached the job")

        os.kill(broker.pid(), signal.SIGSTOP)  # the broker freezes: no answers, connections stay open
        try:
            time.sleep(OUTAGE_S)  # the fault itself, not a wait for a result
        finally:
            os.kill(broker.pid(), signal.SIGCONT)
        assert producer.wait(timeout=300) == 0, producer.stderr.read()[-2000:]
        assert job.poll() is None, "the job died while the broker was frozen:\n" + log.read_text()[-3000:]

        catch_up_stop_and_check(broker.bootstrap_servers, topic, mongo_db, job, log, "the broker came back")
    finally:
        broker.stop()
