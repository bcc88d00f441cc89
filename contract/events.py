"""The contract of one user-interaction event, as the generator writes it and the job reads it.

One JSON object per Kafka message, keyed by user_id:

    {"event_id": "3f0c...", "user_id": "u000042", "item_id": "i01337", "interaction_type": "view",
     "platform": "ios", "session_id": "s9a1...", "event_time": "2026-11-28T04:50:01.123Z",
     "price": null, "quantity": null, "country": "DE"}

Required (non-null): event_id, user_id, interaction_type, platform, session_id, event_time, and item_id for the
item interactions (view, click, scroll, add_to_cart, purchase; login and logout carry item_id null).
Optional: price (finite number, >= 0, on add_to_cart and purchase), quantity (int >= 1, same),
country (ISO 3166 alpha-2).
event_time is ISO-8601 in UTC with milliseconds. Revenue of a purchase is price * quantity (quantity defaults to 1).

Bounds (BOUNDS below), so that any record a producer can send is classified without a crash and every document built
from it is one MongoDB stores and every BSON reader decodes: a payload's size and nesting, an id's length, price and
quantity (no event and no sum shown can overflow a double), event and broker times (from the Unix epoch to the end of
year 9999 in UTC, after the offset, with room for the day window that holds them).
"""
from __future__ import annotations

import datetime as dt

INTERACTION_TYPES: tuple[str, ...] = ("login", "logout", "view", "click", "scroll", "add_to_cart", "purchase")
ITEM_INTERACTIONS: frozenset[str] = frozenset({"view", "click", "scroll", "add_to_cart", "purchase"})
PLATFORMS: tuple[str, ...] = ("web", "ios", "android")

REQUIRED_FIELDS: tuple[str, ...] = (
    "event_id", "user_id", "interaction_type", "platform", "session_id", "event_time")

# Field -> JSON type, in the order of the example above. event_time is a string, parsed strictly, so that a bad
# timestamp becomes a dead letter with a reason instead of a silent null. "long" is a signed 64-bit integer, "double"
# a finite IEEE double.
FIELD_TYPES: dict[str, str] = {
    "event_id": "string", "user_id": "string", "item_id": "string", "interaction_type": "string",
    "platform": "string", "session_id": "string", "event_time": "string", "price": "double", "quantity": "long",
    "country": "string",
}


# ---- bounds: a record outside them is a dead letter with the reason naming the bound ----------------------------
MAX_PAYLOAD_BYTES = 1_000_000  # Kafka's default max.message.bytes is 1 MiB; an event is ~250 bytes
MAX_NESTING = 64               # [ and { levels; an event is one flat object (depth 1)
MAX_ID_LENGTH = 128            # characters of event_id, user_id, item_id, session_id (a UUID has 36)
ID_FIELDS: tuple[str, ...] = ("event_id", "user_id", "item_id", "session_id")
MAX_PRICE = 1e9                # a purchase's revenue is at most 1e15; 2^63 of them still sum to a finite double
MAX_QUANTITY = 1_000_000
# Event and broker times, in UTC after the offset: from the Unix epoch to the last day of year 9999 (exclusive), so
# that the day window holding any of them ends within year 9999 and every date written is one a BSON reader decodes.
# (Before 1582 Java's calendar and Python's disagree: the JVM's writers store such a date days off, year 1 as year 0,
# which Python readers refuse. No interaction this pipeline counts happened before 1970.)
EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)  # exclusive
SHOWN_VALUE_CHARS = 64         # a reason quotes at most this much of the value it names ("unknown platform ...")


def shown(value: str) -> str:
    """A value as a reason quotes it: whole when short, else its first SHOWN_VALUE_CHARS characters and an ellipsis."""
    return value if len(value) <= SHOWN_VALUE_CHARS else value[:SHOWN_VALUE_CHARS] + "\u2026"
