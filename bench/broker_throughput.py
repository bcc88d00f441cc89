"""How fast confluent-kafka moves the pipeline's events through the local Apache Kafka broker.

Starts its own single-node broker (free ports, temporary directory), produces N JSON events of ~200 bytes with the
default producer and with a tuned one, then reads them back with default consumer settings (poll() per message and
consume() in batches) and with tuned fetch settings. Prints a table and writes the figures as JSON.

    .venv/bin/python -m bench.broker_throughput [--messages 500000] [--repeat 3] [--out .stack/bench/....json]

The broker and the client share the machine's cores, as they do in the pipeline's local runs.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, libversion
from confluent_kafka.admin import AdminClient, NewTopic

from bench.report import write_report
from contract.topics import TOPIC_CONFIG
from stack import KafkaBroker, StackError, free_ports
from stack.kafka import DEFAULT_LIB_DIR
from stack.process import PROJECT_ROOT

log = logging.getLogger("bench.broker_throughput")

PRODUCERS: dict[str, dict[str, Any]] = {
    "default": {},
    # Bigger, fuller batches (fewer requests per message) and a deeper local queue (produce() never blocks).
    "tuned": {"linger.ms": 20, "batch.size": 1_000_000, "batch.num.messages": 100_000,
              "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576},
}
# lz4 shrinks the JSON ~2-3x on the wire and on disk, for CPU on both sides: on 2 shared cores that is the scarce part.
PRODUCERS["tuned+lz4"] = {**PRODUCERS["tuned"], "compression.type": "lz4"}
CONSUMERS: dict[str, dict[str, Any]] = {
    "default": {},
    # Fewer, larger fetches and a deeper local queue, so the Python loop never waits on the network.
    "tuned": {"fetch.min.bytes": 1_048_576, "fetch.wait.max.ms": 100, "fetch.max.bytes": 104_857_600,
              "max.partition.fetch.bytes": 16_777_216, "queued.min.messages": 1_000_000,
              "queued.max.messages.kbytes": 262_144},
}
CONSUME_BATCH = 10_000
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")


@dataclass
class Result:
    phase: str
    client: str
    api: str
    messages: int
    seconds: float
    msgs_per_s: int
    mb_per_s: float
    first_message_s: float | None = None  # consumers: from subscribe to the first message (group join, first fetch)
    runs_msgs_per_s: list[int] | None = None  # every repetition; the row shows the median one


def median_of(runs: list[Result]) -> Result:
    ranked = sorted(runs, key=lambda r: r.msgs_per_s)
    chosen = ranked[len(ranked) // 2]
    chosen.runs_msgs_per_s = [r.msgs_per_s for r in runs]
    return chosen


def events(count: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs shaped like the generator's events, ~200 bytes of JSON each."""
    rng = random.Random(seed)
    base = 1_764_300_000_000
    out = []
    for i in range(count):
        user = f"u{rng.randrange(100_000):06d}"
        event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "user_id": user,
                 "item_id": f"i{rng.randrange(20_000):05d}", "event_type": rng.choice(EVENT_TYPES),
                 "ts": base + i, "session_id": f"s{rng.randrange(1_000_000):07d}",
                 "price": round(rng.uniform(1, 500), 2), "device": rng.choice(("mobile", "desktop", "tablet")),
                 "page": f"/items/{rng.randrange(20_000)}"}
        out.append((user.encode(), json.dumps(event, separators=(",", ":")).encode()))
    return out


def produce(bootstrap: str, topic: str, payload: list[tuple[bytes, bytes]], name: str) -> Result:
    failures = 0

    def on_delivery(err, _msg) -> None:
        nonlocal failures
        if err is not None:
            failures += 1

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **PRODUCERS[name]})
    began = time.perf_counter()
    for i, (key, value) in enumerate(payload):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - began
    if left or failures:
        raise SystemExit(f"bench: {left} messages undelivered, {failures} failed (producer {name})")
    return _result("produce", name, api="produce()", count=len(payload), seconds=seconds, payload=payload)


