"""python -m generator against a real broker: rate, manifest oracle, reproducibility per partition, shutdown."""
from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from generator import read_manifest

from processes import run
from waiting import wait_until

pytestmark = pytest.mark.integration


def run_generator(broker, topic, *flags, timeout=120):
    result = run(
        [sys.executable, "-m", "generator", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
         "--progress-interval", "0", *map(str, flags)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


def topic_size(broker, topic) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "size", "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def read_topic(broker, topic, timeout=60.0) -> list[dict]:
    """Every message in the topic (as the broker's high watermarks say), each as a dict."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        expected = topic_size(broker, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[dict] = []

        def read_all():
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                assert msg.error() is None, msg.error()
                records.append({"partition": msg.partition(), "offset": msg.offset(), "key": msg.key().decode(),
                                "payload": msg.value().decode(), "timestamp_ms": msg.timestamp()[1]})
            return len(records) >= expected

        wait_until(read_all, timeout=timeout, message=f"reading {expected} messages back from {topic}",
                   interval=0.0)
        return records
    finally:
        consumer.close()


@pytest.mark.parametrize("kafka_topic", ["CreateTime"], indirect=True)  # the producer's clock is what is measured
def test_rate_is_held_against_a_real_broker(kafka_broker, kafka_topic, tmp_path):
    stats = tmp_path / "stats.json"
    run_generator(kafka_broker, kafka_topic, "--rate", 2000, "--duration", 5, "--stats-json", stats)
    records = read_topic(kafka_broker, kafka_topic)
    assert len(records) == 10_000
    stamps = sorted(r["timestamp_ms"] for r in records)  # CreateTime: when produce() was called
    span = (stamps[-1] - stamps[0]) / 1000
    assert span == pytest.approx(5.0, abs=0.3)
    per_second = collections.Counter((t - stamps[0]) // 1000 for t in stamps)
    for second in range(1, 4):  # whole seconds inside the run; loose, since a busy machine may delay a tick
        assert per_second[second] == pytest.approx(2000, rel=0.25), per_second
    assert json.loads(stats.read_text())["events_per_s"] == pytest.approx(2000, rel=0.05)


def test_manifest_equals_what_a_consumer_reads_back(kafka_broker, kafka_topic, tmp_path):
    manifest, stats = tmp_path / "manifest.jsonl", tmp_path / "stats.json"
    run_generator(kafka_broker, kafka_topic, "--rate", "max", "--count", 20_000, "--seed", 3,
                  "--late-ratio", 0.05, "--duplicate-ratio", 0.05, "--malformed-ratio", 0.05,
                  "--emit-manifest", manifest, "--stats-json", stats)
    expected = {(r.partition, r.offset): (r.key, r.payload) for r in read_manifest(manifest)}
    actual = {(r["partition"], r["offset"]): (r["key"], r["payload"]) for r in read_topic(kafka_broker, kafka_topic)}
    assert len(expected) == 20_000
    assert actual == expected
    kinds = collections.Counter(r.kind for r in read_manifest(manifest))
    assert kinds == {k: v["acked"] for k, v in json.loads(stats.read_text())["by_kind"].items()}
    assert min(kinds.values()) > 500


def test_two_processes_split_users_and_their_manifest_matches_the_topic(kafka_broker, kafka_topic, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    run_generator(kafka_broker, kafka_topic, "--rate", "max", "--count", 6_001, "--processes", 2,
                  "--users", 1_000, "--emit-manifest", manifest)
    records = list(read_manifest(manifest))
    assert len(records) == 6_001
    assert sorted((r.key, r.payload) for r in records) == \
        sorted((r["key"], r["payload"]) for r in read_topic(kafka_broker, kafka_topic))
    assert len({json.loads(r.payload)["event_id"] for r in records}) == 6_001


def test_seed_and_start_time_reproduce_every_partition(kafka_broker, kafka_admin, tmp_path):
    from confluent_kafka.admin import NewTopic

    topics = [f"repro-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for topic in topics:
        kafka_admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
        run_generator(kafka_broker, topic, "--rate", 50_000, "--count", 3_000, "--seed", 42,
                      "--start-time", "2026-11-28T00:00:00Z", "--duplicate-ratio", 0.02, "--malformed-ratio", 0.02,
                      "--late-ratio", 0.02)

    def per_partition(topic):
        by_partition = collections.defaultdict(list)
        for r in sorted(read_topic(kafka_broker, topic), key=lambda r: (r["partition"], r["offset"])):
            by_partition[r["partition"]].append((r["key"], r["payload"]))
        return dict(by_partition)

    first, second = per_partition(topics[0]), per_partition(topics[1])
    assert sum(map(len, first.values())) == 3_000
    assert first == second


def test_burst_multiplies_the_rate_for_its_window(kafka_broker, kafka_topic):
    run_generator(kafka_broker, kafka_topic, "--rate", 1000, "--burst", "4x:1@1", "--duration", 3)
    assert topic_size(kafka_broker, kafka_topic) == 1000 * 3 + 3 * 1000


def test_sigterm_flushes_and_exits_cleanly(kafka_broker, kafka_topic, tmp_path, processes):
    manifest = tmp_path / "manifest.jsonl"
    process = processes.start(
        [sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", kafka_topic, "--rate", "3000", "--processes", "2", "--emit-manifest", str(manifest),
         "--progress-interval", "0"], stderr=subprocess.PIPE, text=True)
    wait_until(lambda: topic_size(kafka_broker, kafka_topic) >= 2000, timeout=60,
               message="generator producing")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("generator: stopped"), err
    assert "Traceback" not in err
    assert sum(1 for _ in read_manifest(manifest)) == topic_size(kafka_broker, kafka_topic)
