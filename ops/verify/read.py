"""The records, read back: from the topic partition by partition, or from a generator manifest."""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class Record(NamedTuple):
    """One Kafka record as read back from the topic."""

    raw: str | None
    partition: int
    offset: int
    timestamp: dt.datetime | None  # the broker's timestamp, UTC (None: outside what a datetime holds)
    topic: str | None = None  # None: not known (records made by hand); set-aside documents then match on the rest
    size: int | None = None   # the payload's bytes as sent (None: raw's length in UTF-8)


@dataclass(frozen=True)
class PartitionRange:
    """The offsets of one partition that were read: [first, end)."""

    partition: int
    first: int                                    # the first offset still in the partition
    end: int                                      # one past the last offset when reading began (its high watermark)
    records: int
    first_timestamp: dt.datetime | None = None    # the broker timestamp of the record at `first`

    @property
    def cut(self) -> bool:
        """Retention (or a deletion) removed the partition's first records."""
        return self.first > 0

    def describe(self) -> str:
        if self.records == 0 and not self.cut:
            return f"partition {self.partition}: empty"
        read = (f"offsets {self.first}-{self.end - 1} ({self.records} records)" if self.records
                else f"no records left (end offset {self.end})")
        gone = f"; offsets 0-{self.first - 1} deleted (retention)" if self.cut else ""
        return f"partition {self.partition}: {read}{gone}"


@dataclass
class TopicRead:
    topic: str
    records: list[Record]          # in (broker timestamp, partition, offset) order
    partitions: list[PartitionRange]

    @property
    def cut(self) -> list[PartitionRange]:
        return [p for p in self.partitions if p.cut]


def read_topic(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of `topic` up to its current end, in (broker timestamp, partition, offset) order."""
    return read_partitions(bootstrap_servers, topic, timeout).records


def read_partitions(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> TopicRead:
    """Every record still in `topic`, partition by partition, from each partition's first retained offset (its low
    watermark) to its end when reading began (its high watermark). `timeout` bounds the wait for the next record of
    a partition, not the whole read: a large topic takes as long as it takes while records keep coming. Raises
    TimeoutError naming the partition and offset where records stopped coming."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"verify-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise LookupError(f"topic {topic!r}: {metadata.error.str()}")
        records: list[Record] = []
        ranges = []
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            ranges.append(_read_partition(consumer, topic, partition, low=low, high=high, timeout=timeout,
                                          records=records))
        records.sort(key=in_broker_order)
        return TopicRead(topic, records, ranges)
    finally:
        consumer.close()


def _read_partition(consumer: Any, topic: str, partition: int, *, low: int, high: int, timeout: float,
                    records: list[Record]) -> PartitionRange:
    """Offsets [low, high) of one partition into `records`; the deadline restarts with every record that arrives."""
    from confluent_kafka import KafkaError, TopicPartition

    first: int | None = None
    first_timestamp = None
    count = 0
    next_offset = low
    if high > low:
        consumer.assign([TopicPartition(topic, partition, low)])
        last_progress = time.monotonic()
        while next_offset < high:
            for message in consumer.consume(10_000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and message.partition() == partition:
                        next_offset = high  # the rest of the range holds no records (e.g. transaction markers)
                    continue
                if message.partition() != partition or message.offset() >= high:
                    continue
                value = message.value()
                _, millis = message.timestamp()
                when = broker_time(millis)
                records.append(Record(value.decode("utf-8", "replace") if value is not None else None,
                                      partition, message.offset(), when, topic,
                                      len(value) if value is not None else None))
                if first is None:
                    first, first_timestamp = message.offset(), when
                count += 1
                next_offset = message.offset() + 1
                last_progress = time.monotonic()
            if next_offset < high and time.monotonic() - last_progress > timeout:
                raise TimeoutError(f"partition {partition} of {topic}: no record for {timeout:g} s at offset "
                                   f"{next_offset} (reading offsets {low}-{high - 1}, {count} read)")
        consumer.unassign()
    # Retention may delete more while we read: then the first record read is later than the low watermark was.
    first = first if first is not None else high
    return PartitionRange(partition, first, high, count, first_timestamp)


def in_broker_order(record: Record) -> tuple[bool, dt.datetime, int, int]:
    """Sort key: broker timestamp, partition, offset; records without a timestamp a datetime holds last."""
    return record.timestamp is None, record.timestamp or EPOCH, record.partition, record.offset


def broker_time(millis: int) -> dt.datetime | None:
    """A Kafka timestamp (epoch milliseconds) as a UTC datetime; None beyond what a datetime holds (a producer's
    clock on a CreateTime topic can say anything)."""
    try:
        return EPOCH + dt.timedelta(milliseconds=millis)
    except OverflowError:
        return None


def manifest_records(path: str, topic: str | None = None) -> list[Record]:
    """Records from a generator manifest (--emit-manifest), with the broker timestamps its delivery reports gave;
    a manifest does not name its topic, so `topic` says which it was."""
    out = []
    with open(path) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                out.append(Record(row["payload"], row["partition"], row["offset"],
                                  dt.datetime.fromtimestamp(row["timestamp"] / 1000, UTC), topic))
    out.sort(key=in_broker_order)
    return out
