"""The aggregate transformations on small, hand-checked inputs: the per-partition partial facets (pure polars), the
running totals merged from them (pytest-spark's spark_session, batch and stream), the documents built from those,
and the state the stream keeps (time buckets leave it, users stay)."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

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
    minutes = {r["_id"]: r for r in rows_of(documents.window_counts(totals, "minute"))}
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


def test_in_a_stream_duplicates_are_dropped_once_and_time_buckets_leave_the_state(spark_session, tmp_path):
    """Micro-batches through the real streaming operators (a parquet file source standing in for Kafka)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = dataflow.Settings(topic="t", allowed_lateness_s=120, max_future_skew_s=600, duplicate_window_s=120,
                                 slot_s=300, user_rate_s=None, archive=False)
    schema = "value binary, partition int, offset long, timestamp timestamp"
    stream = spark_session.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(inbox))
    out = dataflow.interactions(stream, settings)
    seen: list[dict] = []
    query = (out.writeStream.outputMode("update").option("checkpointLocation", str(tmp_path / "checkpoint"))
             .foreachBatch(lambda frame, _: seen.extend(rows_of(frame))).start())

    def deliver(name, payloads, received, first_offset):
        table = pa.Table.from_batches([kafka_batch(payloads, received, first_offset)])
        pa.parquet.write_table(table, str(inbox / f"{name}.parquet"))
        query.processAllAvailable()

    import pyarrow.parquet  # noqa: F401  (pa.parquet)
    try:
        at = T0 + dt.timedelta(minutes=1)
        deliver("1", [event("a1", "ann", "view", 0), event("a2", "ann", "view", 0, 30)], at, 0)
        deliver("2", [event("a2", "ann", "view", 0, 30), event("a3", "ann", "click", 0, 40)],
                at + dt.timedelta(seconds=20), 2)                      # a2 redelivered 20 s later
        rows_after_two = _state_rows(query)
        # ten minutes later (broker time): the watermark passes minute 10:00 (+ lateness) and the first records
        deliver("3", [event("a4", "ann", "view", 10)], at + dt.timedelta(minutes=10), 4)
        query.processAllAvailable()  # the batch that only moves the watermark, if any
        rows_after_three = _state_rows(query)
    finally:
        query.stop()
    users = [r for r in seen if r["facet"] == "user" and r["key"] == "ann"]
    assert (users[-1]["interactions"], users[-1]["view"], users[-1]["click"]) == (4, 3, 1)
    globals_ = [r for r in seen if r["facet"] == "global"]
    assert globals_[-1]["valid_records"] - globals_[-1]["interactions"] == 1    # one duplicate, counted once
    minute_ten = {r["ftype"]: r["interactions"] for r in seen if r["facet"] == "minute" and r["start"] == T0}
    assert minute_ten == {"view": 2, "click": 1}
    # after two batches the aggregation holds ann, i1, the global row, two minute, two hour and two day keys
    # (view and click at 10:00) and ann's slot: 10; the deduplication three event ids and two batch tallies
    assert rows_after_two == {"aggregation": 10, "deduplication": 5}
    # the third batch adds minute 10:10 and ann's slot 10:10; then the watermark (10:11 - 2 minutes) passes the
    # ends + lateness of minute 10:00 (10:03) and slot 10:00 (10:07): three keys leave, 12 - 3; the deduplication
    # forgets everything that reached the broker before 10:09, keeping a4 and the third tally
    assert rows_after_three == {"aggregation": 9, "deduplication": 2}


def _state_rows(query) -> dict[str, int]:
    operators = query.lastProgress["stateOperators"]
    by_name = {op["operatorName"]: op["numRowsTotal"] for op in operators}
    dedup = sum(v for k, v in by_name.items() if "Dedup" in k or "dedup" in k)
    return {"deduplication": dedup, "aggregation": sum(by_name.values()) - dedup}


def test_a_record_stamped_far_ahead_does_not_carry_the_watermark_away(spark_session, tmp_path):
    """One record whose broker time is a century ahead (a producer's clock on a CreateTime topic) is counted where
    it belongs, and the records after it, stamped now, are counted too instead of falling behind the watermark."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = dataflow.Settings(topic="t", allowed_lateness_s=120, max_future_skew_s=600, duplicate_window_s=120,
                                 slot_s=300, user_rate_s=None, archive=False)
    schema = "value binary, partition int, offset long, timestamp timestamp"
    stream = spark_session.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(inbox))
    seen: list[dict] = []
    query = (dataflow.interactions(stream, settings).writeStream.outputMode("update")
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .foreachBatch(lambda frame, _: seen.extend(rows_of(frame))).start())
    now = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)

    def stamped(event_id, when):
        return {**event(event_id, "zoe", "view", 0), "event_time": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")}

    def deliver(name, payloads, received, first_offset):
        table = pa.Table.from_batches([kafka_batch(payloads, received, first_offset)])
        pa.parquet.write_table(table, str(inbox / f"{name}.parquet"))
        query.processAllAvailable()

    import pyarrow.parquet  # noqa: F401  (pa.parquet)
    try:
        future = now.replace(year=2126)
        deliver("1", [stamped("f1", future)], future, 0)
        deliver("2", [stamped("n1", now)], now + dt.timedelta(seconds=5), 1)
        deliver("3", [stamped("n2", now), stamped("n1", now)], now + dt.timedelta(seconds=10), 2)
        dropped = sum(int(op.get("numRowsDroppedByWatermark") or 0)
                      for p in query.recentProgress for op in p["stateOperators"])
    finally:
        query.stop()
    [zoe] = [r for r in seen if r["facet"] == "user" and r["key"] == "zoe"][-1:]
    assert zoe["interactions"] == 3 and dropped == 0   # f1, n1 and n2; the redelivered n1 dropped as a duplicate
    globals_ = [r for r in seen if r["facet"] == "global"]
    assert globals_[-1]["valid_records"] - globals_[-1]["interactions"] == 1
