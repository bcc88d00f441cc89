"""`ops.verify` reading the topic and comparing with MongoDB, without the job: records go to a real topic,
the database is written from the independent recomputation (what a correct job writes), then damaged on purpose.

Reading is partition by partition with a deadline per partition; a partition whose start retention deleted is
read from its first kept offset (simulated with AdminClient.delete_records), and then only what the remaining records
account for is compared. Set-aside records are compared by their Kafka coordinates and reason. Distinct counts are
held to what the job's HyperLogLog sketch promises.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from confluent_kafka import Producer, TopicPartition

from conf import load_config
from ops.verify import (
    Coverage,
    PartitionRange,
    Record,
    TopicRead,
    compare,
    coverage_after_retention,
    read_partitions,
    read_topic,
    recompute,
    recompute_for,
)
from ops.verify.cli import main
from ops.verify.compare import HLL_COUPON_MODE_MAX

from waiting import wait_until

UTC = dt.UTC
LATENESS = dt.timedelta(minutes=2)
SKEW = dt.timedelta(minutes=10)


def event(n: int, when: dt.datetime, user: str = "u1", item: str = "i1", kind: str = "view") -> str:
    return json.dumps({"event_id": f"e{n}", "user_id": user, "item_id": item, "interaction_type": kind,
                       "platform": "web", "session_id": "s1", "event_time": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                       + "Z", "price": None, "quantity": None, "country": "DE"})


def produce(bootstrap: str, topic: str, payloads: dict[int, list[str]]) -> None:
    """`payloads[p]` to partition p, in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for partition, values in payloads.items():
        for value in values:
            producer.produce(topic, value.encode(), partition=partition)
    assert producer.flush(60) == 0


def mixed_stream(count: int) -> list[str]:
    """Valid events of a few users and items, with every 5th record not JSON and every 7th an hour late."""
    now = dt.datetime.now(UTC)
    out = []
    for n in range(count):
        if n % 5 == 0:
            out.append(f"not json {n}")
        elif n % 7 == 0:
            out.append(event(n, now - dt.timedelta(hours=1), user=f"u{n % 3}"))
        else:
            out.append(event(n, now, user=f"u{n % 3}", item=f"i{n % 4}"))
    return out


def store(db, expected, records: list[Record]) -> None:
    """What a correct job writes for these records: every expected document, and one document per set-aside record."""
    raw = {(r.topic, r.partition, r.offset): r.raw for r in records}
    for name, documents in expected.collections.items():
        if documents:
            db[name].insert_many([dict(d) for d in documents.values()])

    def set_aside(key, **fields):
        topic, partition, offset = key
        return {"_id": f"{topic}:{partition}:{offset}", "topic": topic, "partition": partition, "offset": offset,
                "raw": raw[key], **fields}

    if expected.rejected:
        db.dead_letters.insert_many([set_aside(k, reason=reason) for k, reason in expected.rejected.items()])
    if expected.late_at:
        db.late_events.insert_many([set_aside(k) for k in expected.late_at])


def delete_before(kafka_admin, topic: str, partition: int, offset: int) -> None:
    """What retention does: the partition's records before `offset` are gone."""
    [future] = kafka_admin.delete_records([TopicPartition(topic, partition, offset)]).values()
    assert future.result(timeout=60).low_watermark == offset


def problems(report) -> set[tuple[str, str, str]]:
    return {(m.collection, str(m.doc_id), m.problem) for m in report.mismatches}


# --- reading --------------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_each_partition_is_read_whole_and_its_offset_range_named(kafka_broker, kafka_topic):
    produce(kafka_broker.bootstrap_servers, kafka_topic, {0: mixed_stream(5), 1: mixed_stream(3), 3: mixed_stream(7)})

    read = read_partitions(kafka_broker.bootstrap_servers, kafka_topic)

    assert [(p.partition, p.first, p.end, p.records) for p in read.partitions] == [
        (0, 0, 5, 5), (1, 0, 3, 3), (2, 0, 0, 0), (3, 0, 7, 7)]
    assert [p.describe() for p in read.partitions] == [
        "partition 0: offsets 0-4 (5 records)", "partition 1: offsets 0-2 (3 records)", "partition 2: empty",
        "partition 3: offsets 0-6 (7 records)"]
    assert not read.cut
    assert sorted((r.partition, r.offset) for r in read.records) == [
        (p, o) for p, n in ((0, 5), (1, 3), (3, 7)) for o in range(n)]
    assert all(r.topic == kafka_topic for r in read.records)
    assert read.records == sorted(read.records, key=lambda r: (r.timestamp, r.partition, r.offset))
    assert read_topic(kafka_broker.bootstrap_servers, kafka_topic) == read.records


