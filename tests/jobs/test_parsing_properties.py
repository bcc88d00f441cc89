"""Property-based: whatever bytes arrive, every record comes out exactly once, the job never crashes, and the job's
classification (interactions.parsing, built for speed) names the same reason and the same lateness as the reference
validator (contract.validation, standard-library Python) on every record."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.events import INTERACTION_TYPES, PLATFORMS
from contract.validation import invalid_reason, is_late, payload_text
from interactions.parsing import DEAD_LETTER, LATE, TALLY, classify_batches

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
payloads = st.one_of(
    event_like.map(json.dumps), mutated.map(json.dumps),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3),
                 max_leaves=6).map(json.dumps),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(st.one_of(payloads, st.none()), min_size=1, max_size=40))
def test_the_job_and_the_reference_validator_agree_on_every_record(batch):
    values = [p.encode("utf-8", "surrogatepass") if isinstance(p, str) else p for p in batch]
    source = pa.RecordBatch.from_pydict({
        "value": pa.array(values, pa.binary()), "partition": pa.array([0] * len(values), pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
        "timestamp": pa.array([RECEIVED] * len(values), pa.timestamp("us", tz="UTC"))})
    run = classify_batches("t", SKEW.total_seconds(), LATENESS.total_seconds(), archive=False)
    rows = [row for out in run([source]) for row in out.to_pylist()]
    records, tallies = [r for r in rows if r["kind"] != TALLY], [r for r in rows if r["kind"] == TALLY]
    assert [r["offset"] for r in records] == list(range(len(values)))
    counted = 0
    for row, value in zip(records, values, strict=True):
        raw = payload_text(value)
        reason = invalid_reason(raw, RECEIVED, SKEW)
        late = reason is None and is_late(raw, RECEIVED, LATENESS)
        assert row["reason"] == reason, raw
        assert (row["kind"] == LATE) == late, raw
        assert (row["kind"] == DEAD_LETTER) == (reason is not None), raw
        counted += reason is None and not late
    assert [t["tally"] for t in tallies] == [counted]
