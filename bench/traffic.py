"""Traffic as other producers send it, for the benchmarks: raw bytes produced with confluent-kafka (as `kcat -P`
would), not the project's generator. Ordinary events of Zipf-popular users and items, among them malformed records of
every dead-letter reason the contract names, late events and redeliveries, in the proportions asked for.

    from bench.traffic import Mix, produce
    produce(bootstrap, topic, 1_000_000, Mix(users=2000, items=500, malformed=0.03, late=0.01, duplicates=0.02))

Event times are the moment each payload is built (the broker stamps it a moment later): a backlog produced in a few
seconds is on time, as a live stream is. A late event is stamped an hour back; a redelivery is the same bytes sent
again at once (same key, so the same partition).
"""
from __future__ import annotations

import datetime as dt
import json
import random
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


def produce(bootstrap: str, topic: str, count: int, mix: Mix, partitions: int = 4) -> float:
    """Create the topic (the broker's clock, as the pipeline's topics are) and send `count` records: records/s."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from contract.topics import TOPIC_CONFIG

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                  config=TOPIC_CONFIG)])[topic].result(timeout=60)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 1_000_000, "message.max.bytes": 2 * MAX_PAYLOAD_BYTES,
                         "compression.type": "lz4"})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    started = time.monotonic()
    for value, key in records(count, mix):
        while True:
            try:
                producer.produce(topic, value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) or failures:
        raise RuntimeError(f"producing to {topic} failed: {failures[:3]}")
    return count / (time.monotonic() - started)
