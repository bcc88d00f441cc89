"""The batching Python consumer that stands beside the Spark job in the benchmarks (bench.peer_consumer).

Its user, item and minute documents are compared, field by field, with the independent recomputation
(ops.verify) from the records read back from the topic, after a clean run, after a restart and after a
SIGKILL in the middle of a batch.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench import peer_consumer
from conf import load_config
from conf.loader import parse_duration_seconds
from contract.validation import invalid_reason
from ops.verify import Expected, read_topic, recompute_for

from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

UTC = dt.UTC
TYPES = ("login", "logout", "view", "click", "scroll", "add_to_cart", "purchase")
# the fields the peer writes; distinct counts, view_to_purchase_rate, hourly counts, top lists and totals it does not
PEER_FIELDS = {
    "user_stats": ("user_id", "interactions", *TYPES, "revenue", "first_event_time", "last_event_time",
                   "last_platform"),
    "item_stats": ("item_id", "interactions", *TYPES, "revenue"),
    "minute_counts": ("window_start", "window_end", "interaction_type", "platform", "events", "revenue"),
}
FAULTS = ("--duplicate-ratio", "0.02", "--late-ratio", "0.01", "--malformed-ratio", "0.01")


def settings() -> tuple[float, float]:
    job = load_config(env={}).job
    return parse_duration_seconds(job.watermark_delay), parse_duration_seconds(job.max_future_skew)


def generate(kafka_broker, topic: str, count: int, seed: int, *flags: str) -> None:
    subprocess.run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
                    "--topic", topic, "--rate", "max", "--count", str(count), "--seed", str(seed),
                    "--progress-interval", "60", *flags], check=True, timeout=300, capture_output=True, cwd=ROOT)


def run_peer(kafka_broker, topic: str, mongo_server, database: str, **options) -> peer_consumer.PeerResult:
    lateness, skew = settings()
    return peer_consumer.run(kafka_broker.bootstrap_servers, topic, mongo_server.uri, database,
                             lateness_s=lateness, max_future_skew_s=skew, **options)


def peer_command(kafka_broker, topic: str, mongo_server, database: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "bench.peer_consumer", "--bootstrap-servers",
            kafka_broker.bootstrap_servers, "--topic", topic, "--mongo-uri", mongo_server.uri, "--database",
            database, *flags]


def differences(expected: Expected, db) -> list[str]:
    """Every way the peer's collections differ from the recomputation, for the fields the peer writes."""
    problems = []
    for name, fields in PEER_FIELDS.items():
        wanted = expected.collections[name]
        actual = {d["_id"]: d for d in db[name].find()}
        for doc_id in actual.keys() - wanted.keys():
            problems.append(f"{name} {doc_id!r}: not expected")
        for doc_id, want in wanted.items():
            got = actual.get(doc_id)
            if got is None:
                problems.append(f"{name} {doc_id!r}: missing")
                continue
            for key in fields:
                if not same(want[key], got.get(key)):
                    problems.append(f"{name} {doc_id!r}: {key} expected {want[key]!r}, found {got.get(key)!r}")
    for name, wanted_raw in (("dead_letters", expected.dead_letters), ("late_events", expected.late)):
        found = Counter(d["raw"] for d in db[name].find({}, {"raw": 1}))
        if found != wanted_raw:
            problems.append(f"{name}: {sum(found.values())} set aside, {sum(wanted_raw.values())} expected")
    letters = {(d["topic"], d["partition"], d["offset"]): d["reason"] for d in db.dead_letters.find()}
    if letters != {(topic, p, o): reason for (topic, p, o), reason in expected.rejected.items()}:
        problems.append("dead_letters: coordinates or reasons differ from the recomputation's")
    late = {(d["topic"], d["partition"], d["offset"]) for d in db.late_events.find()}
    if late != expected.late_at:
        problems.append("late_events: coordinates differ from the recomputation's")
    return problems


def same(want, got) -> bool:
    if isinstance(want, dt.datetime):
        if not isinstance(got, dt.datetime):
            return False
        got = got if got.tzinfo else got.replace(tzinfo=UTC)
        return abs((got - want).total_seconds()) < 0.0005  # BSON dates hold milliseconds
    if isinstance(want, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)
    return type(got) is type(want) and got == want


def assert_equals_recomputation(kafka_broker, topic: str, db) -> Expected:
    expected = recompute_for(load_config(env={}), read_topic(kafka_broker.bootstrap_servers, topic))
    problems = differences(expected, db)
    assert not problems, f"{len(problems)} differences from the recomputation:\n" + "\n".join(problems[:15])
    return expected


# ---- without services ----------------------------------------------------------------------------------------------

RECEIVED_MS = 1_764_305_401_123
TRICKY = [
    None, b"", b"{", b"[]", b"null", b'"text"', b"\xef\xbb\xbf{}", b"\xff\xfe{}",
    b'{"event_id":"e","user_id":"u","interaction_type":"login","platform":"web","session_id":"s",'
    b'"event_time":"2025-11-28T04:50:01.123Z"}',
]
BASE = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "interaction_type": "purchase", "platform": "ios",
        "session_id": "s1", "event_time": "2025-11-28T04:50:01.123Z", "price": 9.5, "quantity": 2, "country": "DE"}
