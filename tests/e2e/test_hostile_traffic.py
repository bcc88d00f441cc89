"""A backlog from an outside producer (raw bytes, as `kcat -P` sends them: not the project's generator) in which
ordinary traffic carries every kind of record that once stopped the job or poisoned a total: JSON nested 100k levels
deep, a purchase whose revenue overflows a double, times past the ends of years 1-9999 (in the payload and in the
broker's timestamp, which a producer sets on a topic with the producers' clock), ids of 100k characters, a payload
past the size bound, a record stamped a century ahead, and the older kinds of malformed record. `spark-submit` runs to
the end; each hostile record is a dead letter with its reason, every document equals the independent recomputation
and every date in MongoDB is one pymongo decodes; a second run on the same checkpoint, replaying its last batch,
changes nothing."""
from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from conf import load_config
from ops.verify import compare, read_topic, recompute_for

from user_commands import spark_submit

pytestmark = pytest.mark.e2e
UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ordinary(n: int, when: dt.datetime, rng: random.Random) -> dict:
    kind = rng.choice(["view", "view", "click", "scroll", "add_to_cart", "purchase", "login"])
    return {"event_id": f"ev-{n}", "user_id": f"user-{rng.randrange(150)}",
            "item_id": None if kind == "login" else f"item-{rng.randrange(60)}", "interaction_type": kind,
            "platform": rng.choice(["web", "ios", "android"]), "session_id": f"s-{n // 7}", "event_time": iso(when),
            "price": round(rng.uniform(1, 90), 2) if kind in ("add_to_cart", "purchase") else None,
            "quantity": rng.randrange(1, 4) if kind in ("add_to_cart", "purchase") else None, "country": "DE"}


def millis(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


# hostile payload -> the reason the contract gives it (None: a valid event), each worked out from contract.events
def hostile(now: dt.datetime) -> list[tuple[bytes | None, int | None, str | None]]:
    base = ordinary(10**6, now, random.Random(1))
    base.update(interaction_type="purchase", item_id="item-1", price=5.0, quantity=1)

    def variant(n: int, **changes) -> bytes:
        return json.dumps({**base, "event_id": f"hostile-{n}", **changes}).encode()

    huge = json.dumps({**base, "event_id": "hostile-big", "pad": " " * 1_000_000}).encode()
    century = now.replace(year=now.year + 100)
    return [
        (b"[" * 100_000 + b"]" * 100_000, None, "JSON nested deeper than 64 levels"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, None, "JSON nested deeper than 64 levels"),
        (variant(1, price=1e300, quantity=10_000_000_000), None, "price above 1000000000"),
        (variant(2, quantity=10_000_000_000), None, "quantity above 1000000"),
        (variant(3, event_time="0001-01-01T00:30:00+01:00"), None, "event_time out of range"),
        (variant(4, event_time="9999-12-31T23:30:00-01:00"), None, "event_time out of range"),
        (variant(5, user_id="u" * 100_000), None, "user_id longer than 128 characters"),
        (variant(6, session_id="s" * 129), None, "session_id longer than 128 characters"),
        (huge, None, "payload larger than 1000000 bytes"),
        (variant(7), millis(dt.datetime(9999, 12, 31, 12, tzinfo=UTC)), "broker timestamp out of range"),
        (variant(8), 253_402_300_800_000 * 3, "broker timestamp out of range"),  # a producer's clock, year ~28000
        (variant(9, event_time=iso(century)), millis(century), None),  # a century ahead: counted, moves nothing
        (variant(10, event_time="1970-01-01T00:00:00Z"), None, None),  # valid, and late
        (variant(22, event_time="0001-01-01T00:00:00Z"), None, "event_time out of range"),
        (variant(11, user_id="bot\r\nBcc: x@example.com", item_id="\x00\x07"), None, None),
        # the older kinds
        (b"not json", None, "not a JSON object"), (None, None, "not a JSON object"),
        (b'{"price": NaN}', None, "not a JSON object"), (b"\xff\xfe{}", None, "not a JSON object"),
        (json.dumps({k: v for k, v in base.items() if k != "user_id"}).encode(), None,
         "missing required field user_id"),
        (variant(12, platform=True), None, "wrong type for field platform"),
        (variant(13, event_id=" \u00a0"), None, "empty event_id"),
        (variant(14, interaction_type="hover"), None, "unknown interaction_type hover"),
        (variant(15, platform="fax" * 40), None, "unknown platform " + ("fax" * 40)[:64] + "\u2026"),
        (variant(16, item_id=None), None, "missing item_id for an item interaction"),
        (variant(17, event_time="yesterday"), None, "unparseable event_time yesterday"),
        (variant(18, event_time=iso(now + dt.timedelta(days=2))), None, "event_time too far in the future"),
        (variant(19, price=-1.0), None, "negative price"),
        (variant(20, quantity=0), None, "quantity below 1"),
        (variant(21, event_id="\ud800"), None, "not a JSON object"),  # an escaped lone surrogate is not text
    ]


def produce_backlog(bootstrap: str, topic: str) -> dict[tuple[int, int], str | None]:
    """Ordinary traffic with duplicates and late events, the hostile records among it; returns the hostile records'
    coordinates and reasons."""
    rng = random.Random(7)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 2_000_000, "linger.ms": 5})
    delivered: dict[int, tuple[int, int]] = {}

    def sent(index: int):
        def report(error, message):
            assert error is None, error
            delivered[index] = (message.partition(), message.offset())
        return report

    hostiles = hostile(now)
    every = 25
    index = 0
    for n in range(3000):
        if n % every == 0 and n // every < len(hostiles):
            payload, stamp, _ = hostiles[n // every]
            producer.produce(topic, payload, partition=rng.randrange(4), on_delivery=sent(index),
                             **({"timestamp": stamp} if stamp is not None else {}))
            index += 1
        late = n % 50 == 3
        event = ordinary(n, now - dt.timedelta(hours=1 if late else 0, seconds=rng.randrange(60)), rng)
        value = json.dumps(event).encode()
        for _copy in range(2 if n % 40 == 5 else 1):  # a redelivery, seconds later at most
            producer.produce(topic, value, key=event["user_id"].encode(), on_delivery=lambda e, m: None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(delivered) == len(hostiles)
    return {delivered[i]: reason for i, (_, _, reason) in enumerate(hostiles)}


@pytest.fixture
def permissive_topic(kafka_admin):
    """A topic on the producers' clock that takes any timestamp (Kafka 4 refuses ones more than an hour ahead by
    default; older brokers, and topics configured so, do not)."""
    name = f"test-hostile-{uuid.uuid4().hex[:8]}"
    config = {"message.timestamp.type": "CreateTime", "message.timestamp.after.max.ms": str(2 ** 63 - 1),
              "message.timestamp.before.max.ms": str(2 ** 63 - 1)}
    kafka_admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1, config=config)])[name] \
        .result(timeout=60)
    yield name
    kafka_admin.delete_topics([name])


