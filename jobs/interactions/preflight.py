"""Checks run before Spark starts, so a misconfigured service ends with one readable line, not a stack trace."""
from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka import KafkaException
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from conf import ConfigError, PipelineConfig

TIMEOUT_SECONDS = 10


def check_services(config: PipelineConfig, timeout: float = TIMEOUT_SECONDS) -> None:
    check_kafka(config.kafka.bootstrap_servers, config.kafka.topic, timeout)
    check_mongo(config.mongo.uri, config.mongo.database, timeout)
    check_checkpoint(config)


IDENTITY_FILE = "pipeline.json"


def checkpoint_identity(config: PipelineConfig) -> dict[str, object]:
    """What a checkpoint is bound to: its offsets mean one topic, its state one database's documents."""
    return {"topic": config.kafka.topic, "database": config.mongo.database,
            "shuffle_partitions": config.job.shuffle_partitions, "watermark_delay": config.job.watermark_delay,
            "recent_window": config.job.recent_window, "recent_slide": config.job.recent_slide}


def check_checkpoint(config: PipelineConfig) -> None:
    """Refuse a checkpoint written for another topic, database or state layout (resuming it would mix or double
    count); record the identity of a new one."""
    directory = Path(config.job.checkpoint_dir)
    wanted = checkpoint_identity(config)
    marker = directory / IDENTITY_FILE
    if marker.exists():
        try:
            found = json.loads(marker.read_text())
        except ValueError:
            raise ConfigError(f"checkpoint {directory} has an unreadable {IDENTITY_FILE}") from None
        for key, value in wanted.items():
            if found.get(key) != value:
                raise ConfigError(
                    f"checkpoint {directory} was made with {key}={found.get(key)!r}, not {value!r}: resuming it "
                    f"would mix results; use another --checkpoint-dir (and a fresh --database) or the old {key}")
        return
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty and is not a checkpoint of this job")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(wanted, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the checkpoint directory {directory}: {exc.strerror}") from None


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
