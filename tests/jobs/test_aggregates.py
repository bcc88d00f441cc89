"""The aggregate transformations on small, hand-checked inputs (pytest-spark's spark_session, no servers)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from interactions import aggregates
from interactions.documents import facet_document, merge_top, totals_fields
from interactions.parsing import parse_records

T0 = dt.datetime(2026, 11, 28, 10, 0, 0)


def event(event_id, user, kind, minute, second=0, item="i1", platform="web", price=None, quantity=None):
    return {"event_id": event_id, "user_id": user, "item_id": None if kind in ("login", "logout") else item,
            "interaction_type": kind, "platform": platform, "session_id": "s",
            "event_time": (T0 + dt.timedelta(minutes=minute, seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "price": price, "quantity": quantity, "country": "DE"}


def records(spark, events, received=T0 + dt.timedelta(hours=1)):
    rows = [(None, json.dumps(e).encode(), "t", 0, i, received) for i, e in enumerate(events)]
    return spark.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp")


def totals_by_facet(spark, events):
    parsed = parse_records(records(spark, events), 3600, 10 * 3600)
    frame = aggregates.facet_totals(aggregates.facet_rows(aggregates.valid_events(parsed)))
    return {(r["facet"], r["key"], r["facet_type"], r["facet_platform"], r["bucket"]): r.asDict()
            for r in frame.collect()}


EVENTS = [
    event("e1", "ann", "login", 0),
    event("e2", "ann", "view", 0, 10, item="i1", platform="ios"),
    event("e3", "ann", "purchase", 1, 5, item="i1", platform="web", price=10.0, quantity=2),
    event("e4", "bob", "view", 1, 30, item="i1", platform="android"),
    event("e5", "bob", "view", 61, 0, item="i2", platform="web"),
]


def test_a_user_facet_holds_the_users_totals(spark_session):
    ann = totals_by_facet(spark_session, EVENTS)[("user", "ann", None, None, None)]
    assert (ann["interactions"], ann["login"], ann["view"], ann["purchase"]) == (3, 1, 1, 1)
    assert ann["revenue"] == 20.0                          # 10.0 x 2
    assert ann["distinct_items"] == 1                      # i1 only; login has no item
    assert ann["first_event_time"] == T0
    assert ann["last_event_time"] == T0 + dt.timedelta(minutes=1, seconds=5)
    assert ann["last_platform"] == "web"                   # the platform of her latest event (e3)


def test_an_item_facet_counts_distinct_users_and_skips_session_events(spark_session):
    totals = totals_by_facet(spark_session, EVENTS)
    i1 = totals[("item", "i1", None, None, None)]
    assert (i1["interactions"], i1["view"], i1["purchase"], i1["distinct_users"]) == (3, 2, 1, 2)
    assert ("item", None, None, None, None) not in totals  # the login fed no item facet


def test_minute_and_hour_facets_count_per_type_and_platform(spark_session):
    totals = totals_by_facet(spark_session, EVENTS)
    views_at_minute_1 = totals[("minute", None, "view", "android", T0 + dt.timedelta(minutes=1))]
    assert views_at_minute_1["interactions"] == 1
    web_views_hour_0 = totals.get(("hour", None, "view", "web", T0))
    assert web_views_hour_0 is None                        # the web view is at 11:01, the next hour
    assert totals[("hour", None, "view", "web", T0 + dt.timedelta(hours=1))]["interactions"] == 1
    assert sum(r["interactions"] for k, r in totals.items() if k[0] == "minute") == len(EVENTS)


def test_the_global_facet_totals_everything(spark_session):
    everything = totals_by_facet(spark_session, EVENTS)[("global", "all", None, None, None)]
    assert totals_fields(everything) == {"events": 5, "purchases": 1, "revenue": 20.0}


def test_user_documents_are_flat_and_keyed_by_user():
    row = {"facet": "user", "key": "ann", "facet_type": None, "facet_platform": None, "bucket": None,
           "interactions": 3, "login": 1, "logout": 0, "view": 1, "click": 0, "scroll": 0, "add_to_cart": 0,
           "purchase": 1, "revenue": 20.0, "distinct_items": 1, "distinct_users": 1,
           "first_event_time": 1_795_860_000_000_000, "last_event_time": 1_795_860_065_000_000,
           "last_platform": "web"}
    collection, doc = facet_document(row)
    assert collection == "user_stats" and doc["_id"] == "ann" and doc["user_id"] == "ann"
    assert doc["first_event_time"] == dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.timezone.utc)
    assert all(not isinstance(v, (dict, list)) for v in doc.values())


def test_item_documents_carry_the_view_to_purchase_rate():
    row = {"facet": "item", "key": "i1", "interactions": 4, "login": 0, "logout": 0, "view": 3, "click": 0,
           "scroll": 0, "add_to_cart": 0, "purchase": 1, "revenue": 5.0, "distinct_users": 2}
    assert facet_document(row)[1]["view_to_purchase_rate"] == pytest.approx(1 / 3)
    no_views = {**row, "view": 0}
    assert facet_document(no_views)[1]["view_to_purchase_rate"] is None


def test_merging_a_top_list_keeps_the_best_and_is_idempotent():
    current = [("a", 9), ("b", 7), ("c", 5)]
    fresh = [("d", 8), ("c", 10)]            # c grew past everyone, d is new
    merged = merge_top(current, fresh, 3)
    assert merged == [("c", 10), ("a", 9), ("d", 8)]
    assert merge_top(merged, fresh, 3) == merged
    assert merge_top([("x", 3)], [("y", 3)], 5) == [("x", 3), ("y", 3)]   # ties by key


def test_in_a_stream_late_and_redelivered_events_are_not_counted(spark_session, tmp_path):
    """Two micro-batches through the real streaming operators (file source standing in for Kafka)."""
    from pyspark.sql import functions as F

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stream = (spark_session.readStream.format("text").option("maxFilesPerTrigger", 1).load(str(inbox))
              .select(F.lit(None).cast("binary").alias("key"), F.col("value").cast("binary").alias("value"),
                      F.lit("t").alias("topic"), F.lit(0).alias("partition"), F.lit(0).cast("long").alias("offset"),
                      F.lit(T0 + dt.timedelta(minutes=31)).alias("timestamp")))
    events = aggregates.deduplicated(aggregates.valid_events(parse_records(stream, 3600, 120)), "2 minutes")
    totals = aggregates.facet_totals(aggregates.facet_rows(events))
    query = (totals.where("facet = 'user'").writeStream.format("memory").queryName("user_totals")
             .outputMode("update").option("checkpointLocation", str(tmp_path / "checkpoint")).start())
    try:
        (inbox / "1.json").write_text("\n".join(json.dumps(e) for e in [
            event("a1", "ann", "view", 30), event("a2", "ann", "view", 31)]) + "\n")
        query.processAllAvailable()
        (inbox / "2.json").write_text("\n".join(json.dumps(e) for e in [
            event("a2", "ann", "view", 31),                # redelivered
            event("a3", "ann", "view", 10),                # reached the broker 21 minutes after: late
            event("a4", "ann", "click", 30, 30)]) + "\n")  # on time
        query.processAllAvailable()
        query.processAllAvailable()                          # a no-data batch may follow
    finally:
        query.stop()
    latest = spark_session.sql("SELECT * FROM user_totals ORDER BY interactions DESC").first()
    assert (latest["interactions"], latest["view"], latest["click"]) == (3, 2, 1)
