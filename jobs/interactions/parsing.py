"""Kafka records -> classified records: a typed event, a late event, or a dead letter with the reason.

Pure Python over Arrow record batches (what `DataFrame.mapInArrow` hands a Python worker): no Spark, no I/O, so every
rule is tested on plain values. One output row per input record, in input order, plus one `tally` row per input
batch that counts the batch's countable events (the aggregation derives the duplicate count from it).

Validity depends on the record alone (its payload and broker timestamp), never on the clock, so a replayed
micro-batch, a backfill and the independent recomputation (ops.verify) classify every record the same way.
The property test holds this module to that oracle on arbitrary input, reason and lateness included.

Why Python and not Spark SQL: orjson and one pass of plain checks cost ~5 us of CPU per record; the Spark SQL version
it replaced (from_json twice, a 30-way CASE WHEN, regexes) costs several times more per record on the same machine
(bench/dataflow.py, variants classify and classify_sql).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa

from contract.events import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

EVENT, DEAD_LETTER, LATE, TALLY = "event", "dead_letter", "late", "tally"

# ISO-8601 with a literal Z or an offset, seconds with an optional fraction; anything else is a dead letter.
EVENT_TIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
TYPED_FIELDS = tuple(FIELD_TYPES.items())  # checked in the contract's order: the first wrong one is named
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1
_TYPES, _ITEM_TYPES, _PLATFORMS = frozenset(INTERACTION_TYPES), frozenset(ITEM_INTERACTIONS), frozenset(PLATFORMS)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

TIMESTAMP = pa.timestamp("us", tz="UTC")
# The archive's extra fields travel only when the archive is on (fewer columns through every later stage otherwise).
ARCHIVE_FIELDS = (("session_id", pa.string()), ("price", pa.float64()), ("quantity", pa.int64()),
                  ("country", pa.string()))


def record_schema(archive: bool) -> pa.Schema:
    """The columns of a classified record. `dedup_key` is the event id for events (prefixed, so no payload can
    collide with a record's coordinates) and the Kafka coordinates for everything else, which is never a duplicate."""
    fields = [("kind", pa.string()), ("dedup_key", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
              ("kafka_timestamp", TIMESTAMP), ("event_id", pa.string()), ("user_id", pa.string()),
              ("item_id", pa.string()), ("interaction_type", pa.string()), ("platform", pa.string()),
              ("event_time", TIMESTAMP), ("revenue", pa.float64()), ("raw", pa.string()), ("reason", pa.string()),
              ("tally", pa.int64())]
    return pa.schema(fields + (list(ARCHIVE_FIELDS) if archive else []))


def invalid_reason(event: Any, received_us: int, max_future_skew_us: int) -> tuple[str | None, int | None]:
    """(why the decoded payload is not a valid event or None, its event time in epoch microseconds when valid).

    The first rule that fails names the reason, in the contract's order (contract.validation lists them).
    """
    if type(event) is not dict:
        return "not a JSON object", None
    get: Callable[[str], Any] = event.get  # each value's type is checked below, in one expression
    event_id, user_id, kind, platform = get("event_id"), get("user_id"), get("interaction_type"), get("platform")
    time_text, item, price, quantity = get("event_time"), get("item_id"), get("price"), get("quantity")
    # the common case in one expression: every field present and of its type (the slow path below names the
    # first one that is not, in the contract's order)
    if not (type(event_id) is str and type(user_id) is str and type(kind) is str and type(platform) is str
            and type(get("session_id")) is str and type(time_text) is str and (item is None or type(item) is str)
            and (price is None or (type(price) is float and price - price == 0.0))  # finite (inf - inf is nan)
            and (quantity is None or (type(quantity) is int and LONG_MIN <= quantity <= LONG_MAX))
            and (get("country") is None or type(get("country")) is str)):
        reason = _missing_or_mistyped(event)
        if reason is not None:
            return reason, None
    if not event_id.strip():
        return "empty event_id", None
    if not user_id.strip():
        return "empty user_id", None
    if kind not in _TYPES:
        return f"unknown interaction_type {kind}", None
    if platform not in _PLATFORMS:
        return f"unknown platform {platform}", None
    if item is None and kind in _ITEM_TYPES:
        return "missing item_id for an item interaction", None
    when = event_time_micros(time_text)
    if when is None:
        return f"unparseable event_time {time_text}", None
    if when > received_us + max_future_skew_us:
        return "event_time too far in the future", None
    if price is not None and price < 0:
        return "negative price", None
    if quantity is not None and quantity < 1:
        return "quantity below 1", None
    return None, when


def _missing_or_mistyped(event: dict[str, Any]) -> str | None:
    for name in REQUIRED_FIELDS:
        if event.get(name) is None:
            return f"missing required field {name}"
    for name, kind in TYPED_FIELDS:
        value = event.get(name)
        if value is not None and not _typed(value, kind):
            return f"wrong type for field {name}"
    return None  # e.g. a price given as an integer: fine


def _typed(value: Any, kind: str) -> bool:
    cls = type(value)
    if kind == "string":
        return cls is str
    if kind == "long":  # a JSON integer in signed 64 bits (a bool is not a number)
        return cls is int and LONG_MIN <= value <= LONG_MAX
    if cls is float:  # a double: finite
        return math.isfinite(value)
    if cls is int:  # an integer a double can hold
        try:
            return math.isfinite(float(value))
        except OverflowError:
            return False
    return False


_SECONDS: dict[str, int | None] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch seconds (None: not a real time)


def event_time_micros(text: str) -> int | None:
    """Epoch microseconds of a strict ISO-8601 time with a zone (fractions beyond microseconds are cut), or None.

    The generator's shape ("...T04:50:01.123Z") is read from a per-second cache; anything else the long way."""
    if len(text) == 24 and text[23] == "Z" and text[19] == "." and text[20:23].isdigit():
        second = _SECONDS.get(text[:19], -1)
        if second == -1:
            if len(_SECONDS) > 100_000:
                _SECONDS.clear()
            whole = _parse_micros(text[:19] + "Z")
            second = _SECONDS[text[:19]] = None if whole is None else whole // 1_000_000
        return None if second is None else second * 1_000_000 + int(text[20:23]) * 1000
    return _parse_micros(text)


def _parse_micros(text: str) -> int | None:
    if not EVENT_TIME_PATTERN.match(text):
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when - _EPOCH) // _MICROSECOND


def decode(payload: bytes | None) -> Any:
    """The payload as JSON, or None when it is not JSON. RFC 8259: NaN and Infinity are not numbers; text that is not
    UTF-8 is read with replacement characters (as the raw payload is stored)."""
    if payload is None:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses what the standard library may still read: invalid UTF-8 (replaced, as everywhere else), and
    # numbers a double cannot hold (the rules then name the field). NaN / Infinity stay refused.
    try:
        value = json.loads(payload.decode("utf-8", "replace"), parse_constant=_refuse)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate (a \ud800 escape) is not text
        return value
    except (ValueError, UnicodeError):
        return None


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def classify_batches(topic: str, max_future_skew_s: float, allowed_lateness_s: float, archive: bool
                     ) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The mapInArrow function: Kafka source batches (value, partition, offset, timestamp) -> classified records.

    `late` marks valid events that reached the broker more than the allowed lateness after they happened (event time
    < broker timestamp - lateness): measured against the record's own broker timestamp, lateness is a property of
    the record, not of micro-batch boundaries.
    """
    schema = record_schema(archive)
    skew_us, lateness_us = int(max_future_skew_s * 1e6), int(allowed_lateness_s * 1e6)

    def classify(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield classify_batch(batch, topic, skew_us, lateness_us, schema)

    return classify


def classify_batch(batch: pa.RecordBatch, topic: str, skew_us: int, lateness_us: int,
                   schema: pa.Schema) -> pa.RecordBatch:
    if batch.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)
    payloads = batch.column("value").to_pylist()
    partitions = batch.column("partition").to_pylist()
    offsets = batch.column("offset").to_pylist()
    received = batch.column("timestamp").cast(pa.int64()).to_pylist()  # microseconds
    n = len(payloads)
    archive = "session_id" in schema.names
    columns: dict[str, list[Any]] = {name: [None] * (n + 1) for name in schema.names}
    kinds, keys, ids, users, items = (columns[c] for c in ("kind", "dedup_key", "event_id", "user_id", "item_id"))
    types, platforms, times, revenues = (columns[c] for c in ("interaction_type", "platform", "event_time", "revenue"))
    raws, reasons = columns["raw"], columns["reason"]
    counted = 0
    for i in range(n):
        payload = payloads[i]
        event = decode(payload)
        reason, when = invalid_reason(event, received[i], skew_us)
        if reason is not None:
            kinds[i], keys[i], reasons[i] = DEAD_LETTER, f"r{partitions[i]}:{offsets[i]}", reason
            raws[i] = payload.decode("utf-8", "replace") if payload is not None else None
            continue
        kind = event["interaction_type"]
        ids[i], users[i], items[i], types[i] = event["event_id"], event["user_id"], event.get("item_id"), kind
        platforms[i], times[i] = event["platform"], when
        price, quantity = event.get("price"), event.get("quantity")
        revenues[i] = ((0.0 if price is None else float(price)) * (1 if quantity is None else quantity)
                       if kind == "purchase" else 0.0)
        if archive:
            columns["session_id"][i], columns["country"][i] = event["session_id"], event.get("country")
            columns["price"][i], columns["quantity"][i] = None if price is None else float(price), quantity
        if when < received[i] - lateness_us:
            kinds[i], keys[i] = LATE, f"r{partitions[i]}:{offsets[i]}"
            raws[i] = payload.decode("utf-8", "replace")
        else:
            kinds[i], keys[i] = EVENT, "e" + event["event_id"]
            counted += 1
    for name, values in (("partition", partitions), ("offset", offsets), ("kafka_timestamp", received)):
        columns[name][:n] = values
    # the tally row: how many countable events this batch held, duplicates included (unique key, no event); it
    # carries the batch's newest broker time, so it is kept or dropped by the watermark with the batch's records
    kinds[n], columns["tally"][n], keys[n] = TALLY, counted, f"t{partitions[0]}:{offsets[0]}"
    columns["partition"][n], columns["offset"][n], columns["kafka_timestamp"][n] = \
        partitions[0], offsets[0], max(received)
    return pa.RecordBatch.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
