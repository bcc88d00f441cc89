"""Classifying Kafka records, without any server: each record is a typed event, a late event, or a dead letter
whose reason names the rule it broke; each batch also yields one tally row counting its countable events."""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from interactions.parsing import DEAD_LETTER, EVENT, LATE, TALLY, classify_batches

RECEIVED = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.UTC)
VALID = {"event_id": "e-1", "user_id": "u1", "item_id": "i7", "interaction_type": "purchase", "platform": "ios",
         "session_id": "s1", "event_time": "2026-11-28T11:59:58.250Z", "price": 2.5, "quantity": 3, "country": "DE"}


def kafka_batch(payloads: list[str | bytes | None], partition: int = 1) -> pa.RecordBatch:
    values = [p.encode() if isinstance(p, str) else p for p in payloads]
    return pa.RecordBatch.from_pydict({
        "value": pa.array(values, pa.binary()), "partition": pa.array([partition] * len(values), pa.int32()),
        "offset": pa.array(range(len(values)), pa.int64()),
        "timestamp": pa.array([RECEIVED] * len(values), pa.timestamp("us", tz="UTC"))})


def classify(payloads: list[str | bytes | None], archive: bool = False) -> list[dict]:
    run = classify_batches("clicks", max_future_skew_s=3600, allowed_lateness_s=120, archive=archive)
    rows = [row for batch in run([kafka_batch(payloads)]) for row in batch.to_pylist()]
    return rows


def records(payloads: list[str | bytes | None]) -> list[dict]:
    return [r for r in classify(payloads) if r["kind"] != TALLY]


def with_changes(**changes) -> str:
    event = {**VALID, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...})


def test_a_valid_event_is_typed_and_keeps_its_kafka_coordinates():
    [row] = records([json.dumps(VALID)])
    assert row["kind"] == EVENT and row["reason"] is None
    assert (row["event_id"], row["user_id"], row["item_id"]) == ("e-1", "u1", "i7")
    assert row["event_time"] == dt.datetime(2026, 11, 28, 11, 59, 58, 250000, tzinfo=dt.UTC)
    assert row["revenue"] == pytest.approx(7.5)  # 2.5 x 3, a purchase
    assert (row["partition"], row["offset"], row["kafka_timestamp"]) == (1, 0, RECEIVED)
    assert row["raw"] is None  # only records set aside keep their payload


def test_the_archive_keeps_every_field_of_an_event():
    [row, _tally] = classify([json.dumps(VALID)], archive=True)
    assert (row["session_id"], row["price"], row["quantity"], row["country"]) == ("s1", 2.5, 3, "DE")


def test_only_purchases_carry_revenue():
    [cart] = records([with_changes(interaction_type="add_to_cart")])
    assert cart["kind"] == EVENT and cart["revenue"] == 0.0


def test_session_events_may_have_no_item():
    [login] = records([with_changes(interaction_type="login", item_id=None, price=None, quantity=None)])
    assert login["kind"] == EVENT and login["item_id"] is None


