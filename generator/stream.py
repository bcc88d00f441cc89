"""The message stream of one producer process: sessions + fault injection + serialization, no Kafka.

Given the same settings (seed included), process index and process count, the stream yields the same messages in
the same order; only event times differ between runs, unless `start_time` pins them too.
"""
from __future__ import annotations

import json
import random
import time
from typing import NamedTuple

from contract.events import ITEM_INTERACTIONS, PLATFORMS
from generator.catalog import Catalog
from generator.encoding import EVENT_TEMPLATE, EventTimeFormatter, SecondPrefixes
from generator.faults import DEFECTS, corrupt
from generator.pacing import Schedule
from generator.sessions import NO_ITEM, SessionPool
from generator.settings import StreamSettings

KINDS: tuple[str, ...] = ("valid", "duplicate", "late", "malformed")
DUPLICATE_HISTORY = 512  # duplicates resend one of the last this-many valid messages

Row = tuple[str, str, str, str | None]  # (kind, key, payload, defect): the fields of a Message, unnamed


class Message(NamedTuple):
    kind: str            # valid | duplicate | late | malformed
    key: str             # the Kafka message key: the event's user_id
    payload: str         # the Kafka message value: JSON text (not JSON at all for some malformed messages)
    defect: str | None   # for malformed messages: which rule is broken (see generator.faults.DEFECTS)