VARIANTS = [
    {}, {"price": float("nan")}, {"price": None, "quantity": None}, {"price": 3}, {"price": -0.0}, {"price": -1},
    {"price": True}, {"price": "1"}, {"price": 10 ** 400}, {"price": 2 ** 64}, {"quantity": 2 ** 70},
    {"quantity": -(2 ** 70)}, {"quantity": 2 ** 63}, {"quantity": 2 ** 63 - 1}, {"quantity": 2 ** 64 - 1},
    {"quantity": 1.0}, {"user_id": "\u2003"},
    {"quantity": 0}, {"quantity": False}, {"item_id": None}, {"item_id": 7}, {"interaction_type": "login",
                                                                               "item_id": None},
    {"interaction_type": "hover"}, {"interaction_type": ""}, {"platform": "Web"}, {"platform": True},
    {"event_id": " "}, {"user_id": "\t"}, {"user_id": "\ud800"}, {"session_id": None}, {"country": 1},
    {"event_time": "2025-11-28T04:50:01Z"}, {"event_time": "2025-11-28T04:50:01.123456789+01:00"},
    {"event_time": "2025-11-28 04:50:01.123Z"}, {"event_time": "2025-11-28T04:50:01.123Z\n"},
    {"event_time": "2025-11-28T04:50:01.12٣Z"}, {"event_time": "2025-02-30T04:50:01.123Z"},
    {"event_time": "2025-11-28T05:00:01.123Z"}, {"event_time": "2025-11-28T05:00:01.124Z"},
    {"event_time": "2025-11-28T05:00:01.123+00:00"}, {"event_time": 1764305401123}, {"extra": [1, {"a": None}]},
]


def payloads() -> list[bytes | None]:
    out = list(TRICKY)
    for variant in VARIANTS:
        out.append(json.dumps({**BASE, **variant}).encode("utf-8", "surrogatepass"))
    out.append(json.dumps({k: v for k, v in BASE.items() if k != "session_id"}).encode())
    out.append(b'{"price": 1e400, ' + json.dumps(BASE).encode()[1:])
    out.append(json.dumps(BASE).encode()[:-1] + b', "event_id": "again"}')
    return out


@pytest.mark.parametrize("index", range(len(payloads())))
def test_the_peers_validation_gives_the_oracles_verdict_and_reason(index):
    value = payloads()[index]
    lateness, skew = settings()
    classifier = peer_consumer.Classifier(lateness, skew)
    received = dt.datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)
    raw = value.decode("utf-8", "replace") if value is not None else None
    want = invalid_reason(raw, received, dt.timedelta(seconds=skew))
    event, t_us, reason = classifier.classify(value, RECEIVED_MS)
    assert reason == want
    if classifier.fast_event(value, RECEIVED_MS) is not None:
        assert want is None, "the fast check accepted a record the oracle rejects"
    if want is None:
        oracle_time = json.loads(raw)["event_time"]
        assert t_us == (peer_consumer.parse_event_time(oracle_time) - peer_consumer.EPOCH) // peer_consumer.ONE_US


def test_the_peers_validation_agrees_with_the_oracle_on_the_generators_faults():
    from generator.faults import DEFECTS, corrupt

    rng = random.Random(7)
    classifier = peer_consumer.Classifier(*settings())
    received = dt.datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)
    base_s = RECEIVED_MS / 1000 - 30

    def format_time(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    reasons = Counter()
    for i in range(2000):
        event = {**BASE, "event_id": f"e{i}", "event_time": format_time(base_s - rng.uniform(0, 600))}
        text = corrupt(event, DEFECTS[i % len(DEFECTS)], rng, format_time, base_s) if i % 3 else json.dumps(event)
        _, _, reason = classifier.classify(text.encode(), RECEIVED_MS)
        assert reason == invalid_reason(text, received, dt.timedelta(seconds=settings()[1])), text
        reasons[reason] += 1
    assert reasons[None] > 600 and len(reasons) >= 6


def test_the_latest_key_sorts_like_event_time_then_event_id():
    times = [0, 1, 999_999, 1_000_000, 1_764_305_401_123_000, 1_764_305_401_123_001, 253_402_300_799_000_000]
    ids = ["", "a", "b", "aa", "é", "z9"]
    pairs = [(t, i) for t in times for i in ids]
    by_key = sorted(pairs, key=lambda p: peer_consumer.latest_key(*p))
    assert by_key == sorted(pairs, key=lambda p: (peer_consumer.to_datetime(p[0]), p[1]))


# ---- against real services -----------------------------------------------------------------------------------------

@pytest.mark.integration
def test_the_peers_documents_equal_a_recomputation_from_the_produced_events(
        kafka_broker, kafka_topic, mongo_server, mongo_db):
    generate(kafka_broker, kafka_topic, 3000, 51, "--users", "300", "--items", "80", *FAULTS)
    result = run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=1000)

    expected = assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)
    totals = expected.collections["totals"]["all"]
    assert result.records == 3000 and result.batches >= 3
    assert (result.events, result.duplicates, result.late, result.dead_letters) == (
        totals["events"], expected.duplicates, expected.late_events, sum(expected.dead_letters.values()))
    assert expected.duplicates > 20 and expected.late_events > 10 and totals["dead_letters"] > 10
    letter = mongo_db.dead_letters.find_one()
    assert letter["_id"] == f"{kafka_topic}:{letter['partition']}:{letter['offset']}" and letter["reason"]