@pytest.mark.parametrize("payload, reason", [
    ("not json at all", "not a JSON object"),
    ("[1, 2, 3]", "not a JSON object"),
    ("", "not a JSON object"),
    ('{"price": NaN}', "not a JSON object"),  # NaN is not a JSON number (RFC 8259)
    (with_changes(user_id=...), "missing required field user_id"),
    (with_changes(event_time=None), "missing required field event_time"),
    (with_changes(user_id=42), "wrong type for field user_id"),
    (with_changes(price="cheap"), "wrong type for field price"),
    (with_changes(price=True), "wrong type for field price"),
    (with_changes(quantity=1.5), "wrong type for field quantity"),
    (with_changes(quantity=2 ** 64), "wrong type for field quantity"),  # beyond signed 64 bits
    (with_changes(price=10 ** 400), "wrong type for field price"),  # no double holds it
    (with_changes(event_id="\ud800"), "not a JSON object"),  # an escaped lone surrogate is not text
    (with_changes(event_id="\t\u00a0"), "empty event_id"),  # Unicode white space only
    (with_changes(user_id="\u2003"), "empty user_id"),
    (with_changes(interaction_type="hover"), "unknown interaction_type hover"),
    (with_changes(platform="fax"), "unknown platform fax"),
    (with_changes(item_id=None), "missing item_id for an item interaction"),
    (with_changes(event_time="yesterday"), "unparseable event_time yesterday"),
    (with_changes(event_time="2026-11-28 11:59:58"), "unparseable event_time 2026-11-28 11:59:58"),
    (with_changes(event_time="2026-11-28T24:00:00Z"), "unparseable event_time 2026-11-28T24:00:00Z"),
    (with_changes(event_time="2026-11-28T14:00:00.000Z"), "event_time too far in the future"),
    (with_changes(price=-1.0), "negative price"),
    (with_changes(quantity=0), "quantity below 1"),
])
def test_a_malformed_record_becomes_a_dead_letter_with_its_reason(payload, reason):
    [row] = records([payload])
    assert (row["kind"], row["reason"]) == (DEAD_LETTER, reason)
    assert row["raw"] == payload
    assert row["dedup_key"] == "r1:0"  # its coordinates: never taken for a duplicate


def test_a_payload_that_is_not_utf8_is_kept_with_replacement_characters():
    [row] = records([b'{"event_id": "\xff"}'])
    assert row["kind"] == DEAD_LETTER and row["raw"] == '{"event_id": "\ufffd"}'


def test_an_event_up_to_the_allowed_skew_ahead_of_the_broker_clock_is_valid():
    [row] = records([with_changes(event_time="2026-11-28T12:59:59.999Z")])
    assert row["kind"] == EVENT


def test_a_null_payload_is_a_dead_letter_not_a_crash():
    [row] = records([None])
    assert (row["kind"], row["reason"], row["raw"]) == (DEAD_LETTER, "not a JSON object", None)


def test_every_record_comes_out_exactly_once_in_order_and_the_tally_counts_the_events():
    payloads = [json.dumps(VALID), "garbage", with_changes(event_id="e-2"), with_changes(platform="fax"),
                json.dumps(VALID)]
    rows = classify(payloads)
    assert [r["offset"] for r in rows[:-1]] == [0, 1, 2, 3, 4]
    assert [r["kind"] for r in rows[:-1]] == [EVENT, DEAD_LETTER, EVENT, DEAD_LETTER, EVENT]
    assert rows[-1]["kind"] == TALLY and rows[-1]["tally"] == 3  # the repeated event counts: dedup comes later
    assert rows[0]["dedup_key"] == rows[4]["dedup_key"] == "ee-1"


def test_an_event_reaching_the_broker_after_the_allowed_lateness_is_late_not_malformed():
    on_time, late = records([with_changes(event_time="2026-11-28T11:58:00.001Z"),
                             with_changes(event_time="2026-11-28T11:57:59.999Z")])
    assert on_time["kind"] == EVENT   # 1 min 59.999 s after: in time
    assert late["kind"] == LATE and late["raw"] is not None and late["dedup_key"] == "r1:1"  # 2 min 0.001 s after


def test_a_malformed_record_is_never_also_late():
    [row] = records([with_changes(event_time="2020-01-01T00:00:00.000Z", platform="fax")])
    assert (row["kind"], row["reason"]) == (DEAD_LETTER, "unknown platform fax")


def test_an_event_id_cannot_pass_for_a_record_s_coordinates():
    [row] = records([with_changes(event_id="r1:0")])
    assert row["dedup_key"] == "er1:0"


def test_the_typed_fast_path_names_the_contracts_enumerations():
    import typing

    from contract.events import INTERACTION_TYPES, PLATFORMS
    from interactions.parsing import TypedEvent

    hints = typing.get_type_hints(TypedEvent)
    assert typing.get_args(hints["interaction_type"]) == INTERACTION_TYPES
    assert typing.get_args(hints["platform"]) == PLATFORMS
