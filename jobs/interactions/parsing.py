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
from typing import Annotated, Any, Literal

import msgspec
import orjson
import pyarrow as pa

from contract.events import (
    EARLIEST_TIME,
    FIELD_TYPES,
    INTERACTION_TYPES,
    ITEM_INTERACTIONS,
    LATEST_TIME,
    MAX_ID_LENGTH,
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    MAX_PRICE,
    MAX_QUANTITY,
    PLATFORMS,
    REQUIRED_FIELDS,
    shown,
)

EVENT, DEAD_LETTER, LATE, TALLY = "event", "dead_letter", "late", "tally"

# ISO-8601 with a literal Z or an offset, seconds with an optional fraction; anything else is a dead letter.
EVENT_TIME_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
TYPED_FIELDS = tuple(FIELD_TYPES.items())  # checked in the contract's order: the first wrong one is named
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1
_TYPES, _ITEM_TYPES, _PLATFORMS = frozenset(INTERACTION_TYPES), frozenset(ITEM_INTERACTIONS), frozenset(PLATFORMS)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
EARLIEST_US, LATEST_US = ((t - _EPOCH) // _MICROSECOND for t in (EARLIEST_TIME, LATEST_TIME))
# JSON strings (an unterminated one runs to the end), to find the brackets outside them
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
UNEXPECTED = "unexpected error classifying the record: "  # the last-resort guard's reason, then the error's class

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
    if (len(event_id) > MAX_ID_LENGTH or len(user_id) > MAX_ID_LENGTH or len(get("session_id")) > MAX_ID_LENGTH
            or (item is not None and len(item) > MAX_ID_LENGTH)):
        return _too_long(event), None
    if kind not in _TYPES:
        return f"unknown interaction_type {shown(kind)}", None
    if platform not in _PLATFORMS:
        return f"unknown platform {shown(platform)}", None
    if item is None and kind in _ITEM_TYPES:
        return "missing item_id for an item interaction", None
    when = event_time_micros(time_text)
    if when is None:
        return f"unparseable event_time {shown(time_text)}", None
    if not EARLIEST_US <= when < LATEST_US:
        return "event_time out of range", None
    if when > received_us + max_future_skew_us:
        return "event_time too far in the future", None
    if price is not None and price < 0:
        return "negative price", None
    if price is not None and price > MAX_PRICE:
        return f"price above {MAX_PRICE:.0f}", None
    if quantity is not None and quantity < 1:
        return "quantity below 1", None
    if quantity is not None and quantity > MAX_QUANTITY:
        return f"quantity above {MAX_QUANTITY}", None
    return None, when


def _too_long(event: dict[str, Any]) -> str:
    name = next(n for n in ("event_id", "user_id", "item_id", "session_id")
                if event.get(n) is not None and len(event[n]) > MAX_ID_LENGTH)
    return f"{name} longer than {MAX_ID_LENGTH} characters"


def nesting_depth(payload: bytes) -> int:
    """The deepest level of [ and { outside JSON strings (a closer without its opener counts down)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub(b"", payload)):
        if bracket in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def payload_reason(payload: bytes | None, received_us: int) -> str | None:
    """Why the record is refused before its payload is parsed (its broker time, its size, its nesting), or None.
    Nesting is only measured when the payload holds more brackets than the bound: never for an ordinary event."""
    if not EARLIEST_US <= received_us < LATEST_US:
        return "broker timestamp out of range"
    if payload is None:
        return "not a JSON object"
    if len(payload) > MAX_PAYLOAD_BYTES:
        return f"payload larger than {MAX_PAYLOAD_BYTES} bytes"
    if payload.count(b"[") + payload.count(b"{") > MAX_NESTING and nesting_depth(payload) > MAX_NESTING:
        return f"JSON nested deeper than {MAX_NESTING} levels"
    return None


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


Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]


class TypedEvent(msgspec.Struct):
    """The contract's types, enumerations and bounds, checked while the JSON is decoded (msgspec, in C): what decodes
    into it breaks none of those rules; what does not is judged field by field (invalid_reason) for its reason."""

    event_id: Id
    user_id: Id
    interaction_type: Literal["login", "logout", "view", "click", "scroll", "add_to_cart", "purchase"]
    platform: Literal["web", "ios", "android"]
    session_id: Id
    event_time: str
    item_id: Id | None = None
    price: Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)] | None = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY)] | None = None
    country: str | None = None


_decode_typed = msgspec.json.Decoder(TypedEvent).decode
Fields = tuple[str, str, str | None, str, str, str, Any, Any, Any]  # id, user, item, type, platform, session, ...


def classify_record(payload: bytes | None, received_us: int, skew_us: int, lateness_us: int
                    ) -> tuple[str, str | None, Fields | None, int | None]:
    """(EVENT, LATE or DEAD_LETTER, the reason of a dead letter, the event's fields (event_id, user_id, item_id,
    interaction_type, platform, session_id, price, quantity, country), its event time in epoch microseconds).

    The common case decodes straight into TypedEvent; the rest (malformed records, and the valid ones it cannot
    take, such as a price written as a huge integer) are decoded and judged rule by rule."""
    reason = payload_reason(payload, received_us)
    if reason is not None or payload is None:
        return DEAD_LETTER, reason, None, None
    try:
        typed = _decode_typed(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        event = decode(payload)
        reason, when = invalid_reason(event, received_us, skew_us)
        if reason is not None or when is None:
            return DEAD_LETTER, reason, None, None
        fields: Fields = (event["event_id"], event["user_id"], event.get("item_id"), event["interaction_type"],
                          event["platform"], event["session_id"], event.get("price"), event.get("quantity"),
                          event.get("country"))
    else:
        reason, when = _remaining_reason(typed, received_us, skew_us)
        if reason is not None or when is None:
            return DEAD_LETTER, reason, None, None
        fields = (typed.event_id, typed.user_id, typed.item_id, typed.interaction_type, typed.platform,
                  typed.session_id, typed.price, typed.quantity, typed.country)
    return (LATE if when < received_us - lateness_us else EVENT), None, fields, when


def _remaining_reason(event: TypedEvent, received_us: int, skew_us: int) -> tuple[str | None, int | None]:
    """The rules TypedEvent does not check, in the contract's order: empty ids, the item of an item interaction,
    the event time."""
    if not event.event_id.strip():
        return "empty event_id", None
    if not event.user_id.strip():
        return "empty user_id", None
    if event.item_id is None and event.interaction_type in _ITEM_TYPES:
        return "missing item_id for an item interaction", None
    when = event_time_micros(event.event_time)
    if when is None:
        return f"unparseable event_time {shown(event.event_time)}", None
    if not EARLIEST_US <= when < LATEST_US:
        return "event_time out of range", None
    if when > received_us + skew_us:
        return "event_time too far in the future", None
    return None, when


def stored_payload(payload: bytes | None) -> str | None:
    """The payload as a set-aside document keeps it: text (invalid UTF-8 replaced), at most MAX_PAYLOAD_BYTES of it
    (an oversized record's reason says so; Kafka keeps the whole record at its coordinates while retained)."""
    if payload is None:
        return None
    return payload[:MAX_PAYLOAD_BYTES].decode("utf-8", "replace")


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
        try:
            kind, reason, fields, when = classify_record(payload, received[i], skew_us, lateness_us)
        # the last-resort guard: a rule that raises on some input sets that record aside, named, and the stream goes
        # on (the property test holds that no input reaches it); writes are outside it and fail the batch as before
        except Exception as exc:  # noqa: BLE001 (any failure of a rule, on one record)
            kind, reason, fields, when = DEAD_LETTER, UNEXPECTED + type(exc).__name__, None, None
        if fields is None:
            kinds[i], keys[i], reasons[i] = DEAD_LETTER, f"r{partitions[i]}:{offsets[i]}", reason
            raws[i] = stored_payload(payload)
            continue
        event_id, user, item, event_type, platform, session, price, quantity, country = fields
        ids[i], users[i], items[i], types[i], platforms[i], times[i] = event_id, user, item, event_type, platform, when
        revenues[i] = ((0.0 if price is None else float(price)) * (1 if quantity is None else quantity)
                       if event_type == "purchase" else 0.0)
        if archive:
            columns["session_id"][i], columns["country"][i] = session, country
            columns["price"][i], columns["quantity"][i] = None if price is None else float(price), quantity
        if kind == LATE:
            kinds[i], keys[i] = LATE, f"r{partitions[i]}:{offsets[i]}"
            raws[i] = stored_payload(payload)
        else:
            kinds[i], keys[i] = EVENT, "e" + event_id
            counted += 1
    for name, values in (("partition", partitions), ("offset", offsets), ("kafka_timestamp", received)):
        columns[name][:n] = values
    # the tally row: how many countable events this batch held, duplicates included (unique key, no event); it
    # carries the batch's newest broker time, so it is kept or dropped by the watermark with the batch's records
    kinds[n], columns["tally"][n], keys[n] = TALLY, counted, f"t{partitions[0]}:{offsets[0]}"
    columns["partition"][n], columns["offset"][n], columns["kafka_timestamp"][n] = \
        partitions[0], offsets[0], max(received)
    return pa.RecordBatch.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
