"""Malformed messages: each one breaks the event contract in exactly one, labelled way.

The job must dead-letter every one of them; the generator's tests confirm with the contract's reference validator
(`contract.validation.invalid_reason`) that each really is malformed.
"""
from __future__ import annotations

import json
import random
from typing import Any

from contract.events import REQUIRED_FIELDS

DEFECTS: tuple[str, ...] = ("broken_json", "missing_field", "wrong_type", "unknown_type", "future_time")
UNKNOWN_TYPES: tuple[str, ...] = ("hover", "share", "wishlist", "refund", "")
FUTURE_MIN_S, FUTURE_MAX_S = 86_400.0, 30 * 86_400.0  # far beyond any sane max_future_skew


def corrupt(event: dict[str, Any], defect: str, rng: random.Random,
            format_time: Any, base_time: float) -> str:
    """Serialize `event` (a valid event as a dict) with the given defect; returns the payload text."""
    event = dict(event)
    if defect == "broken_json":
        text = json.dumps(event, separators=(",", ":"))
        # Any proper prefix of a JSON object is invalid JSON; cut somewhere in the body.
        return text[:rng.randrange(1, len(text) - 1)]
    if defect == "missing_field":
        candidates = list(REQUIRED_FIELDS)
        if event.get("item_id") is not None:
            candidates.append("item_id")
        name = rng.choice(candidates)
        if rng.random() < 0.5:
            del event[name]
        else:
            event[name] = None
    elif defect == "wrong_type":
        # Only type errors on required fields: a schema-driven reader (Spark's from_json) turns a wrong-typed
        # optional field into null, which would be indistinguishable from a valid event without it.
        variant = rng.randrange(3)
        if variant == 0:
            event["event_time"] = int(base_time * 1000)  # epoch millis instead of ISO text
        elif variant == 1:
            event["interaction_type"] = rng.randrange(len(UNKNOWN_TYPES), 100)  # a number, not a type name
        else:
            event["platform"] = True
    elif defect == "unknown_type":
        event["interaction_type"] = rng.choice(UNKNOWN_TYPES)
    elif defect == "future_time":
        event["event_time"] = format_time(base_time + rng.uniform(FUTURE_MIN_S, FUTURE_MAX_S))
    else:
        raise ValueError(f"unknown defect {defect!r}")
    return json.dumps(event, separators=(",", ":"))
