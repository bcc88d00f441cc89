"""Checks run before Spark starts, so a misconfigured service ends with one readable line, not a stack trace."""
from __future__ import annotations

from confluent_kafka.admin import AdminClient
from confluent_kafka import KafkaException
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from conf import ConfigError, PipelineConfig

TIMEOUT_SECONDS = 10


def check_services(config: PipelineConfig, timeout: float = TIMEOUT_SECONDS) -> None:
    check_kafka(config.kafka.bootstrap_servers, config.kafka.topic, timeout)
    check_mongo(config.mongo.uri, config.mongo.database, timeout)


def check_kafka(bootstrap_servers: str, topic: str, timeout: float) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "socket.connection.setup.timeout.ms": 5000,
                         "log_level": 0, "logger": _Silent()})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConfigError(f"Kafka broker at {bootstrap_servers} unreachable after {timeout:.0f}s "
                          f"({exc.args[0].str() if exc.args else exc})") from None
    if topic not in metadata.topics:
        raise ConfigError(f"Kafka topic {topic!r} does not exist on {bootstrap_servers} "
                          "(the generator creates it: python -m generator)")


def check_mongo(uri: str, database: str, timeout: float) -> None:
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000)) as client:
            client[database].command("ping")
            client[database].list_collection_names()
    except OperationFailure as exc:
        raise ConfigError(f"MongoDB at {_redacted(uri)} refused access: {exc.details.get('errmsg', exc)}") from None
    except PyMongoError as exc:
        raise ConfigError(f"MongoDB at {_redacted(uri)} unreachable after {timeout:.0f}s "
                          f"({str(exc).split(',')[0]})") from None


def _redacted(uri: str) -> str:
    if "@" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


class _Silent:
    def log(self, *args, **kwargs) -> None:
        pass
