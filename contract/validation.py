"""The reference validator: what a record's payload must be to count as an event, and why it does not.

Plain standard-library Python, written for clarity, not speed. The streaming job has its own implementation
(interactions.parsing, built for throughput); the property test holds the two to the same reason and the same
lateness on arbitrary input, and the recomputation (verify) uses this one.

The rules, in order; the first that fails names the reason (bounds from contract.events):

    broker timestamp out of range          the record's broker time is not in [EARLIEST_TIME, LATEST_TIME): 1970-9999
    not a JSON object                      no payload (a tombstone)
    payload larger than <n> bytes          more than MAX_PAYLOAD_BYTES (checked before it is parsed)
    JSON nested deeper than <n> levels     more than MAX_NESTING levels of [ and { outside strings (checked before
                                           it is parsed, on the text, whether or not it is valid JSON)
    not a JSON object                      not RFC 8259 JSON (NaN and Infinity are not numbers), or not an object
    missing required field <f>             absent or null: event_id, user_id, interaction_type, platform,
                                           session_id, event_time
    wrong type for field <f>               a string field that is not a string; price not a number a double holds
                                           (booleans are not numbers); quantity not an integer in signed 64 bits
    empty event_id / empty user_id         nothing but white space (any Unicode white space)
    <f> longer than <n> characters         event_id, user_id, item_id, session_id: more than MAX_ID_LENGTH
    unknown interaction_type <t>           not one of contract.events.INTERACTION_TYPES
    unknown platform <p>                   not one of contract.events.PLATFORMS
    missing item_id for an item interaction
    unparseable event_time <t>             not YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), or not a real time
    event_time out of range                in UTC, after the offset, not in [EARLIEST_TIME, LATEST_TIME): 1970-9999
    event_time too far in the future       more than the allowed skew after the record's broker timestamp
    negative price / price above <n>       price < 0, or > MAX_PRICE
    quantity below 1 / quantity above <n>  quantity < 1, or > MAX_QUANTITY

A reason quotes at most SHOWN_VALUE_CHARS characters of the value it names (contract.events.shown).
A valid event is *late* when it reached the broker more than the allowed lateness after its event time.
Payload bytes that are not UTF-8 are read with replacement characters (as the stored raw payload shows them); the
size bound counts the bytes as they were sent.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from contract.events import (
    EARLIEST_TIME,
    FIELD_TYPES,
    ID_FIELDS,
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

UTC = dt.UTC
TIME_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
LONG_RANGE = range(-(2 ** 63), 2 ** 63)


def payload_text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


def read_event(raw: str | None) -> Any:
    """The payload as JSON, or None when it is not RFC 8259 JSON (or holds text that is not Unicode)."""
    if raw is None:
        return None

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        event = json.loads(raw, parse_constant=no_constants)
        json.dumps(event, ensure_ascii=False).encode("utf-8")  # a lone surrogate (a \ud800 escape) is not text
    except (ValueError, UnicodeError):
        return None
    return event


def nesting_depth(text: str) -> int:
    """The deepest level of [ and { outside JSON strings (a closer without its opener counts down, below 0 too)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def event_time(text: str) -> dt.datetime | None:
    """The event time as an aware UTC datetime, or None when it breaks the format (microsecond precision) or has
    no UTC instant a datetime holds (year 1 with a positive offset, year 9999 with a negative one)."""
    local = _local_time(text)
    try:
        return None if local is None else local.astimezone(UTC)
    except OverflowError:
        return None


def _local_time(text: str) -> dt.datetime | None:
    """The time as written, with its offset, or None when it breaks the format or is not a real time."""
    if not TIME_FORMAT.match(text):
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def invalid_reason(raw: bytes | str | None, received: dt.datetime | None, max_future_skew: dt.timedelta, *,
                   size: int | None = None) -> str | None:
    """Why the payload is not a valid event, or None when it is one. `raw` is the payload as sent (bytes) or as
    text; `received` its broker timestamp (None: not a time a datetime holds); `size` the payload's length in bytes
    as sent, where `raw` is text read with replacement characters (by default the length of `raw` in UTF-8)."""
    if received is None or not EARLIEST_TIME <= received < LATEST_TIME:
        return "broker timestamp out of range"
    if raw is None:
        return "not a JSON object"
    if size is None:
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        return f"payload larger than {MAX_PAYLOAD_BYTES} bytes"
    text = payload_text(raw)
    assert text is not None
    brackets = text.count("[") + text.count("{")  # fewer brackets than the bound cannot nest deeper than it
    if brackets > MAX_NESTING and nesting_depth(text) > MAX_NESTING:
        return f"JSON nested deeper than {MAX_NESTING} levels"
    event = read_event(text)
    if not isinstance(event, dict):
        return "not a JSON object"
    for name in REQUIRED_FIELDS:
        if event.get(name) is None:
            return f"missing required field {name}"
    for name, kind in FIELD_TYPES.items():
        value = event.get(name)
        if value is not None and not _has_type(value, kind):
            return f"wrong type for field {name}"
    for name in ("event_id", "user_id"):
        if not event[name].strip():
            return f"empty {name}"
    for name in ID_FIELDS:
        if event.get(name) is not None and len(event[name]) > MAX_ID_LENGTH:
            return f"{name} longer than {MAX_ID_LENGTH} characters"
    if event["interaction_type"] not in INTERACTION_TYPES:
        return f"unknown interaction_type {shown(event['interaction_type'])}"
    if event["platform"] not in PLATFORMS:
        return f"unknown platform {shown(event['platform'])}"
    if event["interaction_type"] in ITEM_INTERACTIONS and event.get("item_id") is None:
        return "missing item_id for an item interaction"
    local = _local_time(event["event_time"])
    if local is None:
        return f"unparseable event_time {shown(event['event_time'])}"
    when = event_time(event["event_time"])
    if when is None or not EARLIEST_TIME <= when < LATEST_TIME:
        return "event_time out of range"
    if when > received + max_future_skew:
        return "event_time too far in the future"
    price, quantity = event.get("price"), event.get("quantity")
    if price is not None and price < 0:
        return "negative price"
    if price is not None and price > MAX_PRICE:
        return f"price above {MAX_PRICE:.0f}"
    if quantity is not None and quantity < 1:
        return "quantity below 1"
    if quantity is not None and quantity > MAX_QUANTITY:
        return f"quantity above {MAX_QUANTITY}"
    return None


def is_late(raw: bytes | str, received: dt.datetime, allowed_lateness: dt.timedelta) -> bool:
    """For a valid event: did it reach the broker more than the allowed lateness after its event time?"""
    when = event_time(json.loads(raw)["event_time"])
    assert when is not None, "is_late is for valid events"
    return when < received - allowed_lateness


def _has_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "string":
        return isinstance(value, str)
    if kind == "long":
        return isinstance(value, int) and value in LONG_RANGE
    if kind == "double":
        if isinstance(value, int):
            try:
                return math.isfinite(float(value))
            except OverflowError:
                return False
        return isinstance(value, float) and math.isfinite(value)
    raise ValueError(f"unknown contract type {kind}")
