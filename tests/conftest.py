"""Shared fixtures: real services start once per test session; each test gets its own topic or database.

Services run on free ports in temporary directories, so a test session never touches the developer's own stack
(`python -m stack up`) and several sessions can run side by side. Spark comes from pytest-spark (`spark_session`).
"""
from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator

import pytest

from stack import KafkaBroker, MongoServer, free_ports

from processes import Processes
from waiting import wait_until

# Spark's Python workers must run this environment's interpreter (they import the job's package); a session started
# from Python reads PYSPARK_PYTHON, not spark-defaults' spark.pyspark.python (which spark-submit honours).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

SERVICE_START_TIMEOUT_S = 180.0  # a cold JVM on a busy 2-core machine; a normal start takes ~5 s
TOPIC_PARTITIONS = 4


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A started single-node Apache Kafka (KRaft); `.bootstrap_servers` is its address."""
    port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller_port)
    try:
        broker.start(timeout=SERVICE_START_TIMEOUT_S)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A started MongoDB-protocol server (SecantusDB); `.uri` is its address (with retryWrites=false)."""
    server = MongoServer(tmp_path_factory.mktemp("mongo"), port=free_ports(1)[0])
    try:
        server.start(timeout=SERVICE_START_TIMEOUT_S)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_admin(kafka_broker: KafkaBroker):
    """A confluent-kafka AdminClient on the session's broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})


@pytest.fixture
def kafka_topic(kafka_admin, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh topic with 4 partitions and the broker's clock for timestamps (as the generator creates it), every
    partition led (ready to produce to); deleted after the test. A test that measures the producer's clock asks for
    it: @pytest.mark.parametrize("kafka_topic", ["CreateTime"], indirect=True)."""
    from confluent_kafka.admin import NewTopic

    from contract.topics import TIMESTAMP_TYPE_KEY, TOPIC_CONFIG

    name = f"test-{_slug(request.node.name)}-{uuid.uuid4().hex[:8]}"
    config = {**TOPIC_CONFIG, **({TIMESTAMP_TYPE_KEY: request.param} if hasattr(request, "param") else {})}
    futures = kafka_admin.create_topics([NewTopic(name, num_partitions=TOPIC_PARTITIONS, replication_factor=1,
                                                  config=config)], operation_timeout=30)
    futures[name].result(timeout=60)

    def led_partitions() -> int:
        topic = kafka_admin.list_topics(topic=name, timeout=5).topics.get(name)
        if topic is None or topic.error is not None:
            return 0
        led = sum(1 for partition in topic.partitions.values() if partition.leader >= 0)
        return led if led == TOPIC_PARTITIONS else 0

    wait_until(led_partitions, timeout=60, message=f"topic {name} has no leader on all {TOPIC_PARTITIONS} partitions")
    yield name
    try:
        kafka_admin.delete_topics([name], operation_timeout=10)[name].result(timeout=30)
    # the test's own clients may still hold it; the broker's tmp dir goes with the session
    except Exception:  # noqa: BLE001 (any failure)
        pass


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Starts processes for one test (`processes.start`, in their own process groups); after the test, pass or fail,
    each whole group is ended (tests/processes.py)."""
    started = Processes()
    yield started
    started.end_all()


@pytest.fixture(scope="session")
def mongo_client(mongo_server: MongoServer):
    """A pymongo client on the session's server."""
    from pymongo import MongoClient

    client = MongoClient(mongo_server.uri, serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture
def mongo_db(mongo_client, request: pytest.FixtureRequest):
    """A pymongo Database with a unique name, dropped after the test."""
    name = f"t_{_slug(request.node.name)[:40]}_{uuid.uuid4().hex[:8]}".replace("-", "_")
    database = mongo_client[name]
    yield database
    mongo_client.drop_database(name)


def _slug(text: str) -> str:
    """A test name made safe for topic and database names ([A-Za-z0-9_-], short)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:60] or "t"
