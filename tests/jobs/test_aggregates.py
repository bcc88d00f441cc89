"""The aggregate transformations on small, hand-checked inputs: the per-partition partial facets (pure polars), the
running totals merged from them (pytest-spark's spark_session, batch and stream), the documents built from those,
and the state the stream keeps (time buckets leave it, users stay)."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interactions import aggregates, dataflow, documents, facets
from interactions.parsing import classify_batches

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
RECEIVED = T0 + dt.timedelta(minutes=62)
LATENESS, SKEW = dt.timedelta(hours=2), dt.timedelta(hours=1)


def event(event_id, user, kind, minute, second=0, item="i1", platform="web", price=None, quantity=None):
    return {"event_id": event_id, "user_id": user, "item_id": None if kind in ("login", "logout") else item,
            "interaction_type": kind, "platform": platform, "session_id": "s",
            "event_time": (T0 + dt.timedelta(minutes=minute, seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "price": price, "quantity": quantity, "country": "DE"}


EVENTS = [
    event("e1", "ann", "login", 0),
    event("e2", "ann", "view", 0, 10, item="i1", platform="ios"),
    event("e3", "ann", "purchase", 1, 5, item="i1", platform="web", price=10.0, quantity=2),
    event("e4", "bob", "view", 1, 30, item="i1", platform="android"),
    event("e5", "bob", "view", 61, 0, item="i2", platform="web"),
]


def kafka_batch(payloads, received=RECEIVED, first_offset=0):
    return pa.RecordBatch.from_pydict({
        "value": pa.array([json.dumps(p).encode() if isinstance(p, dict) else p for p in payloads], pa.binary()),
        "partition": pa.array([0] * len(payloads), pa.int32()),
        "offset": pa.array(range(first_offset, first_offset + len(payloads)), pa.int64()),
        "timestamp": pa.array([received] * len(payloads), pa.timestamp("us", tz="UTC"))})


def partials(payloads, archive=False):
    classify = classify_batches("t", SKEW.total_seconds(), LATENESS.total_seconds(), archive)
    aggregate = facets.partial_facets_function(LATENESS.total_seconds(), 300, 60, archive)
    return [row for batch in aggregate(classify([kafka_batch(payloads)])) for row in batch.to_pylist()]


def by_key(rows):
    return {(r["facet"], r["key"], r["ftype"], r["fplatform"], r["start"]): r for r in rows}


def test_a_user_partial_holds_the_users_counts_times_and_latest_platform():
    ann = by_key(partials(EVENTS))[("user", "ann", None, None, None)]
    assert (ann["interactions"], ann["login"], ann["view"], ann["purchase"]) == (3, 1, 1, 1)
    assert ann["revenue"] == 20.0                                        # 10.0 x 2
    assert ann["first_time"] == T0 and ann["last_time"] == T0 + dt.timedelta(minutes=1, seconds=5)
    assert (ann["last_id"], ann["last_platform"]) == ("e3", "web")      # her latest event
    assert ann["bucket"] is None                                         # users never leave the state


def test_an_item_partial_skips_session_events():
    rows = by_key(partials(EVENTS))
    i1 = rows[("item", "i1", None, None, None)]
    assert (i1["interactions"], i1["view"], i1["purchase"]) == (3, 2, 1)
    assert not [k for k in rows if k[0] == "item" and k[1] is None]     # the login fed no item


def test_windows_count_per_type_and_platform_and_leave_the_state_after_their_end_plus_the_lateness():
    rows = by_key(partials(EVENTS))
    views = rows[("minute", None, "view", "android", T0 + dt.timedelta(minutes=1))]
    assert views["interactions"] == 1
    assert views["bucket"] == T0 + dt.timedelta(minutes=2) + LATENESS
    assert ("hour", None, "view", "web", T0) not in rows                # the web view is at 11:01
    assert rows[("hour", None, "view", "web", T0 + dt.timedelta(hours=1))]["interactions"] == 1
    assert sum(r["interactions"] for k, r in rows.items() if k[0] == "day") == len(EVENTS)
    slot = rows[("user_slot", "ann", None, None, T0)]
    assert slot["interactions"] == 3 and slot["bucket"] == T0 + dt.timedelta(minutes=5) + LATENESS


def test_the_global_partial_counts_records_events_and_set_aside_ones():
    late = {**event("e9", "cy", "view", 0), "event_time": "2026-11-28T08:00:00.000Z"}   # 3 h before it arrived
    rows = partials(EVENTS + ["garbage", late])
    [everything] = [r for r in rows if r["facet"] == "global"]
    assert (everything["interactions"], everything["purchase"], everything["revenue"]) == (5, 1, 20.0)
    assert everything["valid_records"] == 5        # from the tally: what the dedup let through is `interactions`
    assert (everything["dead_letters"], everything["late_events"]) == (1, 1)
    [letter] = [r for r in rows if r["facet"] == "dead_letter"]
    assert (letter["key"], letter["raw"], letter["reason"]) == ("0:5", "garbage", "not a JSON object")
    assert letter["bucket"] == RECEIVED             # it leaves the state when the watermark passes it


def test_archived_events_pass_through_keyed_by_event_id():
    rows = [r for r in partials(EVENTS, archive=True) if r["facet"] == "archive"]
    assert sorted(r["key"] for r in rows) == ["e1", "e2", "e3", "e4", "e5"]
    assert {r["session_id"] for r in rows} == {"s"}


def running(spark, *batches, archive=False):
    """running_totals (batch mode) over the partial rows of several partitions' batches."""
    rows = [row for payloads in batches for row in partials(payloads, archive)]
    frame = spark.createDataFrame(rows, schema=_spark_schema(archive))
    return frame, aggregates.running_totals(frame, archive)


