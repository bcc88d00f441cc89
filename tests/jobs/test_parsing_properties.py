"""Property-based: whatever bytes arrive, every record comes out exactly once, the job never crashes, and the job's
Spark validation agrees with the independent Python one (interactions.verify.invalid_reason) on every record."""
from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interactions.parsing import parse_records
from interactions.schema import INTERACTION_TYPES, PLATFORMS
from interactions.verify import invalid_reason

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0)
SKEW = dt.timedelta(minutes=10)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
times = st.one_of(
    st.datetimes(min_value=dt.datetime(2026, 11, 28, 11, 0), max_value=dt.datetime(2026, 11, 28, 12, 20))
    .map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"),
    st.sampled_from(["yesterday", "2026-11-28", "2026-13-01T00:00:00.000Z", "2026-11-28T11:59:00+01:00", ""]))
event_like = st.fixed_dictionaries(
    {"event_id": st.text(min_size=1, max_size=8), "user_id": st.sampled_from(["u1", "u2", ""]),
     "interaction_type": st.sampled_from([*INTERACTION_TYPES, "hover"]),
     "platform": st.sampled_from([*PLATFORMS, "fax"]), "session_id": st.just("s"), "event_time": times},
    optional={"item_id": st.one_of(st.none(), st.sampled_from(["i1", "i2"])),
              "price": st.one_of(st.none(), st.floats(-5, 100, allow_nan=False), st.text(max_size=3)),
              "quantity": st.one_of(st.none(), st.integers(-1, 5), st.floats(0, 3, allow_nan=False)),
              "country": st.one_of(st.none(), st.just("DE"), st.integers(0, 9))},
).flatmap(lambda event: st.fixed_dictionaries({k: st.one_of(st.just(v), scalars) for k, v in event.items()})
          if False else st.just(event))
mutated = st.tuples(event_like, st.sampled_from(["event_id", "user_id", "item_id", "event_time", "price",
                                                 "quantity", "platform"]), scalars) \
    .map(lambda t: {**t[0], t[1]: t[2]})
payloads = st.one_of(
    event_like.map(json.dumps), mutated.map(json.dumps),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3),
                 max_leaves=6).map(json.dumps),
    st.binary(max_size=40).map(lambda b: b.decode("utf-8", "replace")),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(batch=st.lists(payloads, min_size=1, max_size=60))
def test_spark_and_python_validation_agree_on_every_record(spark_session, batch):
    rows = [(None, p.encode("utf-8"), "t", 0, offset, RECEIVED) for offset, p in enumerate(batch)]
    frame = spark_session.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp")
    parsed = parse_records(frame, SKEW.total_seconds(), 120).orderBy("offset").collect()
    assert [r["offset"] for r in parsed] == list(range(len(batch)))
    received = RECEIVED.replace(tzinfo=dt.timezone.utc)
    for row, payload in zip(parsed, batch):
        oracle = invalid_reason(payload, received, SKEW)
        assert (row["error"] is None) == (oracle is None), (payload, row["error"], oracle)
