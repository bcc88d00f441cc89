"""Pipeline topics carry the broker's clock (contract/topics.py): whoever creates them, and whatever clock a producer
has, a record's timestamp is when the broker appended it. Against the session's real broker."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition

from contract.topics import CREATE_TIME, LOG_APPEND_TIME, TopicConfigUnavailable, topic_timestamp_type
from generator.producer import ensure_topic

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


def test_a_topic_the_generator_creates_uses_the_brokers_clock(kafka_broker):
    topic = f"created-{uuid.uuid4().hex[:8]}"
    assert ensure_topic(kafka_broker.bootstrap_servers, topic, partitions=2, timeout_s=30)
    assert topic_timestamp_type(kafka_broker.bootstrap_servers, topic, timeout=30) == LOG_APPEND_TIME


def test_the_tests_topics_use_the_brokers_clock(kafka_broker, kafka_topic):
    assert topic_timestamp_type(kafka_broker.bootstrap_servers, kafka_topic, timeout=30) == LOG_APPEND_TIME


def test_a_topic_the_stack_broker_creates_by_itself_uses_the_brokers_clock(kafka_broker):
    """Auto-created (the first producer to a missing topic): the broker's default, set by stack/kafka.py."""
    topic = f"auto-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(topic, b"{}")
    assert producer.flush(60) == 0
    assert topic_timestamp_type(kafka_broker.bootstrap_servers, topic, timeout=30) == LOG_APPEND_TIME


def test_a_topic_created_on_the_producers_clock_is_reported_as_such(kafka_broker, kafka_admin):
    from confluent_kafka.admin import NewTopic

    topic = f"create-time-{uuid.uuid4().hex[:8]}"
    kafka_admin.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.type": CREATE_TIME})])[topic] \
        .result(timeout=60)
    assert topic_timestamp_type(kafka_broker.bootstrap_servers, topic, timeout=30) == CREATE_TIME


def test_a_producer_with_a_wrong_clock_cannot_set_the_timestamp(kafka_broker, kafka_topic):
    """A producer whose clock is a day behind stamps its record a day ago; the topic replaces that with the time the
    broker appended it, so the record's lateness is measured on the broker's clock."""
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    before_ms = int(time.time() * 1000)
    producer.produce(kafka_topic, b"{}", partition=0, timestamp=before_ms - DAY_MS)
    assert producer.flush(60) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(kafka_topic, 0, 0)])
        message = None
        deadline = time.monotonic() + 60
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
        assert message is not None and message.error() is None, message
        kind, millis = message.timestamp()
    finally:
        consumer.close()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before_ms - 1000 <= millis <= int(time.time() * 1000) + 1000  # now, not a day ago


def test_a_missing_topic_is_one_line(kafka_broker):
    with pytest.raises(TopicConfigUnavailable, match=r"^Kafka topic 'no-such-topic' does not exist at 127\.0\.0\.1:"):
        topic_timestamp_type(kafka_broker.bootstrap_servers, "no-such-topic", timeout=10)


def test_an_unreachable_broker_is_one_line():
    from stack import free_port

    with pytest.raises(TopicConfigUnavailable, match=r"127\.0\.0\.1:\d+") as error:
        topic_timestamp_type(f"127.0.0.1:{free_port()}", "interactions", timeout=2)
    assert "\n" not in str(error.value)
