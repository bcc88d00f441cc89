"""Parsing and validation of Kafka records, without any server: each record is either a typed event or a dead
letter whose reason names the rule it broke."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from interactions.parsing import parse_records

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0)
VALID = {"event_id": "e-1", "user_id": "u1", "item_id": "i7", "interaction_type": "purchase", "platform": "ios",
         "session_id": "s1", "event_time": "2026-11-28T11:59:58.250Z", "price": 2.5, "quantity": 3, "country": "DE"}


def parse(spark_session, payloads: list[str | bytes | None]) -> list[dict]:
    rows = [(None, p.encode() if isinstance(p, str) else p, "clicks", 1, offset, RECEIVED)
            for offset, p in enumerate(payloads)]
    frame = spark_session.createDataFrame(
        rows, "key binary, value binary, topic string, partition int, offset long, timestamp timestamp")
    return [r.asDict() for r in parse_records(frame, max_future_skew_seconds=3600, allowed_lateness_seconds=120)
            .orderBy("offset").collect()]


def with_changes(**changes) -> str:
    event = {**VALID, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...})


def test_a_valid_event_is_typed_and_keeps_its_kafka_coordinates(spark_session):
    [row] = parse(spark_session, [json.dumps(VALID)])
    assert row["error"] is None
    assert (row["event_id"], row["user_id"], row["item_id"]) == ("e-1", "u1", "i7")
    assert row["event_time"] == dt.datetime(2026, 11, 28, 11, 59, 58, 250000)
    assert row["quantity"] == 3 and row["price"] == 2.5
    assert row["revenue"] == pytest.approx(7.5)  # 2.5 x 3, a purchase
    assert (row["topic"], row["partition"], row["offset"]) == ("clicks", 1, 0)
    assert row["raw"] == json.dumps(VALID)


def test_only_purchases_carry_revenue(spark_session):
    [cart] = parse(spark_session, [with_changes(interaction_type="add_to_cart")])
    assert cart["error"] is None and cart["revenue"] == 0.0


def test_session_events_may_have_no_item(spark_session):
    [login] = parse(spark_session, [with_changes(interaction_type="login", item_id=None, price=None, quantity=None)])
    assert login["error"] is None and login["item_id"] is None


@pytest.mark.parametrize("payload, reason", [
    ("not json at all", "not a JSON object"),
    ("[1, 2, 3]", "not a JSON object"),
    ("", "not a JSON object"),
    (with_changes(user_id=...), "missing required field user_id"),
    (with_changes(event_time=None), "missing required field event_time"),
    (with_changes(user_id=42), "wrong type for field user_id"),
    (with_changes(price="cheap"), "wrong type for field price"),
    (with_changes(quantity=1.5), "wrong type for field quantity"),
    (with_changes(interaction_type="hover"), "unknown interaction_type hover"),
    (with_changes(platform="fax"), "unknown platform fax"),
    (with_changes(item_id=None), "missing item_id for an item interaction"),
    (with_changes(event_time="yesterday"), "unparseable event_time yesterday"),
    (with_changes(event_time="2026-11-28 11:59:58"), "unparseable event_time 2026-11-28 11:59:58"),
    (with_changes(event_time="2026-11-28T14:00:00.000Z"), "event_time too far in the future"),
    (with_changes(price=-1.0), "negative price"),
    (with_changes(quantity=0), "quantity below 1"),
])
def test_a_malformed_record_becomes_a_dead_letter_with_its_reason(spark_session, payload, reason):
    [row] = parse(spark_session, [payload])
    assert row["error"] == reason
    assert row["raw"] == payload


def test_an_event_up_to_the_allowed_skew_ahead_of_the_broker_clock_is_valid(spark_session):
    [row] = parse(spark_session, [with_changes(event_time="2026-11-28T12:59:59.999Z")])
    assert row["error"] is None


def test_a_null_payload_is_a_dead_letter_not_a_crash(spark_session):
    [row] = parse(spark_session, [None])
    assert row["error"] == "not a JSON object"


def test_every_record_comes_out_exactly_once(spark_session):
    payloads = [json.dumps(VALID), "garbage", with_changes(event_id="e-2"), with_changes(platform="fax")]
    rows = parse(spark_session, payloads)
    assert [r["offset"] for r in rows] == [0, 1, 2, 3]
    assert [r["error"] is None for r in rows] == [True, False, True, False]


def test_an_event_reaching_the_broker_after_the_allowed_lateness_is_late_not_malformed(spark_session):
    on_time, late = parse(spark_session, [with_changes(event_time="2026-11-28T11:58:00.001Z"),
                                          with_changes(event_time="2026-11-28T11:57:59.999Z")])
    assert (on_time["error"], on_time["late"]) == (None, False)   # 1 min 59.999 s after: in time
    assert (late["error"], late["late"]) == (None, True)          # 2 min 0.001 s after: late


def test_a_malformed_record_is_never_also_late(spark_session):
    [row] = parse(spark_session, [with_changes(event_time="2020-01-01T00:00:00.000Z", platform="fax")])
    assert row["error"] == "unknown platform fax" and row["late"] is False