def rows_of(frame):
    """Rows as dicts with aware UTC times (collect() would hand back naive local ones)."""
    return frame.toArrow().to_pylist()


def _spark_schema(archive):
    from pyspark.sql.pandas.types import from_arrow_schema
    return from_arrow_schema(facets.partial_schema(archive))


def test_running_totals_merge_partials_of_several_partitions(spark_session):
    _, totals = running(spark_session, EVENTS[:2], EVENTS[2:])
    rows = {(r["facet"], r["key"]): r for r in rows_of(totals)}
    ann = rows[("user", "ann")]
    assert (ann["interactions"], ann["revenue"], ann["last_platform"]) == (3, 20.0, "web")
    assert ann["first_event_time"] == T0 and ann["distinct"] == 1       # i1 only; the login has no item
    i1 = rows[("item", "i1")]
    assert (i1["interactions"], i1["distinct"]) == (3, 2)               # ann and bob
    assert rows[("global", "all")]["interactions"] == len(EVENTS)


def test_distinct_counts_are_exact_on_small_sets(spark_session):
    many = [event(f"x{i}", "dee", "view", 5, i % 60, item=f"item{i}") for i in range(150)]
    _, totals = running(spark_session, many[:70], many[50:])  # overlapping partitions: 150 distinct items
    [dee] = [r for r in rows_of(totals) if r["facet"] == "user" and r["key"] == "dee"]
    assert dee["distinct"] == 150


def test_documents_are_flat_keyed_and_typed(spark_session):
    _, totals = running(spark_session, EVENTS)
    [ann] = [r for r in rows_of(documents.user_stats(totals)) if r["_id"] == "ann"]
    assert ann["user_id"] == "ann" and ann["distinct_items"] == 1 and ann["last_platform"] == "web"
    assert all(not isinstance(v, (dict, list)) for v in ann.values())
    items = {r["_id"]: r for r in rows_of(documents.item_stats(totals))}
    assert items["i1"]["view_to_purchase_rate"] == pytest.approx(1 / 2)
    assert items["i2"]["view_to_purchase_rate"] == pytest.approx(0.0)
    figures = [(r["start"], r["ftype"], r["fplatform"], r["interactions"], r["revenue"]) for r in rows_of(totals)
               if r["facet"] == "minute"]
    minutes = {d["_id"]: d for d in documents.window_documents("minute", figures)}
    key = documents.window_key(T0 + dt.timedelta(minutes=1), "view", "android")
    assert key == "2026-11-28T10:01:00Z|view|android" and minutes[key]["events"] == 1
    assert minutes[key]["window_end"] == T0 + dt.timedelta(minutes=2)


def test_merging_a_top_list_keeps_the_best_and_is_idempotent():
    current = [("a", 9), ("b", 7), ("c", 5)]
    fresh = [("d", 8), ("c", 10)]            # c grew past everyone, d is new
    merged = documents.merge_top(current, fresh, 3)
    assert merged == [("c", 10), ("a", 9), ("d", 8)]
    assert documents.merge_top(merged, fresh, 3) == merged
    assert documents.merge_top([("x", 3)], [("y", 3)], 5) == [("x", 3), ("y", 3)]   # ties by key


