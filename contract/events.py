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
"""
from __future__ import annotations

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
