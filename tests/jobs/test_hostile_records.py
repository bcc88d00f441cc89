"""Records built to break a parser or a reader, each with the dead-letter reason worked out by hand from the
contract's bounds (contract.events): the job's classification and the reference validator must both name it, and
neither may raise. The property test (test_parsing_properties.py) explores around these; here each is named."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from contract.validation import invalid_reason
from interactions.parsing import DEAD_LETTER, EVENT, TALLY, classify_batches

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
VALID = {"event_id": "e-1", "user_id": "u1", "item_id": "i7", "interaction_type": "purchase", "platform": "ios",
         "session_id": "s1", "event_time": "2026-11-28T11:59:58.250Z", "price": 2.5, "quantity": 3}


def event(**changes) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def job_reason(payload: bytes | None, received_us: int) -> tuple[str, str | None]:
    source = pa.RecordBatch.from_pydict({
        "value": pa.array([payload], pa.binary()), "partition": pa.array([0], pa.int32()),
        "offset": pa.array([0], pa.int64()), "timestamp": pa.array([received_us], pa.timestamp("us", tz="UTC"))})
    run = classify_batches("t", max_future_skew_s=600, allowed_lateness_s=120, archive=False)
    [row] = [r for out in run([source]) for r in out.drop_columns(["kafka_timestamp"]).to_pylist()
             if r["kind"] != TALLY]
    return row["kind"], row["reason"]


def micros(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(microseconds=1)


HOSTILE = [
    # depth: 100k levels of arrays (orjson gives up at 1024, json.loads recursed), objects 3000 deep, and the bound
    ("[" * 100_000 + "]" * 100_000, "JSON nested deeper than 64 levels"),
    ('{"a":' * 3000 + "1" + "}" * 3000, "JSON nested deeper than 64 levels"),
    ("[" * 65 + "]" * 65, "JSON nested deeper than 64 levels"),
    ("[" * 64 + "]" * 64, "not a JSON object"),  # deep enough to parse, and still not an object
    (json.dumps({**VALID, "tags": [[[["x"]]]] * 20}), None),  # brackets, but shallow: an event
    (json.dumps({**VALID, "note": "[" * 1000}), None),  # brackets inside a string do not nest
    # size: the bound counts the bytes as sent (invalid UTF-8 would grow when read with replacement characters)
    (b"\xff" * 1_000_001, "payload larger than 1000000 bytes"),
    (b"\xff" * 1_000_000, "not a JSON object"),
    # ids: at most 128 characters
    (event(user_id="u" * 100_000), "user_id longer than 128 characters"),
    (event(item_id="é" * 129), "item_id longer than 128 characters"),
    (event(session_id="s" * 129, event_id="e" * 129), "event_id longer than 128 characters"),
    (event(user_id="u" * 128), None),
    # money: price * quantity of one event and any sum of them stay finite
    (event(price=1e300, quantity=10_000_000_000), "price above 1000000000"),
    (event(price=1e9, quantity=10_000_000_000), "quantity above 1000000"),
    (event(price=10 ** 9, quantity=1_000_000), None),
    (event(price=1e9 + 0.5), "price above 1000000000"),
    # times: UTC after the offset, from 1970 to the end of 9999 (year 0 is what "0001-01-01T00:30:00+01:00" means)
    (event(event_time="0001-01-01T00:30:00+01:00"), "event_time out of range"),
    (event(event_time="0001-01-01T00:00:00Z"), "event_time out of range"),
    (event(event_time="1969-12-31T23:59:59.999Z"), "event_time out of range"),
    (event(event_time="1970-01-01T00:30:00+01:00"), "event_time out of range"),
    (event(event_time="9999-12-31T23:30:00-01:00"), "event_time out of range"),
    (event(event_time="9999-12-31T00:00:00Z"), "event_time out of range"),
    (event(event_time="0000-06-01T00:00:00Z"), "unparseable event_time 0000-06-01T00:00:00Z"),
    (event(event_time="9999-12-30T23:59:59Z"), "event_time too far in the future"),
    (event(event_time="1970-01-01T00:00:00Z"), None),  # valid, and late
    # a reason quotes at most 64 characters of the value it names
    (event(platform="p" * 100_000), "unknown platform " + "p" * 64 + "\u2026"),
    (event(event_time="x" * 65), "unparseable event_time " + "x" * 64 + "\u2026"),
    # control characters and white space are text like any other
    (event(user_id="u\r\nBcc: victim@example.com", item_id="\x00\x1f"), None),
]


@pytest.mark.parametrize("payload, reason", HOSTILE, ids=[f"{i}" for i in range(len(HOSTILE))])
def test_a_hostile_record_gets_its_reason_from_the_job_and_the_reference(payload, reason):
    raw = payload.encode() if isinstance(payload, str) else payload
    kind, found = job_reason(raw, micros(RECEIVED))
    assert found == reason
    assert invalid_reason(raw, RECEIVED, dt.timedelta(minutes=10)) == reason
    assert (kind == DEAD_LETTER) == (reason is not None)


@pytest.mark.parametrize("received, reason", [
    (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), "broker timestamp out of range"),
    (dt.datetime(9999, 12, 30, 23, 59, tzinfo=dt.UTC), None),
    (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), None),
    (dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC), "broker timestamp out of range"),  # Kafka's -1
    (dt.datetime(1, 1, 1, tzinfo=dt.UTC), "broker timestamp out of range"),
])
def test_a_broker_time_outside_the_contract_is_a_dead_letter(received, reason):
    payload = event(event_time=received.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    assert job_reason(payload, micros(received))[1] == reason
    assert invalid_reason(payload, received, dt.timedelta(minutes=10)) == reason


def test_a_broker_time_no_datetime_holds_is_a_dead_letter():
    far = micros(dt.datetime(9999, 1, 1, tzinfo=dt.UTC)) * 30  # a producer's clock on a CreateTime topic
    assert job_reason(event(), far) == (DEAD_LETTER, "broker timestamp out of range")
    assert invalid_reason(event(), None, dt.timedelta(minutes=10)) == "broker timestamp out of range"


def test_an_event_within_every_bound_is_counted():
    assert job_reason(event(), micros(RECEIVED)) == (EVENT, None)


def test_a_rule_that_raises_sets_that_record_aside_and_the_stream_goes_on(monkeypatch):
    """The last-resort guard: a future bug in a rule dead-letters the record it raised on, named by the error's
    class, and classifies the others as usual (the property test holds that no input reaches it today)."""
    import interactions.parsing as parsing

    real = parsing.event_time_micros
    trouble = "2026-11-28T11:59:59.999Z"

    def broken(text):
        if text == trouble:
            raise ZeroDivisionError("a bug")
        return real(text)

    monkeypatch.setattr(parsing, "event_time_micros", broken)
    source = pa.RecordBatch.from_pydict({
        "value": pa.array([event(event_time=trouble), event(event_id="e-2")], pa.binary()),
        "partition": pa.array([0, 0], pa.int32()), "offset": pa.array([0, 1], pa.int64()),
        "timestamp": pa.array([micros(RECEIVED)] * 2, pa.timestamp("us", tz="UTC"))})
    run = classify_batches("t", max_future_skew_s=600, allowed_lateness_s=120, archive=False)
    rows = [r for out in run([source]) for r in out.to_pylist()]
    assert [(r["kind"], r["reason"]) for r in rows[:2]] == [
        (DEAD_LETTER, parsing.UNEXPECTED + "ZeroDivisionError"), (EVENT, None)]
    assert rows[1]["event_id"] == "e-2" and rows[2]["tally"] == 1
