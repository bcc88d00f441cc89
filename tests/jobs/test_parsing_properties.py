"""Property-based: whatever bytes arrive, every record comes out exactly once, the job never crashes, and the job's
classification (interactions.parsing, built for speed) names the same reason and the same lateness as the reference
validator (contract.validation, standard-library Python) on every record: ordinary malformed events, arbitrary bytes,
and adversarial ones (deep nesting, huge payloads and ids, numbers at and past the bounds, times at and past the ends
of the contract's range (1970-9999) and of years 1-9999 with offsets, broker timestamps beyond them, surrogates and
control characters)."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.events import (
    INTERACTION_TYPES,
    MAX_ID_LENGTH,
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    MAX_PRICE,
    MAX_QUANTITY,
    PLATFORMS,
)
from contract.validation import invalid_reason, is_late, payload_text
from interactions.parsing import DEAD_LETTER, LATE, TALLY, UNEXPECTED, classify_batches

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
SKEW, LATENESS = dt.timedelta(minutes=10), dt.timedelta(minutes=2)

white_space = st.sampled_from(["", " ", "\t", "\u00a0", "\u2003", "\n"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(),  # NaN and infinities too
                    st.text(max_size=12), white_space, st.just(10 ** 400), st.just(2 ** 63), st.just(-(2 ** 63)),
                    st.just("\udc80"))
times = st.one_of(
    st.datetimes(min_value=dt.datetime(2026, 11, 28, 11, 0), max_value=dt.datetime(2026, 11, 28, 12, 20))
    .map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}"[:st_digits(t)] + "Z"),
    st.sampled_from(["yesterday", "2026-11-28", "2026-13-01T00:00:00.000Z", "2026-11-28T11:59:00+01:00",
                     "2026-11-28T11:59:00.123456789-00:30", "2026-11-28T24:00:00Z", ""]))


def st_digits(t: dt.datetime) -> int:
    return 1 + t.microsecond % 6


event_like = st.fixed_dictionaries(
    {"event_id": st.one_of(st.text(min_size=1, max_size=8), white_space),
     "user_id": st.one_of(st.sampled_from(["u1", "u2"]), white_space),
     "interaction_type": st.sampled_from([*INTERACTION_TYPES, "hover"]),
     "platform": st.sampled_from([*PLATFORMS, "fax"]), "session_id": st.just("s"), "event_time": times},
    optional={"item_id": st.one_of(st.none(), st.sampled_from(["i1", "i2"])),
              "price": st.one_of(st.none(), st.floats(-5, 100), st.integers(-3, 10 ** 30), st.text(max_size=3)),
              "quantity": st.one_of(st.none(), st.integers(-1, 5), st.floats(0, 3), st.integers(2 ** 62, 2 ** 65)),
              "country": st.one_of(st.none(), st.just("DE"), st.integers(0, 9))})
# an event with one field replaced by an arbitrary scalar (NaN, infinities, huge integers, white space, ...)
mutated = st.tuples(event_like, st.sampled_from(["event_id", "user_id", "item_id", "event_time", "price",
                                                 "quantity", "platform", "country"]), scalars) \
    .map(lambda t: {**t[0], t[1]: t[2]})
VALID = {"event_id": "e", "user_id": "u", "item_id": "i", "interaction_type": "purchase", "platform": "web",
         "session_id": "s", "event_time": "2026-11-28T11:59:30.000Z", "price": 2.0, "quantity": 3}
# values at and just past each bound, and far past it
edge_strings = st.one_of(st.integers(MAX_ID_LENGTH - 1, MAX_ID_LENGTH + 1).map(lambda n: "x" * n),
                         st.just("é" * (MAX_ID_LENGTH + 1)), st.just("u" * 100_000),
                         st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=6),
                         st.just("\udc80"), st.just("\x00"), st.just("a\r\nBcc: x@example.com"))
edge_numbers = st.sampled_from([MAX_PRICE, MAX_PRICE + 1, float(MAX_PRICE) * (1 + 2 ** -52), 1e300, -1e300, 5e-324,
                                -0.0, 0.0, 10 ** 9, 10 ** 9 + 1, MAX_QUANTITY, MAX_QUANTITY + 1, 10 ** 10, 2 ** 63 - 1,
                                1e-320, 1.7976931348623157e308])
edge_times = st.sampled_from([
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "0001-01-01T00:30:00+01:00", "0001-01-01T00:30:00-01:00",
    "0000-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "1970-01-01T00:59:59+01:00", "1969-12-31T23:00:00-01:00",
    "9999-12-30T23:59:59.999999Z", "9999-12-31T00:00:00Z", "9999-12-31T00:00:00+00:01",
    "9999-12-30T23:30:00-01:00", "9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.999Z", "1969-12-31T23:59:59Z",
    "2026-11-28T11:59:30+14:00", "2026-11-28T11:59:30-23:59", "2026-11-28T11:59:30.1234567890Z"])
edge_events = st.tuples(
    st.sampled_from(["event_id", "user_id", "item_id", "session_id", "price", "quantity", "event_time", "platform",
                     "interaction_type"]),
    st.one_of(edge_strings, edge_numbers, edge_times)).map(lambda kv: json.dumps({**VALID, kv[0]: kv[1]}))


def nested(depth: int, opener: str, closer: str) -> str:
    return opener * depth + closer * depth


deep = st.one_of(
    st.integers(MAX_NESTING - 2, MAX_NESTING + 2).flatmap(lambda n: st.sampled_from([
        nested(n, "[", "]"), '{"a":' * n + "1" + "}" * n, nested(n, "[", ""),  # unbalanced, not JSON
        json.dumps({**VALID, "extra": json.loads(nested(n - 1, "[", "]"))}),  # a valid event but for its depth
        json.dumps({**VALID, "extra": "[" * (n * 3)}),  # brackets inside a string do not nest
        '"' + "[" * n + '\\"' + "[" * n]))  # an unterminated string with an escaped quote
    | st.just("[" * 100_000 + "]" * 100_000) | st.just('{"a":' * 3000 + "1" + "}" * 3000)
    | st.just("]" * 70 + "[" * 70))
# payloads at and past the size bound (built once: hypothesis shrinks by choosing among them)
def sized(size: int) -> bytes:
    base = json.dumps({**VALID, "pad": ""}).encode()
    return base.replace(b'"pad": ""', b'"pad": "' + b" " * (size - len(base)) + b'"')


big = st.sampled_from([sized(MAX_PAYLOAD_BYTES), sized(MAX_PAYLOAD_BYTES + 1),
                       b"\xff" * (MAX_PAYLOAD_BYTES // 2) + b"\xff" * (MAX_PAYLOAD_BYTES // 2 + 1)])

payloads = st.one_of(
    event_like.map(json.dumps), mutated.map(json.dumps), edge_events, deep, big,
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3),
                 max_leaves=6).map(json.dumps),
    st.binary(max_size=40),
)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROS = dt.timedelta(microseconds=1)
# broker timestamps (epoch microseconds): ordinary ones, and at and past the ends of years 1-9999
received_times = st.one_of(
    st.just((RECEIVED - EPOCH) // MICROS),
    st.sampled_from([(t - EPOCH) // MICROS for t in (
        dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, tzinfo=dt.UTC))]
                    + [(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC) - EPOCH) // MICROS + 1,
                       (dt.datetime(9999, 1, 1, tzinfo=dt.UTC) - EPOCH) // MICROS * 30]))


def as_datetime(micros: int) -> dt.datetime | None:
    try:
        return EPOCH + micros * MICROS
    except OverflowError:
        return None


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.tuples(st.one_of(payloads, st.none()), received_times), min_size=1, max_size=40))
def test_the_job_and_the_reference_validator_agree_on_every_record(batch):
    values = [p.encode("utf-8", "surrogatepass") if isinstance(p, str) else p for p, _ in batch]
    stamps = [micros for _, micros in batch]
    source = pa.RecordBatch.from_pydict({
        "value": pa.array(values, pa.binary()), "partition": pa.array([0] * len(values), pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC"))})
    run = classify_batches("t", SKEW.total_seconds(), LATENESS.total_seconds(), archive=False)
    # broker times beyond year 9999 have no Python datetime: read the rows without them
    rows = [row for out in run([source]) for row in out.drop_columns(["kafka_timestamp"]).to_pylist()]
    records, tallies = [r for r in rows if r["kind"] != TALLY], [r for r in rows if r["kind"] == TALLY]
    assert [r["offset"] for r in records] == list(range(len(values)))
    counted = 0
    for row, value, micros in zip(records, values, stamps, strict=True):
        received = as_datetime(micros)
        reason = invalid_reason(value, received, SKEW)
        late = reason is None and is_late(value, received, LATENESS)
        raw = (payload_text(value) or "")[:300]
        assert not (row["reason"] or "").startswith(UNEXPECTED), raw
        assert row["reason"] == reason, raw
        assert (row["kind"] == LATE) == late, raw
        assert (row["kind"] == DEAD_LETTER) == (reason is not None), raw
        counted += reason is None and not late
    assert [t["tally"] for t in tallies] == [counted]