class MessageStream:
    """Produces messages in batches: `take(n)` returns n (kind, key, payload, defect) tuples."""

    def __init__(self, settings: StreamSettings, process_index: int = 0, processes: int = 1) -> None:
        settings.validate()
        if not settings.seed:
            raise ValueError("MessageStream needs a resolved seed (StreamSettings.resolved())")
        self.settings = settings
        self.process_index = process_index
        self.processes = processes
        self.catalog = Catalog(settings.users, settings.items, settings.zipf, settings.seed)
        rng = random.Random(f"stream/{settings.seed}/{process_index}/{processes}")
        self._rng = rng
        self._random = rng.random
        id_bits = rng.getrandbits(64)
        # event_id: a UUID-shaped string, random (seeded) prefix per process + a counter: unique and reproducible.
        self._id_prefix = "%08x-%04x-4%03x-%04x-" % (id_bits >> 32, (id_bits >> 16) & 0xFFFF, (id_bits >> 4) & 0xFFF,
                                                    0x8000 | rng.getrandbits(14))
        self.sessions = SessionPool(settings, self.catalog, rng, session_prefix="s%012x" % rng.getrandbits(48),
                                    process_index=process_index, processes=processes)
        self._format_time = EventTimeFormatter()  # for the rare slow paths (malformed events)
        self._time_prefixes = SecondPrefixes()
        self._count = 0  # messages taken so far
        self._history: list[tuple[str, str]] = []
        self._history_next = 0
        self._keep_history = settings.duplicate_ratio > 0
        self._malformed_below = settings.malformed_ratio
        self._duplicate_below = self._malformed_below + settings.duplicate_ratio
        self._late_below = self._duplicate_below + settings.late_ratio
        self._pinned: Schedule | None = None  # with a start time: the schedule that gives each event its time
        self._time_offset = 0.0
        if settings.start_time is not None:
            # This process sends every processes-th slot of the run's schedule, offset by its index.
            self._pinned = Schedule(settings.rate / processes, settings.bursts)
            self._time_offset = settings.start_time + process_index / settings.rate
        # JSON literals by index, for the hot loop: NO_ITEM (-1) reads the trailing null of the item ids.
        self._item_json = [*self.catalog.item_json, "null"]
        self._quantity_json = ["null"] + [str(q) for q in range(1, 101)]

    @property
    def taken(self) -> int:
        return self._count

    def take(self, n: int, now: float | None = None) -> list[Row]:
        """The next n messages. `now` (epoch seconds) is the wall clock for unpinned event times."""
        # The hot loop of the generator: locals only, one % format per event, no per-event function calls beyond
        # the session step and random(). Malformed messages and duplicates take the slow path (`_fault`).
        out: list[Row] = []
        append, random_, next_event = out.append, self._random, self.sessions.next_event
        prefixes, item_json, item_price = self._time_prefixes, self._item_json, self.catalog.item_price
        quantity_json, id_prefix, history = self._quantity_json, self._id_prefix, self._history
        jitter, late_by, keep_history = self.settings.jitter, self.settings.late_by, self._keep_history
        fault_below, late_below = self._duplicate_below, self._late_below
        pinned, time_offset, count = self._pinned, self._time_offset, self._count
        base = time.time() if now is None else now
        for _ in range(n):
            if pinned is not None:
                base = time_offset + pinned.time_of(count)
            u = random_()
            if u < fault_below:
                fault = self._fault(u, count, base)
                if fault is not None:
                    append(fault)
                    count += 1
                    continue
            kind, item, quantity, session = next_event()
            late = fault_below <= u < late_below
            millis = int((base - jitter * random_() - (late_by if late else 0.0)) * 1000.0 + 0.001)
            second = millis // 1000
            user = session.user_id
            payload = EVENT_TEMPLATE % (
                id_prefix, count, user, item_json[item], kind, session.platform, session.session_id,
                prefixes[second], millis - second * 1000, item_price[item] if quantity else "null",
                quantity_json[quantity], session.country)
            count += 1
            if late:
                append(("late", user, payload, None))
            else:
                append(("valid", user, payload, None))
                if keep_history:
                    if len(history) < DUPLICATE_HISTORY:
                        history.append((user, payload))
                    else:
                        history[self._history_next] = (user, payload)
                        self._history_next = (self._history_next + 1) % DUPLICATE_HISTORY
        self._count = count
        return out

    def _fault(self, u: float, index: int, base: float) -> Row | None:
        """The message for a draw `u` below the fault shares: malformed, or a duplicate of a recent valid message.

        None when a duplicate is due but no valid message has been sent yet: the slot carries a regular event.
        """
        if u < self._malformed_below:
            return self._malformed(index, base)
        history = self._history
        if not history:
            return None
        key, payload = history[int(self._random() * len(history))]
        return "duplicate", key, payload, None

    def _malformed(self, index: int, base: float) -> Row:
        """A detached event (not part of any session, so session funnels stay intact) with one defect."""
        rng = self._rng
        kind = rng.choice(("login", "view", "click", "scroll", "add_to_cart", "purchase", "logout"))
        item = self.sessions.draw_item() if kind in ITEM_INTERACTIONS else NO_ITEM
        carries_price = kind in ("add_to_cart", "purchase")
        user = self.sessions.draw_user_id()
        event = {
            "event_id": "%s%012x" % (self._id_prefix, index),  # the same id scheme as valid events
            "user_id": user,
            "item_id": self.catalog.item_json[item].strip('"') if item != NO_ITEM else None,
            "interaction_type": kind,
            "platform": rng.choice(PLATFORMS),
            "session_id": "s%012x" % rng.getrandbits(48),
            "event_time": self._format_time(base - self.settings.jitter * rng.random()),
            "price": float(self.catalog.item_price[item]) if carries_price else None,
            "quantity": 1 if carries_price else None,
            "country": rng.choice(self.catalog.country_table),
        }
        defect = DEFECTS[int(rng.random() * len(DEFECTS))]
        return "malformed", user, corrupt(event, defect, rng, self._format_time, base), defect


def generate_messages(count: int, settings: StreamSettings | None = None, *, process_index: int = 0,
                      processes: int = 1, now: float | None = None) -> list[Message]:
    """`count` messages exactly as the CLI would produce them (process `process_index` of `processes`), no Kafka.

    Deterministic for a given non-zero seed, apart from event times (pin those with settings.start_time).
    For tests and benchmarks of the downstream job: `[json.loads(m.payload) for m in msgs if m.kind == "valid"]`.
    """
    settings = (settings or StreamSettings(seed=1)).resolved()
    stream = MessageStream(settings, process_index, processes)
    return [Message(*row) for row in stream.take(count, now)]


def generate_events(count: int, seed: int = 1, start_time: float | None = None, **settings: object) -> list[dict]:
    """`count` valid events as dicts (no faults), deterministic for a seed; keyword arguments go to StreamSettings."""
    chosen = StreamSettings(seed=seed, start_time=start_time, **settings)  # type: ignore[arg-type]
    if chosen.late_ratio or chosen.duplicate_ratio or chosen.malformed_ratio:
        raise ValueError("generate_events yields valid events only; use generate_messages for faults")
    return [json.loads(m.payload) for m in generate_messages(count, chosen)]

