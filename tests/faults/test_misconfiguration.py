"""Misconfigured services end with one readable line naming the problem, never a stack trace or a secret."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conf import ConfigError
from interactions.preflight import check_kafka, check_mongo
from stack import free_ports

from processes import started
from waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def mongo_with_auth(tmp_path):
    """A MongoDB-protocol server that requires authentication (and knows no user)."""
    from pymongo import MongoClient

    port = free_ports(1)[0]
    with started([sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
                  "--storage-path", str(tmp_path / "db"), "--standalone", "--auth"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        probe = MongoClient(f"mongodb://127.0.0.1:{port}/?retryWrites=false", serverSelectionTimeoutMS=500)
        wait_until(lambda: probe.admin.command("ping"), timeout=60, message="the auth server did not start")
        yield port


def test_wrong_mongodb_credentials_are_one_line_without_the_password(mongo_with_auth):
    uri = f"mongodb://pipeline:hunter2@127.0.0.1:{mongo_with_auth}/?retryWrites=false&authSource=admin"
    with pytest.raises(ConfigError) as error:
        check_mongo(uri, "analytics", timeout=10)
    message = str(error.value)
    assert message.startswith(f"MongoDB at mongodb://***@127.0.0.1:{mongo_with_auth}/")
    assert "authentication failed" in message and "hunter2" not in message and "\n" not in message


def test_missing_credentials_on_a_server_that_requires_them_are_one_line(mongo_with_auth):
    with pytest.raises(ConfigError, match="refused access: .*requires authentication"):
        check_mongo(f"mongodb://127.0.0.1:{mongo_with_auth}/?retryWrites=false", "analytics", timeout=10)


def test_an_unreachable_database_is_one_line():
    [port] = free_ports(1)
    with pytest.raises(ConfigError, match=rf"^MongoDB at mongodb://127.0.0.1:{port}/ unreachable after 2s"):
        check_mongo(f"mongodb://127.0.0.1:{port}/", "analytics", timeout=2)


def test_a_topic_that_does_not_exist_is_one_line(kafka_broker):
    with pytest.raises(ConfigError, match="Kafka topic 'no-such-topic' does not exist"):
        check_kafka(kafka_broker.bootstrap_servers, "no-such-topic", timeout=10)
