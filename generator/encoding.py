"""Events as JSON text, built by string formatting (json.dumps per event would halve the generator's speed).

Whether a payload is a valid event is the contract's question, answered by `contract.validation.invalid_reason`
(the generator's tests hold its output to that validator).
"""
from __future__ import annotations

import time

# Field order follows the contract's example in contract/events.py. The event_id is formatted from its prefix
# and a counter, the event_time from its per-second prefix and the milliseconds: one % operation per event.
EVENT_TEMPLATE = ('{"event_id":"%s%012x","user_id":"%s","item_id":%s,"interaction_type":"%s","platform":"%s",'
                  '"session_id":"%s","event_time":"%s.%03dZ","price":%s,"quantity":%s,"country":"%s"}')
MAX_CACHED_SECONDS = 4096  # per-second prefixes kept before the cache starts over


def second_prefix(second: int) -> str:
    """Epoch second -> '2026-11-28T04:50:01' (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class SecondPrefixes(dict[int, str]):
    """Epoch second -> its `second_prefix`, formatted on first use: `prefixes[second]` costs one dict lookup.

    A stream's event times stay within a few seconds of each other, so the cache hits on almost every event; it
    starts over once it holds MAX_CACHED_SECONDS entries.
    """

    def __missing__(self, second: int) -> str:
        if len(self) > MAX_CACHED_SECONDS:
            self.clear()
        prefix = self[second] = second_prefix(second)
        return prefix


class EventTimeFormatter:
    """Epoch seconds -> "2026-11-28T04:50:01.123Z" (UTC, milliseconds), caching the per-second prefix."""

    def __init__(self) -> None:
        self._prefixes = SecondPrefixes()

    def __call__(self, t: float) -> str:
        millis = int(t * 1000.0 + 0.001)  # truncated; +1 µs so that x.001 * 1000 (inexact in binary) stays x001
        second, milli = divmod(millis, 1000)
        return "%s.%03dZ" % (self._prefixes[second], milli)
