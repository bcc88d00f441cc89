"""What a topic of this pipeline must be: its records carry the broker's clock, not the producer's.

Lateness (and the "too far in the future" rule) compares a record's event time with its Kafka timestamp. With the
topic setting `message.timestamp.type=LogAppendTime` that timestamp is the moment the broker appended the record, so
a record's lateness is a fact about the record that no producer's clock can bend; with Kafka's default, `CreateTime`,
it is whatever the producer wrote, and a producer whose clock drifts makes its events look on time (or late).
Everything that creates a topic for the pipeline (the generator, the native stack's broker defaults, docker compose,
the tests and the benchmarks) uses TOPIC_CONFIG; `topic_timestamp_type` tells the job which clock an existing topic
uses.
"""
from __future__ import annotations

TIMESTAMP_TYPE_KEY = "message.timestamp.type"
LOG_APPEND_TIME = "LogAppendTime"
CREATE_TIME = "CreateTime"
TOPIC_CONFIG = {TIMESTAMP_TYPE_KEY: LOG_APPEND_TIME}


class TopicConfigUnavailable(RuntimeError):
    """The broker did not say how the topic is configured; the message is one line."""


def topic_timestamp_type(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> str:
    """"LogAppendTime" or "CreateTime": whose clock the topic's record timestamps are (the topic's effective
    `message.timestamp.type`, its own setting or else the broker's default). Raises TopicConfigUnavailable when the
    broker is unreachable within `timeout` seconds or the topic does not exist."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0, "log.connection.close": False,
                         "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000))})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    future = admin.describe_configs([resource], request_timeout=timeout)[resource]
    try:
        entries = future.result(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicConfigUnavailable(f"Kafka topic {topic!r} does not exist at {bootstrap_servers}") from None
        reason = error.str() if isinstance(error, KafkaError) else str(exc)
        raise TopicConfigUnavailable(f"cannot read the configuration of topic {topic!r} at {bootstrap_servers}: "
                                     f"{reason}") from None
    except TimeoutError:
        raise TopicConfigUnavailable(f"Kafka at {bootstrap_servers} did not describe topic {topic!r} within "
                                     f"{timeout:g} s") from None
    entry = entries.get(TIMESTAMP_TYPE_KEY)
    value = entry.value if entry is not None else None
    if value not in (LOG_APPEND_TIME, CREATE_TIME):
        raise TopicConfigUnavailable(f"topic {topic!r} at {bootstrap_servers} reports {TIMESTAMP_TYPE_KEY}={value!r}")
    return value