@pytest.mark.integration
def test_a_partition_whose_start_was_deleted_is_read_from_its_first_kept_offset(kafka_broker, kafka_topic,
                                                                                kafka_admin):
    produce(kafka_broker.bootstrap_servers, kafka_topic, {0: mixed_stream(10), 1: mixed_stream(4)})
    delete_before(kafka_admin, kafka_topic, 0, 6)

    read = read_partitions(kafka_broker.bootstrap_servers, kafka_topic)

    first = read.partitions[0]
    assert (first.first, first.end, first.records, first.cut) == (6, 10, 4, True)
    assert first.describe() == "partition 0: offsets 6-9 (4 records); offsets 0-5 deleted (retention)"
    assert [p.partition for p in read.cut] == [0]
    assert first.first_timestamp == min(r.timestamp for r in read.records if r.partition == 0)
    assert sorted(r.offset for r in read.records if r.partition == 0) == [6, 7, 8, 9]


@pytest.mark.integration
def test_a_partition_that_ends_in_an_aborted_transaction_is_read_without_waiting_for_the_deadline(
        kafka_broker, kafka_topic):
    """Its high watermark counts records no consumer will ever see: reading stops at the partition's end, not after
    waiting `timeout` for records that never come."""
    produce(kafka_broker.bootstrap_servers, kafka_topic, {0: mixed_stream(3)})
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                         "transactional.id": f"verify-test-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(kafka_topic, b"aborted", partition=0)
    producer.flush(60)
    producer.abort_transaction(60)
    wait_until(lambda: _high_watermark(kafka_broker.bootstrap_servers, kafka_topic, 0) >= 5, timeout=60,
               message="the aborted record and its marker in the partition")

    began = time.monotonic()
    read = read_partitions(kafka_broker.bootstrap_servers, kafka_topic, timeout=30)

    assert time.monotonic() - began < 30
    assert read.partitions[0].records == 3 and read.partitions[0].end > 3  # the aborted record and its marker


def _high_watermark(bootstrap_servers: str, topic: str, partition: int) -> int:
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "watermark",
                         "isolation.level": "read_uncommitted"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        consumer.close()


# --- comparing set-aside records ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_dead_letters_and_late_events_are_compared_by_coordinates_and_reason(kafka_broker, kafka_topic, mongo_db):
    produce(kafka_broker.bootstrap_servers, kafka_topic, {0: mixed_stream(40), 1: mixed_stream(40)})
    records = read_topic(kafka_broker.bootstrap_servers, kafka_topic)
    expected = recompute(records, LATENESS, SKEW)
    store(mongo_db, expected, records)
    assert compare(expected, mongo_db).ok

    letters = sorted(expected.rejected)
    valid = next((r.topic, r.partition, r.offset) for r in records
                 if (r.topic, r.partition, r.offset) not in expected.rejected
                 and (r.topic, r.partition, r.offset) not in expected.late_at)
    late = sorted(expected.late_at)[0]
    gone, renamed, moved = (f"{t}:{p}:{o}" for t, p, o in letters[:3])
    elsewhere = "{}:{}:{}".format(*valid)
    mongo_db.dead_letters.delete_one({"_id": gone})
    mongo_db.dead_letters.update_one({"_id": renamed}, {"$set": {"reason": "something else"}})
    # the same payload at a record the oracle accepts: as many dead letters per payload as expected, wrong records
    mongo_db.dead_letters.insert_one({**mongo_db.dead_letters.find_one({"_id": moved}), "_id": elsewhere})
    mongo_db.dead_letters.delete_one({"_id": moved})
    mongo_db.late_events.delete_one({"_id": "{}:{}:{}".format(*late)})

    report = compare(expected, mongo_db)

    reason = expected.rejected[letters[1]]
    assert problems(report) == {
        ("dead_letters", gone, f"set aside by the oracle ({expected.rejected[letters[0]]}), not in MongoDB"),
        ("dead_letters", renamed, f"reason: expected {reason!r}, found 'something else'"),
        ("dead_letters", moved, f"set aside by the oracle ({expected.rejected[letters[2]]}), not in MongoDB"),
        ("dead_letters", elsewhere, "in MongoDB but the oracle does not set it aside"),
        ("late_events", "{}:{}:{}".format(*late), "set aside by the oracle, not in MongoDB"),
    }


