"""The Kafka edge: topic creation, a throughput-tuned producer, pacing, delivery accounting and the manifest.

The only module of the generator that writes to Kafka (topics.py reads a topic's settings). One `run_producer`
call is one producer process's whole run.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contract.topics import TOPIC_CONFIG
from generator.faults import DEFECTS
from generator.pacing import Schedule
from generator.settings import StreamSettings
from generator.stream import KINDS, MessageStream

log = logging.getLogger("generator")

TICK_S = 0.005            # pacing granularity: a batch goes out at most every tick
MAX_BATCH = 5_000         # messages generated and handed to librdkafka between polls
MAX_BACKLOG_S = 1.0       # falling further behind than this (machine too slow) drops the debt instead of racing


class BrokerUnreachable(ConnectionError):
    """The broker did not answer in time; the message is one line for the user."""


def producer_config(bootstrap_servers: str, compression: str = "none",
                    overrides: dict[str, str] | None = None) -> dict:
    """Librdkafka settings for throughput: big batches, a short linger, a deep local queue, idempotent delivery.

    Idempotence makes librdkafka's internal retries invisible to consumers, so the manifest (acknowledged messages)
    equals what the topic holds.
    """
    config = {
        "bootstrap.servers": bootstrap_servers,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "compression.type": compression,
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 60_000,
        "socket.connection.setup.timeout.ms": 10_000,
        "log.connection.close": False,
    }
    config.update(overrides or {})
    return config


def _quiet_client_config(bootstrap_servers: str, timeout_s: float) -> dict:
    return {"bootstrap.servers": bootstrap_servers, "log_level": 0, "log.connection.close": False,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))}


def ensure_topic(bootstrap_servers: str, topic: str, partitions: int, timeout_s: float = 10.0) -> bool:
    """Create `topic` with `partitions` partitions and the broker's clock for timestamps (contract/topics.py) unless
    it exists. True if created. Raises BrokerUnreachable."""
    admin = AdminClient(_quiet_client_config(bootstrap_servers, timeout_s))
    deadline = time.monotonic() + timeout_s
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap_servers} within {timeout_s:g} s") from None
    if topic in metadata.topics and not metadata.topics[topic].error:
        existing = len(metadata.topics[topic].partitions)
        if existing != partitions:
            log.info("topic %s exists with %d partitions (--partitions %d not applied)", topic, existing, partitions)
        return False
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1,
                                           config=TOPIC_CONFIG)],
                                 operation_timeout=max(1.0, deadline - time.monotonic()))[topic]
    try:
        future.result(timeout=max(1.0, deadline - time.monotonic()))
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise BrokerUnreachable(f"cannot create topic {topic} at {bootstrap_servers}: "
                                f"{error.str() if isinstance(error, KafkaError) else exc}") from None
    except TimeoutError:
        raise BrokerUnreachable(f"creating topic {topic} at {bootstrap_servers} timed out after {timeout_s:g} s") \
            from None
    # Wait until the new topic's partitions have leaders, so the first messages do not wait on metadata.
    while time.monotonic() < deadline:
        topic_meta = admin.list_topics(topic, timeout=max(0.5, deadline - time.monotonic())).topics.get(topic)
        if topic_meta and not topic_meta.error and len(topic_meta.partitions) == partitions \
                and all(p.leader >= 0 for p in topic_meta.partitions.values()):
            break
        time.sleep(0.05)
    log.info("created topic %s with %d partitions", topic, partitions)
    return True


class DeliveryLedger:
    """Counts delivery reports per kind and, with a manifest, writes one JSON line per acknowledged message.

    One precreated callback per (kind, defect), so the hot loop allocates nothing per message. Callbacks run inside
    poll()/flush() on the producing thread, so plain list counters are safe.
    """

    def __init__(self, manifest: TextIO | None = None) -> None:
        self.acked = [0] * len(KINDS)
        self.failed = [0] * len(KINDS)
        self.first_error: str | None = None
        self._manifest = manifest
        self.callbacks: dict[tuple[str, str | None], Callable] = {}
        for index, kind in enumerate(KINDS):
            for defect in (DEFECTS if kind == "malformed" else (None,)):
                self.callbacks[kind, defect] = self._callback(index, kind, defect)

    def _callback(self, index: int, kind: str, defect: str | None) -> Callable:
        acked, failed = self.acked, self.failed
        if self._manifest is None:
            def on_delivery(err, msg) -> None:
                if err is None:
                    acked[index] += 1
                else:
                    failed[index] += 1
                    self._note(err)
            return on_delivery

        write, dumps = self._manifest.write, json.dumps
        template = ('{"kind":"%s","key":%%s,"partition":%%d,"offset":%%d,"timestamp":%%d,"payload":%%s%s}\n'
                    % (kind, ',"defect":"%s"' % defect if defect else ""))

        def on_delivery_with_manifest(err, msg) -> None:
            if err is None:
                acked[index] += 1
                write(template % (dumps(msg.key().decode()), msg.partition(), msg.offset(), msg.timestamp()[1],
                                  dumps(msg.value().decode("utf-8", "replace"))))
            else:
                failed[index] += 1
                self._note(err)
        return on_delivery_with_manifest

    def _note(self, err: KafkaError) -> None:
        if self.first_error is None:
            self.first_error = err.str()
            log.warning("delivery failed: %s", self.first_error)


@dataclass(frozen=True, kw_only=True)
class KafkaTarget:
    """Where the messages go and how they are delivered: the CLI's Kafka flags (picklable)."""

    bootstrap_servers: str
    topic: str
    partitions: int = 1                # if the topic is created
    compression: str = "none"
    producer_overrides: dict[str, str] = field(default_factory=dict)   # extra librdkafka settings
    connect_timeout: float = 10.0      # seconds for the broker to answer at the start
    flush_timeout: float = 60.0        # seconds to wait for outstanding deliveries at the end