class Stream:
    """Micro-batches through the real streaming operators, a parquet file source standing in for Kafka: each
    `deliver` is one batch of records stamped with one broker time, processed before it returns."""

    SCHEMA = "value binary, partition int, offset long, timestamp timestamp"

    def __init__(self, spark, folder, *, duplicate_window_s=120, max_partition_lag_s=10):
        import pyarrow.parquet  # noqa: F401  (pa.parquet)

        self.inbox = folder / "inbox"
        self.inbox.mkdir()
        settings = dataflow.Settings(topic="t", allowed_lateness_s=120, max_future_skew_s=600,
                                     duplicate_window_s=duplicate_window_s, max_partition_lag_s=max_partition_lag_s,
                                     slot_s=300, user_rate_s=None, archive=False)
        source = spark.readStream.schema(self.SCHEMA).option("maxFilesPerTrigger", 1).parquet(str(self.inbox))
        self.seen: list[dict] = []
        self.batches = 0
        self.offset = 0
        self.query = (dataflow.interactions(source, settings).writeStream.outputMode("update")
                      .option("checkpointLocation", str(folder / "checkpoint"))
                      .foreachBatch(lambda frame, _: self.seen.extend(rows_of(frame))).start())

    def deliver(self, payloads, received) -> None:
        table = pa.Table.from_batches([kafka_batch(payloads, received, self.offset)])
        self.offset += len(payloads)
        self.batches += 1
        pa.parquet.write_table(table, str(self.inbox / f"{self.batches:04d}.parquet"))
        self.query.processAllAvailable()

    def state_rows(self) -> dict[str, int]:
        by_name = {op["operatorName"]: op["numRowsTotal"] for op in self.query.lastProgress["stateOperators"]}
        dedup = sum(v for k, v in by_name.items() if "dedup" in k.lower())
        return {"deduplication": dedup, "aggregation": sum(by_name.values()) - dedup}

    def dropped(self) -> int:
        return sum(int(op.get("numRowsDroppedByWatermark") or 0)
                   for p in self.query.recentProgress for op in p["stateOperators"])

    def latest(self, facet: str, key: str) -> dict | None:
        rows = [r for r in self.seen if r["facet"] == facet and r["key"] == key]
        return rows[-1] if rows else None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_exc) -> None:
        self.query.stop()


def test_in_a_stream_duplicates_are_dropped_once_and_time_buckets_leave_the_state(spark_session, tmp_path):
    with Stream(spark_session, tmp_path) as stream:
        at = T0 + dt.timedelta(minutes=1)
        stream.deliver([event("a1", "ann", "view", 0), event("a2", "ann", "view", 0, 30)], at)
        stream.deliver([event("a2", "ann", "view", 0, 30), event("a3", "ann", "click", 0, 40)],
                       at + dt.timedelta(seconds=20))                    # a2 redelivered 20 s later
        rows_after_two = stream.state_rows()
        # ten minutes later (broker time): the watermark passes minute 10:00 (+ lateness) and the first records
        stream.deliver([event("a4", "ann", "view", 10)], at + dt.timedelta(minutes=10))
        stream.query.processAllAvailable()  # the batch that only moves the watermark, if any
        rows_after_three = stream.state_rows()
    ann = stream.latest("user", "ann")
    assert (ann["interactions"], ann["view"], ann["click"]) == (4, 3, 1)
    everything = stream.latest("global", "all")
    assert everything["valid_records"] - everything["interactions"] == 1    # one duplicate, counted once
    minute_ten = {r["ftype"]: r["interactions"] for r in stream.seen if r["facet"] == "minute" and r["start"] == T0}
    assert minute_ten == {"view": 2, "click": 1}
    # after two batches the aggregation holds ann, i1, the global row, two minute, two hour and two day keys
    # (view and click at 10:00) and ann's slot: 10; the deduplication three event ids and two batch tallies
    assert rows_after_two == {"aggregation": 10, "deduplication": 5}
    # the third batch adds minute 10:10 and ann's slot 10:10; then the watermark (10:11 - the 10 s partition lag)
    # passes the ends + lateness of minute 10:00 (10:03) and slot 10:00 (10:07): three keys leave, 12 - 3; the
    # deduplication forgets every id whose first copy reached the broker more than the duplicate window before the
    # watermark (before 10:08:50), keeping a4 and the third tally
    assert rows_after_three == {"aggregation": 9, "deduplication": 2}