# --- retention ------------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_after_retention_verify_compares_what_the_remaining_records_account_for(kafka_broker, kafka_topic,
                                                                                kafka_admin, mongo_server, mongo_db,
                                                                                capsys):
    produce(kafka_broker.bootstrap_servers, kafka_topic, {p: mixed_stream(30) for p in range(4)})
    records = read_topic(kafka_broker.bootstrap_servers, kafka_topic)
    store(mongo_db, recompute_for(load_config(env={}), records), records)  # built while the topic was whole
    delete_before(kafka_admin, kafka_topic, 0, 12)  # offsets 0, 5 and 10 of partition 0 were dead letters
    flags = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
             "--mongo-uri", mongo_server.uri, "--database", mongo_db.name]

    assert main(flags) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "verify:   partition 0: offsets 12-29 (18 records); offsets 0-11 deleted (retention)" in out
    assert "verify:   partition 1: offsets 0-29 (30 records)" in out
    assert "verify: retention has deleted the start of 1 of 4 partitions" in out
    assert "user_stats       not compared: it adds up records that retention has deleted" in out
    assert "totals           not compared" in out
    assert "minute_counts           0 documents  OK (windows starting after " in out  # all before the horizon
    assert "dead_letters           21 documents  OK (and 3 of records retention has deleted, not checked)" in out
    assert out.rstrip().endswith("verify: OK, every document matches")

    kept = f"{kafka_topic}:0:15"  # a dead letter among the records still there
    assert mongo_db.dead_letters.delete_one({"_id": kept}).deleted_count == 1
    assert main(flags) == 1
    out = capsys.readouterr().out
    assert f"'{kept}': set aside by the oracle (not a JSON object), not in MongoDB" in out
    assert "verify: FAILED, 1 mismatching documents" in out


def test_after_retention_windows_count_only_when_no_deleted_record_can_be_in_them(mongo_db):
    """Window documents that start after the horizon are compared exactly; earlier ones and the per-key statistics,
    which also count deleted records, are not."""
    start = dt.datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    records = [Record(event(n, start + dt.timedelta(minutes=n)), 0, n, start + dt.timedelta(minutes=n), "t")
               for n in range(6)]
    expected = recompute(records, LATENESS, SKEW)
    store(mongo_db, expected, records)
    horizon = start + dt.timedelta(minutes=2, seconds=30)  # windows 09:03, 09:04, 09:05 are after it
    for minute in (1, 4):
        mongo_db.minute_counts.update_one({"window_start": start + dt.timedelta(minutes=minute)},
                                          {"$inc": {"events": 1}})
    mongo_db.user_stats.update_one({"_id": "u1"}, {"$inc": {"view": 1}})

    report = compare(expected, mongo_db, coverage=Coverage({0: 3}, windows_after=horizon))

    assert problems(report) == {("minute_counts", "2026-11-28T09:04:00Z|view|web", "events: expected 1, found 2")}
    assert report.checked["minute_counts"] == 3
    assert set(report.not_compared) == {"user_stats", "item_stats", "top_users", "top_items", "totals"}
    without_a_horizon = compare(expected, mongo_db, coverage=Coverage({0: 3}, windows_after=None))
    assert without_a_horizon.ok and "minute_counts" in without_a_horizon.not_compared


def test_the_horizon_is_the_latest_first_kept_record_plus_the_allowed_skew_and_needs_the_brokers_clock():
    t = dt.datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    read = TopicRead("t", [], [PartitionRange(0, 5, 9, 4, t), PartitionRange(1, 0, 3, 3, t),
                               PartitionRange(2, 2, 8, 6, t + dt.timedelta(minutes=1))])
    assert coverage_after_retention(read, "LogAppendTime", SKEW) == Coverage({0: 5, 1: 0, 2: 2},
                                                                             t + dt.timedelta(minutes=11))
    assert coverage_after_retention(read, "CreateTime", SKEW) == Coverage({0: 5, 1: 0, 2: 2}, None)
    whole = TopicRead("t", [], [PartitionRange(0, 0, 9, 9, t)])
    assert coverage_after_retention(whole, "LogAppendTime", SKEW) is None


# --- distinct counts --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("items, accepted, refused", [
    (3, [3, 2], [4, 1]),                                                 # exact, or one coupon collision
    (HLL_COUPON_MODE_MAX, [384, 383], [385, 382]),
    (1000, [1000, 1081, 919], [1082, 918]),                              # 5 x 1.62 % = 81.2
])
def test_distinct_counts_are_held_to_what_the_sketch_promises(mongo_db, items, accepted, refused):
    start = dt.datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    records = [Record(event(n, start, item=f"i{n}"), 0, n, start, "t") for n in range(items)]
    expected = recompute(records, LATENESS, SKEW)
    store(mongo_db, expected, records)

    def verdict(distinct_items: int) -> bool:
        mongo_db.user_stats.update_one({"_id": "u1"}, {"$set": {"distinct_items": distinct_items}})
        return compare(expected, mongo_db).ok

    assert [verdict(n) for n in accepted] == [True] * len(accepted)
    assert [verdict(n) for n in refused] == [False] * len(refused)
