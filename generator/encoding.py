"""Events as JSON text, built by string formatting (json.dumps per event would halve the generator's speed).

`check_event` is the independent reading side: it parses a payload with `json` and checks it against the contract
in `interactions.schema`, returning why it is not a valid event (or None). Tests use it as the oracle that valid
messages are valid and malformed ones really are malformed.
"""
from __future__ import annotations

import calendar
import json
import math
import re
import time

from interactions.schema import INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

# Field order follows the contract's example in interactions/schema.py. The event_id is formatted from its prefix
# and a counter, the event_time from its per-second prefix and the milliseconds: one % operation per event.
EVENT_TEMPLATE = ('{"event_id":"%s%012x","user_id":"%s","item_id":%s,"interaction_type":"%s","platform":"%s",'
                  '"session_id":"%s","event_time":"%s.%03dZ","price":%s,"quantity":%s,"country":"%s"}')
FIELDS: tuple[str, ...] = ("event_id", "user_id", "item_id", "interaction_type", "platform", "session_id",
                           "event_time", "price", "quantity", "country")


def second_prefix(second: int) -> str:
    """Epoch second -> '2026-11-28T04:50:01' (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class EventTimeFormatter:
    """Epoch seconds -> "2026-11-28T04:50:01.123Z" (UTC, milliseconds), caching the per-second prefix."""

    def __init__(self) -> None:
        self._prefixes: dict[int, str] = {}

    def __call__(self, t: float) -> str:
        millis = int(t * 1000.0 + 0.001)  # truncated; +1 µs so that x.001 * 1000 (inexact in binary) stays x001
        second, milli = divmod(millis, 1000)
        prefix = self._prefixes.get(second)
        if prefix is None:
            if len(self._prefixes) > 4096:
                self._prefixes.clear()
            prefix = self._prefixes[second] = second_prefix(second)
        return "%s.%03dZ" % (prefix, milli)


_EVENT_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$")


def parse_event_time(text: str) -> float:
    """'2026-11-28T04:50:01.123Z' -> epoch seconds; ValueError for anything else (the contract's strict format)."""
    match = _EVENT_TIME.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"event_time {text!r} is not ISO-8601 UTC with milliseconds")
    y, mo, d, h, mi, s, ms = (int(g) for g in match.groups())
    try:
        time.strptime(f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"event_time {text!r} is not a real date") from None
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms / 1000.0


def check_event(payload: str | bytes, now: float | None = None, max_future_skew: float = 3600.0) -> str | None:
    """Why `payload` breaks the event contract, or None if it is a valid event.

    With `now` (epoch seconds), an event time more than `max_future_skew` seconds ahead of it is a violation too.
    """
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(event, dict):
        return "not a JSON object"
    for name in REQUIRED_FIELDS:
        if event.get(name) is None:
            return f"missing required field {name}"
        if not isinstance(event[name], str) or not event[name]:
            return f"{name} must be a non-empty string, got {event[name]!r}"
    kind = event["interaction_type"]
    if kind not in INTERACTION_TYPES:
        return f"unknown interaction_type {kind!r}"
    if event["platform"] not in PLATFORMS:
        return f"unknown platform {event['platform']!r}"
    item = event.get("item_id")
    if kind in ITEM_INTERACTIONS:
        if item is None:
            return f"missing item_id on {kind}"
        if not isinstance(item, str) or not item:
            return f"item_id must be a non-empty string, got {item!r}"
    elif item is not None and not isinstance(item, str):
        return f"item_id must be a string or null, got {item!r}"
    price = event.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))
                              or not math.isfinite(price) or price <= 0):
        return f"price must be a number > 0 or null, got {price!r}"
    quantity = event.get("quantity")
    if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1):
        return f"quantity must be an integer >= 1 or null, got {quantity!r}"
    country = event.get("country")
    if country is not None and not (isinstance(country, str) and len(country) == 2 and country.isalpha()
                                    and country.isupper()):
        return f"country must be an ISO 3166 alpha-2 code or null, got {country!r}"
    try:
        event_time = parse_event_time(event["event_time"])
    except ValueError as exc:
        return str(exc)
    if now is not None and event_time > now + max_future_skew:
        return f"event_time {event['event_time']} is more than {max_future_skew:g} s in the future"
    return None

