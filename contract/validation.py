"""The reference validator: what a record's payload must be to count as an event, and why it does not.

Plain standard-library Python, written for clarity, not speed. The streaming job has its own implementation
(interactions.parsing, built for throughput); the property test holds the two to the same reason and the same
lateness on arbitrary input, and the recomputation (verify) uses this one.

The rules, in order; the first that fails names the reason:

    not a JSON object                      not RFC 8259 JSON (NaN and Infinity are not numbers), or not an object
    missing required field <f>             absent or null: event_id, user_id, interaction_type, platform,
                                           session_id, event_time
    wrong type for field <f>               a string field that is not a string; price not a number a double holds
                                           (booleans are not numbers); quantity not an integer in signed 64 bits
    empty event_id / empty user_id         nothing but white space (any Unicode white space)
    unknown interaction_type <t>           not one of contract.events.INTERACTION_TYPES
    unknown platform <p>                   not one of contract.events.PLATFORMS
    missing item_id for an item interaction
    unparseable event_time <t>             not YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), or not a real time
    event_time too far in the future       more than the allowed skew after the record's broker timestamp
    negative price                         price < 0
    quantity below 1                       quantity < 1

A valid event is *late* when it reached the broker more than the allowed lateness after its event time.
Payload bytes that are not UTF-8 are read with replacement characters (as the stored raw payload shows them).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from contract.events import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

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


def event_time(text: str) -> dt.datetime | None:
    """The event time as an aware UTC datetime, or None when it breaks the format (microsecond precision)."""
    if not TIME_FORMAT.match(text):
        return None
    try:
        return dt.datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def invalid_reason(raw: str | None, received: dt.datetime, max_future_skew: dt.timedelta) -> str | None:
    """Why the payload is not a valid event, or None when it is one."""
    event = read_event(raw)
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
    if event["interaction_type"] not in INTERACTION_TYPES:
        return f"unknown interaction_type {event['interaction_type']}"
    if event["platform"] not in PLATFORMS:
        return f"unknown platform {event['platform']}"
    if event["interaction_type"] in ITEM_INTERACTIONS and event.get("item_id") is None:
        return "missing item_id for an item interaction"
    when = event_time(event["event_time"])
    if when is None:
        return f"unparseable event_time {event['event_time']}"
    if when > received + max_future_skew:
        return "event_time too far in the future"
    if event.get("price") is not None and event["price"] < 0:
        return "negative price"
    if event.get("quantity") is not None and event["quantity"] < 1:
        return "quantity below 1"
    return None


def is_late(raw: str, received: dt.datetime, allowed_lateness: dt.timedelta) -> bool:
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