@dataclass(frozen=True, kw_only=True)
class RunLength:
    """When a run stops by itself; None is unbounded (the run then stops on a signal)."""

    count: int | None = None           # messages
    duration: float | None = None      # seconds


@dataclass(frozen=True, kw_only=True)
class ProducerPlan:
    """Everything one producer process needs (picklable: it crosses into child processes)."""

    settings: StreamSettings           # what to produce and how fast (all processes together); resolved seed
    kafka: KafkaTarget                 # where to
    length: RunLength = RunLength()    # this process's share of the run
    process_index: int = 0             # this process's slice of the users, of `processes`
    processes: int = 1
    manifest_path: str | None = None
    verbose: bool = False              # show librdkafka's own log


@dataclass
class ProducerTotals:
    sent: int = 0
    acked: list[int] = field(default_factory=lambda: [0] * len(KINDS))
    failed: list[int] = field(default_factory=lambda: [0] * len(KINDS))
    in_flight: int = 0
    elapsed: float = 0.0
    first_error: str | None = None


class Stop:
    """Set by a signal handler; the send loop checks it every tick. A second signal stops waiting for the flush."""

    def __init__(self) -> None:
        self.requested = False

    def set(self, *_: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def run_producer(plan: ProducerPlan, stop: Stop, *, on_tick: Callable[[ProducerTotals], None] | None = None,
                 tick_every: float = 0.5, on_ready: Callable[[], None] | None = None) -> ProducerTotals:
    """Send the plan's messages at its rate until count, duration or stop; flush; return the totals.

    `on_ready` runs once the model and the producer are built, just before the clock starts (parallel producers
    use it to start together); `on_tick` gets the running totals every `tick_every` seconds.
    """
    settings = plan.settings
    stream = MessageStream(settings, plan.process_index, plan.processes)
    pacer = Pacer(Schedule(settings.rate / plan.processes, settings.bursts), plan.length)
    manifest = open(plan.manifest_path, "w", buffering=1 << 20) if plan.manifest_path else None
    sender = Sender(stream, plan.kafka, DeliveryLedger(manifest))
    if on_ready is not None:
        on_ready()
    sender.start()
    try:
        _send_as_due(sender, pacer, stop, on_tick, tick_every)
    except KeyboardInterrupt:  # a second signal while sending: go straight to the flush
        pass
    finally:
        sender.flush(plan.kafka.flush_timeout)
        if manifest is not None:
            manifest.close()
    return sender.totals


class Pacer:
    """How many messages are due at a moment of the run: the schedule, less what was sent and what was given up.

    A machine too slow for the rate falls behind; beyond MAX_BACKLOG_S of debt the rest is given up on (`skipped`)
    instead of racing to catch up.
    """

    def __init__(self, schedule: Schedule, length: RunLength) -> None:
        self.schedule = schedule
        rate = schedule.rate
        self.limit = length.count if length.count is not None else math.inf
        self.duration = length.duration if length.duration is not None else math.inf
        self.max_backlog = max(1.0, rate * MAX_BACKLOG_S) if math.isfinite(rate) else math.inf
        max_batch = MAX_BATCH if not math.isfinite(rate) else int(min(MAX_BATCH, max(1.0, rate * 0.02)))
        self.max_batch = max(max_batch, 1)
        self.skipped = 0.0   # events of the schedule given up on because the machine could not keep up

    def backlog(self, elapsed: float, sent: int) -> float | None:
        """Messages due `elapsed` seconds into the run and not sent yet; None once the run is over."""
        schedule = self.schedule
        if sent >= self.limit:
            return None
        if elapsed >= self.duration:
            elapsed = self.duration  # send what was due by the end (a finite rate gives exactly rate x duration)
            if math.isinf(schedule.rate) or schedule.due(self.duration) + 1e-6 - self.skipped - sent < 1:
                return None
        backlog = schedule.due(elapsed) + 1e-6 - self.skipped - sent  # 1e-6: 1000/3 * 3 s must give 1000
        if backlog > self.max_backlog:
            self.skipped += backlog - self.max_backlog
            backlog = self.max_backlog
        return backlog

    def batch(self, backlog: float, sent: int) -> int:
        """How many of the due messages go out in one batch."""
        return int(min(backlog, self.max_batch, self.limit - sent))


def _send_as_due(sender: Sender, pacer: Pacer, stop: Stop, on_tick: Callable[[ProducerTotals], None] | None,
                 tick_every: float) -> None:
    """The send loop: each turn sends what is due in one batch, or serves delivery reports for a tick."""
    next_tick = sender.started + tick_every
    while not stop.requested:
        now = time.monotonic()
        backlog = pacer.backlog(now - sender.started, sender.sent)
        if backlog is None:
            break
        if backlog < 1:
            sender.producer.poll(TICK_S)  # nothing due yet: serve delivery reports (batches, not a sleep per event)
        else:
            sender.send(pacer.batch(backlog, sender.sent), stop)
        if on_tick is not None and now >= next_tick:
            next_tick = now + tick_every
            on_tick(sender.running_totals())


class Sender:
    """One process's producer, its delivery ledger and the messages it sends; counts what it handed to librdkafka."""

    def __init__(self, stream: MessageStream, kafka: KafkaTarget, ledger: DeliveryLedger) -> None:
        self.stream = stream
        self.ledger = ledger
        self.topic = kafka.topic
        self.producer = _kafka_producer(kafka)
        self.totals = ProducerTotals()
        self.sent = 0
        self.started = 0.0  # monotonic seconds, set by start()

    def start(self) -> None:
        """Start the run's clock (once the model and the producer are built)."""
        self.started = time.monotonic()

    def send(self, n: int, stop: Stop) -> None:
        """Hand the next n messages to librdkafka, waiting for room in its queue when it is full."""
        produce, topic = self.producer.produce, self.topic
        callbacks = self.ledger.callbacks
        valid_callback = callbacks["valid", None]
        for i, (kind, key, payload, defect) in enumerate(self.stream.take(n, time.time())):
            callback = valid_callback if kind == "valid" else callbacks[kind, defect]
            try:
                produce(topic, payload, key, -1, callback)
            except BufferError:  # local queue full: let librdkafka drain it, then retry
                if not _produce_when_room(self.producer, topic=topic, payload=payload, key=key, callback=callback,
                                          stop=stop):
                    n = i  # stopped while the broker is not taking messages: the rest is not sent
                    break
        self.sent += n
        self.producer.poll(0)

    def running_totals(self) -> ProducerTotals:
        """The totals so far, for progress reports (the same object each time, updated in place)."""
        totals, ledger = self.totals, self.ledger
        totals.sent, totals.acked, totals.failed = self.sent, ledger.acked, ledger.failed
        totals.in_flight, totals.elapsed = len(self.producer), time.monotonic() - self.started
        return totals

    def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for outstanding deliveries, then settle the totals."""
        try:
            remaining = self.producer.flush(timeout)
        except KeyboardInterrupt:  # a second Ctrl-C/SIGTERM: stop waiting for deliveries
            remaining = len(self.producer)
        totals, ledger = self.totals, self.ledger
        totals.elapsed = time.monotonic() - self.started
        # After the flush every message librdkafka accepted is acked, failed or still queued (exact even after an
        # interrupt).
        totals.sent = sum(ledger.acked) + sum(ledger.failed) + remaining
        totals.acked, totals.failed = ledger.acked, ledger.failed
        totals.in_flight, totals.first_error = remaining, ledger.first_error


def _kafka_producer(kafka: KafkaTarget) -> Producer:
    """The tuned producer. Its log goes to the "generator.librdkafka" logger; its errors (a broker down, which
    librdkafka keeps retrying) to a warning at most every 10 seconds."""
    last_error_log = [0.0]

    def on_error(err: KafkaError) -> None:
        now = time.monotonic()
        if now - last_error_log[0] > 10:
            last_error_log[0] = now
            log.warning("kafka: %s", err.str())

    config = producer_config(kafka.bootstrap_servers, kafka.compression, kafka.producer_overrides)
    config.update({"logger": logging.getLogger("generator.librdkafka"), "error_cb": on_error})
    return Producer(config)


def _produce_when_room(producer: Producer, *, topic: str, payload: str, key: str, callback: Callable,
                       stop: Stop) -> bool:
    """Retry until librdkafka's queue has room; False if a stop is requested meanwhile (the message is dropped)."""
    while not stop.requested:
        producer.poll(0.05)
        try:
            producer.produce(topic, payload, key, -1, callback)
            return True
        except BufferError:
            continue
    return False


def concatenate(parts: list[str], target: str) -> None:
    """Join per-process manifests into one file (in process order) and remove the parts."""
    with open(target, "wb") as out:
        for part in parts:
            if os.path.exists(part):
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                os.remove(part)
