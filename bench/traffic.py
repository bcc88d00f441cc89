"""Traffic as other producers send it, for the benchmarks: raw bytes produced with confluent-kafka (as `kcat -P`
would), not the project's generator.

    .venv/bin/python -m bench.traffic --bootstrap-servers H:P --topic T --rate 10000 --seconds 60 [--mixed]

(at a steady rate, for the live benchmark; `produce` below fills a backlog as fast as the broker takes it).
Ordinary events of Zipf-popular users and items, among them malformed records of every dead-letter reason the
contract names, late events and redeliveries, in the proportions asked for.

    from bench.traffic import Mix, produce
    produce(bootstrap, topic, 1_000_000, Mix(users=2000, items=500, malformed=0.03, late=0.01, duplicates=0.02))

Event times are the moment each payload is built (the broker stamps it a moment later): a backlog produced in a few
seconds is on time, as a live stream is. A late event is stamped an hour back; a redelivery is the same bytes sent
again at once (same key, so the same partition).
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from contract.events import MAX_ID_LENGTH, MAX_NESTING, MAX_PAYLOAD_BYTES, MAX_PRICE, MAX_QUANTITY
from generator.catalog import ZipfSampler

TYPES = ("view", "view", "view", "click", "scroll", "add_to_cart", "purchase", "login", "logout")
PLATFORMS = ("web", "ios", "android")
OVERSIZED_AT_MOST = 3  # each ~1 MB: enough to cross the bound, not enough to make the backlog about them
# Not produced: "broker timestamp out of range" (the pipeline's topics carry the broker's clock, which no producer
# sets); tests/e2e/test_hostile_traffic.py sends it on a topic with the producers' clock.


@dataclass(frozen=True)
class Mix:
    users: int = 10_000
    items: int = 2_000
    zipf: float = 1.1
    malformed: float = 0.0   # fraction of records, spread evenly over every dead-letter reason
    late: float = 0.0        # fraction of records stamped an hour before they are sent
    duplicates: float = 0.0  # fraction of events sent twice
    seed: int = 1


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _malformed_kinds() -> list[Callable[[dict[str, Any]], bytes | None]]:
    """One way per dead-letter reason of the contract (contract/validation.py) to break an ordinary event."""
    def changed(**fields: Any) -> Callable[[dict[str, Any]], bytes]:
        return lambda event: json.dumps({**event, **fields}).encode()

    def without(name: str) -> Callable[[dict[str, Any]], bytes]:
        return lambda event: json.dumps({k: v for k, v in event.items() if k != name}).encode()

    return [
        lambda event: json.dumps(event).encode()[:40],                      # not JSON (cut short)
        lambda event: None,                                                  # a tombstone
        lambda event: json.dumps(event).encode()[:-1] + b', "score": NaN}',  # NaN is not JSON
        lambda event: b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1),   # nested past the bound
        without("user_id"), changed(event_time=None),                       # missing required field
        changed(platform=True), changed(quantity=1.5),                       # wrong type
        changed(event_id=" "), changed(user_id="\u00a0"),                    # empty ids
        changed(user_id="u" * (MAX_ID_LENGTH + 1)),                          # an id past the bound
        changed(interaction_type="hover"), changed(platform="fax"),          # unknown enumerations
        changed(interaction_type="view", item_id=None),                      # an item interaction without an item
        changed(event_time="yesterday"),                                     # unparseable time
        changed(event_time="1969-07-20T20:17:40Z"),                          # a time before the contract's range
        lambda event: json.dumps({**event, "event_time": iso(time.time() + 86_400)}).encode(),  # future
        changed(price=-1.0), changed(price=MAX_PRICE * 10),                  # price
        changed(quantity=0), changed(quantity=MAX_QUANTITY + 1),             # quantity
    ]


def records(count: int, mix: Mix) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(value, key) pairs: `count` records in all, redeliveries included."""
    rng = random.Random(mix.seed)
    user_of = ZipfSampler(mix.users, mix.zipf).bind(rng.random)
    item_of = ZipfSampler(mix.items, mix.zipf).bind(rng.random)
    kinds = _malformed_kinds()
    oversized = 0
    sent = 0
    n = 0
    while sent < count:
        n += 1
        kind = TYPES[rng.randrange(len(TYPES))]
        user = f"user-{user_of():07d}"
        when = time.time() - (3600.0 if rng.random() < mix.late else rng.random())
        event: dict[str, Any] = {
            "event_id": f"{mix.seed}-{n}", "user_id": user,
            "item_id": None if kind in ("login", "logout") else f"item-{item_of():06d}",
            "interaction_type": kind, "platform": PLATFORMS[rng.randrange(3)], "session_id": f"s-{n // 9}",
            "event_time": iso(when), "price": None, "quantity": None, "country": "DE"}
        if kind in ("add_to_cart", "purchase"):
            event["price"], event["quantity"] = round(rng.uniform(1, 200), 2), rng.randrange(1, 4)
        key = user.encode()
        u = rng.random()
        if u < mix.malformed:
            breaker = kinds[n % len(kinds)]
            if oversized < OVERSIZED_AT_MOST and sent >= (oversized + 1) * count // (OVERSIZED_AT_MOST + 1):
                oversized += 1
                yield json.dumps({**event, "pad": " " * MAX_PAYLOAD_BYTES}).encode(), None
            else:
                yield breaker(event), None
            sent += 1
            continue
        value = json.dumps(event).encode()
        yield value, key
        sent += 1
        if sent < count and u < mix.malformed + mix.duplicates:
            yield value, key
            sent += 1