def consume(bootstrap: str, topic: str, *, expected: int, name: str, api: str,
            payload: list[tuple[bytes, bytes]]) -> Result:
    """Read `expected` messages from the start of `topic` with consumer settings `name` through `api` (poll()
    per message, or consume() in batches); timed from the first message."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{name}-{api}-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", **CONSUMERS[name]})
    subscribed = time.perf_counter()
    consumer.subscribe([topic])
    count = 0
    first: float | None = None
    deadline = subscribed + 600
    try:
        while count < expected:
            if time.perf_counter() > deadline:
                raise SystemExit(f"bench: consumer {name}/{api} read {count} of {expected} messages in 600 s")
            batch = [consumer.poll(1.0)] if api == "poll" else consumer.consume(CONSUME_BATCH, 1.0)
            for message in batch:
                if message is None:
                    continue
                error = message.error()
                if error:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise SystemExit(f"bench: consumer error {error}")
                    continue
                if first is None:
                    first = time.perf_counter()
                count += 1
        assert first is not None  # expected > 0 messages were read
        seconds = time.perf_counter() - first
    finally:
        consumer.close()
    result = _result("consume", name, api="poll()" if api == "poll" else f"consume({CONSUME_BATCH})", count=count,
                     seconds=seconds, payload=payload)
    result.first_message_s = round(first - subscribed, 3)
    return result


def _result(phase: str, client: str, *, api: str, count: int, seconds: float,
            payload: list[tuple[bytes, bytes]]) -> Result:
    size = sum(len(v) for _, v in payload) / len(payload)
    return Result(phase, client, api, count, round(seconds, 3), round(count / seconds),
                  round(count * size / seconds / 1e6, 1))


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1,
                                                config=TOPIC_CONFIG) for n in names]).values():
        future.result(60)
    deadline = time.monotonic() + 60
    for name in names:
        while True:  # until every partition has a leader
            topic = admin.list_topics(topic=name, timeout=10).topics.get(name)
            if topic and topic.error is None and len(topic.partitions) == partitions and all(
                    p.leader >= 0 for p in topic.partitions.values()):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: topic {name} not ready after 60 s")
            time.sleep(0.1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the table shows the median")
    parser.add_argument("--warmup", type=int, default=50_000, help="messages produced first, not measured (JIT)")
    parser.add_argument("--lib-dir", default=str(DEFAULT_LIB_DIR))
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".stack" / "bench" / "broker_throughput.json")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, payload: list[tuple[bytes, bytes]]) -> tuple[list[Result], float]:
    """Start a broker, then every producer variant and every consumer variant, --repeat times each: (the median
    run of each variant, the broker's start-up seconds). Raises StackError when the broker does not start."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as data_dir:
        port, controller_port = free_ports(2)
        broker = KafkaBroker(data_dir, port=port, controller_port=controller_port, lib_dir=args.lib_dir)
        began = time.perf_counter()
        broker.start(timeout=180)
        startup_s = time.perf_counter() - began
        try:
            bootstrap = broker.bootstrap_servers
            topics = {name: f"bench-{name.replace('+', '-')}" for name in PRODUCERS}
            create_topics(bootstrap, [*topics.values(), "bench-warmup"], args.partitions)
            if args.warmup:
                produce(bootstrap, "bench-warmup", payload[:args.warmup], "tuned")
                log.info("warm-up: %d messages produced", args.warmup)
            for name, topic in topics.items():  # repetitions append to the topic; consumers read the first N
                runs = []
                for _ in range(args.repeat):
                    runs.append(produce(bootstrap, topic, payload, name))
                    log.info("produce %-7s %9d msg/s", name, runs[-1].msgs_per_s)
                results.append(median_of(runs))
            source = topics["default"]  # uncompressed: what the consumer reads costs the same for every variant
            for name, api in (("default", "poll"), ("default", "consume"), ("tuned", "poll"), ("tuned", "consume")):
                runs = []
                for _ in range(args.repeat):
                    runs.append(consume(bootstrap, source, expected=len(payload), name=name, api=api,
                                        payload=payload))
                    log.info("consume %-7s %-8s %9d msg/s", name, api, runs[-1].msgs_per_s)
                results.append(median_of(runs))
        finally:
            broker.stop()
    return results, startup_s


def print_table(results: list[Result], *, header: str) -> None:
    print(header)
    print(f"{'phase':<8} {'client':<10} {'api':<16} {'msg/s':>10} {'MB/s':>7} {'seconds':>8} {'1st msg s':>10}  "
          f"runs (msg/s)")
    for r in results:
        first = f"{r.first_message_s:.2f}" if r.first_message_s is not None else ""
        runs = ", ".join(f"{v:,}" for v in r.runs_msgs_per_s or [])
        print(f"{r.phase:<8} {r.client:<10} {r.api:<16} {r.msgs_per_s:>10,} {r.mb_per_s:>7} {r.seconds:>8.2f} "
              f"{first:>10}  {runs}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    payload = events(args.messages)
    avg_bytes = sum(len(v) for _, v in payload) / len(payload)
    log.info("built %d events, %.0f bytes on average", len(payload), avg_bytes)
    try:
        results, startup_s = measure(args, payload)
    except StackError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1

    client = f"confluent-kafka {importlib.metadata.version('confluent-kafka')} (librdkafka {libversion()[0]})"
    version = next((p.name[len("kafka_2.13-"):-4] for p in Path(args.lib_dir).glob("kafka_2.13-*.jar")), "?")
    print_table(results, header=f"\nApache Kafka {version} (1 node, KRaft, {args.partitions} partitions), {client}, "
                                f"{len(payload)} messages of {avg_bytes:.0f} bytes, {os.cpu_count()} cores, broker "
                                f"ready in {startup_s:.1f} s")
    write_report(args.out, kafka_version=version, client=client, messages=len(payload), partitions=args.partitions,
                 avg_value_bytes=round(avg_bytes, 1), repeat=args.repeat,
                 load_average_1m_after=round(os.getloadavg()[0], 2), cpu_count=os.cpu_count(),
                 machine=platform.node(), broker_startup_s=round(startup_s, 2), producer_settings=PRODUCERS,
                 consumer_settings=CONSUMERS, results=[asdict(r) for r in results],
                 measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