@pytest.mark.integration
def test_a_restart_resumes_after_the_last_batch_and_still_drops_duplicates_of_earlier_events(
        kafka_broker, kafka_topic, mongo_server, mongo_db):
    generate(kafka_broker, kafka_topic, 1500, 61, "--users", "200", "--items", "60", *FAULTS)
    first = run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=700)
    again = run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=700)
    # the second run re-applies the last recorded batch: every document already has it, nothing changes
    assert again.replayed_batch == first.batches and again.batches == 1
    assert again.already_applied == again.documents + again.dead_letters + again.late > 0
    assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)

    # a new generator run resends events of its own past, so duplicates now span both runs of the peer
    generate(kafka_broker, kafka_topic, 1500, 62, "--users", "200", "--items", "60", *FAULTS)
    run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=700)
    expected = assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)
    assert expected.collections["totals"]["all"]["events"] > 2700


@pytest.mark.integration
def test_killed_in_the_middle_of_a_batch_and_restarted_counts_every_event_exactly_once(
        kafka_broker, kafka_topic, mongo_server, mongo_db):
    generate(kafka_broker, kafka_topic, 4000, 71, "--users", "400", "--items", "100", *FAULTS)
    # small bulks: the third batch's ~80 user documents take several bulks, and the kill lands after the second
    killed = subprocess.run(peer_command(kafka_broker, kafka_topic, mongo_server, mongo_db.name, "--batch-size",
                                         "800", "--bulk-size", "20", "--kill-at", "3:2"),
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert mongo_db.peer_progress.find_one({"_id": "peer"})["batch"] == 3
    assert mongo_db.user_stats.count_documents({"applied_batch": 3}) == 2 * 20
    assert mongo_db.item_stats.count_documents({"applied_batch": 3}) == 0

    result = run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=800)
    assert result.replayed_batch == 3 and result.already_applied == 2 * 20
    assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)


@pytest.mark.integration
def test_sigkill_at_any_moment_then_a_restart_gives_the_same_documents(
        kafka_broker, kafka_topic, mongo_server, mongo_db):
    generate(kafka_broker, kafka_topic, 4000, 81, "--users", "400", "--items", "100", *FAULTS)
    peer = subprocess.Popen(peer_command(kafka_broker, kafka_topic, mongo_server, mongo_db.name, "--batch-size",
                                         "300", "--bulk-size", "100"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_until(lambda: (mongo_db.peer_progress.find_one({"_id": "peer"}) or {}).get("batch", 0) >= 3,
                   timeout=120, message="the peer never reached its third batch")
        assert peer.poll() is None, "the peer finished before it could be killed"
        peer.send_signal(signal.SIGKILL)
    finally:
        peer.kill()
        peer.wait(timeout=30)

    run_peer(kafka_broker, kafka_topic, mongo_server, mongo_db.name, batch_size=300)
    assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)


@pytest.mark.integration
def test_a_database_written_by_something_else_is_refused(kafka_broker, kafka_topic, mongo_server, mongo_db):
    mongo_db.user_stats.insert_one({"_id": "u1", "interactions": 3})
    done = subprocess.run(peer_command(kafka_broker, kafka_topic, mongo_server, mongo_db.name),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"peer_consumer: database {mongo_db.name} already holds user_stats not written by the peer")


@pytest.mark.integration
def test_following_the_topic_counts_events_as_they_arrive_until_stopped(
        kafka_broker, kafka_topic, mongo_server, mongo_db):
    import threading

    stop = threading.Event()
    results = []
    follower = threading.Thread(target=lambda: results.append(run_peer(
        kafka_broker, kafka_topic, mongo_server, mongo_db.name, until_end=False, stop=stop, max_batch_wait_s=0.5)))
    follower.start()
    try:
        generate(kafka_broker, kafka_topic, 1000, 91, "--users", "100", "--items", "40")
        wait_until(lambda: sum(d["interactions"] for d in mongo_db.user_stats.find({}, {"interactions": 1})) == 1000,
                   timeout=60, message="the following peer did not count the 1000 events")
    finally:
        stop.set()
        follower.join(timeout=60)
    assert results and results[0].events == 1000
    assert_equals_recomputation(kafka_broker, kafka_topic, mongo_db)