def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    """The topic on the broker's clock, as the pipeline's topics are (contract/topics.py)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from contract.topics import TOPIC_CONFIG

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                  config=TOPIC_CONFIG)])[topic].result(timeout=60)


class Sender:
    """A confluent-kafka producer that waits for room rather than failing, and fails loudly at the end."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.failures: list[str] = []
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                                  "queue.buffering.max.messages": 1_000_000,
                                  "message.max.bytes": 2 * MAX_PAYLOAD_BYTES, "compression.type": "lz4"})

    def send(self, value: bytes | None, key: bytes | None) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def close(self) -> None:
        if self.producer.flush(120) or self.failures:
            raise RuntimeError(f"producing to {self.topic} failed: {self.failures[:3]}")

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failures.append(str(error))


def produce(bootstrap: str, topic: str, count: int, mix: Mix, partitions: int = 4) -> float:
    """Create the topic and send `count` records as fast as the broker takes them: records/s."""
    create_topic(bootstrap, topic, partitions)
    sender = Sender(bootstrap, topic)
    started = time.monotonic()
    for value, key in records(count, mix):
        sender.send(value, key)
    sender.close()
    return count / (time.monotonic() - started)


def produce_at(bootstrap: str, topic: str, rate: float, seconds: float, mix: Mix) -> int:
    """Send `rate` records a second for `seconds` (paced every 10 ms, so a second's records are spread over it):
    how many were sent. The topic must exist."""
    sender = Sender(bootstrap, topic)
    started = time.monotonic()
    sent = 0
    stream = records(int(rate * seconds) + 1, mix)
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed)
        for value, key in itertools.islice(stream, max(0, due - sent)):
            sender.send(value, key)
            sent += 1
        time.sleep(0.01)
    sender.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.traffic", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="records per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--mixed", action="store_true",
                        help="3 %% malformed (every dead-letter reason), 1 %% late, 2 %% redelivered")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    mix = Mix(users=args.users, items=args.items, seed=args.seed,
              **({"malformed": 0.03, "late": 0.01, "duplicates": 0.02} if args.mixed else {}))
    sent = produce_at(args.bootstrap_servers, args.topic, args.rate, args.seconds, mix)
    print(f"traffic: {sent} records to {args.topic} in {args.seconds:g} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