def replay_last_batch(checkpoint: Path) -> int:
    """Forget that the last batch was committed: the next run replays it (same offsets, the state before it)."""
    commits = checkpoint / "interactions" / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    return last


def snapshot(db) -> dict[str, dict]:
    """Every document of every collection but the per-batch health records (which a run adds by design)."""
    skip = {"batches", "pipeline_metrics", "alerts"}
    return {name: {d["_id"]: d for d in db[name].find()} for name in db.list_collection_names() if name not in skip}


def test_a_backlog_of_hostile_records_runs_to_the_end_with_every_number_right(kafka_broker, permissive_topic,
                                                                             mongo_server, mongo_db, tmp_path):
    kafka_topic = permissive_topic
    hostiles = produce_backlog(kafka_broker.bootstrap_servers, kafka_topic)
    flags = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", kafka_topic,
             "--mongo-uri", mongo_server.uri, "--database", mongo_db.name,
             "--checkpoint-dir", str(tmp_path / "checkpoint"), "--max-offsets-per-trigger", "1500",
             "--alert-rules", "", "--prometheus-port", "0", "--available-now"]
    first = spark_submit(*flags, timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]

    records = read_topic(kafka_broker.bootstrap_servers, kafka_topic)
    expected = recompute_for(load_config(env={}), records)
    report = compare(expected, mongo_db)
    assert report.ok, "MongoDB differs from the recomputation:\n" + "\n".join(report.lines())
    letters = {(d["partition"], d["offset"]): d for d in mongo_db.dead_letters.find()}  # pymongo decodes all
    for coordinates, reason in hostiles.items():
        if reason is not None:
            assert letters[coordinates]["reason"] == reason
        else:
            assert coordinates not in letters
    totals = mongo_db.totals.find_one({"_id": "all"})
    assert 0 < totals["revenue"] < 1e7 and totals["late_events"] > 50 and totals["duplicates"] > 50
    before = snapshot(mongo_db)

    replay_last_batch(tmp_path / "checkpoint")
    again = spark_submit(*flags, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    after = snapshot(mongo_db)
    for name in ("totals",):  # bookkeeping of when it was last written
        for doc in (*before[name].values(), *after[name].values()):
            doc.pop("updated_at", None)
    assert after == before
