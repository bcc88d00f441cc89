"""Time as the contract states it: instants in UTC, windows aligned to the Unix epoch.

Every reader of events and of the documents built from them (the job's sinks and alert rules, the recomputation,
configuration and command-line flags) parses and floors times through these three functions.
"""
from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def as_utc(when: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one (as a MongoDB client without tz_aware returns) is taken to be UTC."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def floor(when: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The start of the epoch-aligned window of length `step` holding `when` (a minute, an hour, a UTC day)."""
    return EPOCH + ((as_utc(when) - EPOCH) // step) * step


def parse_instant(text: str) -> dt.datetime:
    """ISO-8601 ("2026-11-28T04:50:01Z", "...+01:00", or no offset, read as UTC) as an aware UTC datetime.

    Raises ValueError for anything else. This is the lenient reading for flags and configuration; an event's own
    event_time is held to the contract's stricter format by `contract.validation.event_time`.
    """
    return as_utc(dt.datetime.fromisoformat(text.strip()))