def test_an_event_id_is_kept_for_the_duplicate_window_plus_the_partition_lag_not_twice_the_window(
        spark_session, tmp_path):
    """Spark's own rule keeps an id until the watermark (the newest time less its delay) passes the id's time plus
    that delay: twice the window when the delay is the window. The job keeps it for the window plus the lag."""
    def at(seconds):
        return T0 + dt.timedelta(seconds=seconds)

    def view(event_id, seconds):
        return event(event_id, "bo", "view", seconds // 60, seconds % 60)

    with Stream(spark_session, tmp_path, duplicate_window_s=120, max_partition_lag_s=10) as stream:
        # after each delivery Spark runs a batch without data that moves the watermark (newest broker time - 10 s)
        stream.deliver([view("b1", 0)], at(0))
        stream.deliver([view("b2", 100)], at(100))
        stream.deliver([view("b3", 125)], at(125))
        kept_at_125 = stream.state_rows()["deduplication"]  # watermark 115 s: b1 (kept until 120 s) stays
        stream.deliver([view("b4", 140)], at(140))
        kept_at_140 = stream.state_rows()["deduplication"]  # watermark 130 s: b1 has left, b2 (until 220 s) stays
    # ids and their batches' tallies: b1..b3 at 125, b2..b4 at 140. Under Spark's own rule (kept for the watermark's
    # delay past it) b1 and b2 would have left at 125 already; under twice the window b1 would stay until 240 s
    assert (kept_at_125, kept_at_140) == (6, 6)


def test_a_record_stamped_far_ahead_does_not_carry_the_watermark_away(spark_session, tmp_path):
    """One record whose broker time is a century ahead (a producer's clock on a CreateTime topic) is counted where
    it belongs, and the records after it, stamped now, are counted too instead of falling behind the watermark."""
    now = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)

    def stamped(event_id, when):
        return {**event(event_id, "zoe", "view", 0), "event_time": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")}

    with Stream(spark_session, tmp_path) as stream:
        future = now.replace(year=2126)
        stream.deliver([stamped("f1", future)], future)
        stream.deliver([stamped("n1", now)], now + dt.timedelta(seconds=5))
        stream.deliver([stamped("n2", now), stamped("n1", now)], now + dt.timedelta(seconds=10))
        dropped = stream.dropped()
    assert stream.latest("user", "zoe")["interactions"] == 3 and dropped == 0  # the redelivered n1: a duplicate
    everything = stream.latest("global", "all")
    assert everything["valid_records"] - everything["interactions"] == 1


DEDUP_WINDOW_S, PARTITION_LAG_S = 120, 10


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from([0, 5, 40, 60, 115, 120, 121, 129, 131, 250]),
                               st.sets(st.integers(0, 3), min_size=1, max_size=3)), min_size=3, max_size=6))
# id0 again 110 s after its first copy, two batches after Spark's own rule (ids kept for the watermark's delay, 10 s,
# past the watermark) would have forgotten it
@example(plan=[(0, {0}), (60, {1}), (40, {2}), (10, {0})])
def test_a_redelivery_within_the_duplicate_window_is_never_counted_and_ids_leave_after_window_and_lag(
        spark_session, tmp_path_factory, plan):
    """The documented guarantee, on arbitrary schedules of redeliveries (one partition, broker time never going
    back): a copy that reaches the broker within job.duplicate_window of the copy counted before it is dropped;
    an id whose counted copy is more than the window plus the partition lag behind the newest broker time seen
    before a batch has left the state, so its next copy counts again."""
    window, lag = dt.timedelta(seconds=DEDUP_WINDOW_S), dt.timedelta(seconds=PARTITION_LAG_S)
    with Stream(spark_session, tmp_path_factory.mktemp("dedup"), duplicate_window_s=DEDUP_WINDOW_S,
                max_partition_lag_s=PARTITION_LAG_S) as stream:
        when, counts = T0, []
        for gap, ids in plan:
            when += dt.timedelta(seconds=gap)
            happened = (when - T0).total_seconds()
            stream.deliver([event(f"id{n}", f"user{n}", "view", int(happened // 60), int(happened % 60))
                            for n in sorted(ids)], when)
            counts.append({n: (stream.latest("user", f"user{n}") or {}).get("interactions", 0) for n in range(5)})
    last_counted: dict[int, dt.datetime] = {}
    when, newest_before = T0, None
    for k, (gap, ids) in enumerate(plan):
        when += dt.timedelta(seconds=gap)
        for n in ids:
            counted = counts[k][n] - (counts[k - 1][n] if k else 0)
            first = last_counted.get(n)
            if first is None:
                assert counted == 1, (k, n)
            elif when - first <= window:
                assert counted == 0, (k, n, when - first)       # a redelivery within the window: dropped
            elif newest_before - lag > first + window:
                assert counted == 1, (k, n, when - first)       # the id had left the state: counted again
            if counted:
                last_counted[n] = when
        newest_before = when
