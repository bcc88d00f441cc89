"""Known aggregates for the dashboard tests, written the way docs/collections.md says the job writes them, and the
numbers every chart must show, computed here in plain Python (independently of Superset, SQLite and pymongosql).

Times are naive UTC datetimes, as pymongo returns BSON dates. Numbers have the BSON types the job writes: the Spark
connector writes every count of the window collections as an int64 (`bson.Int64`), and `totals` takes its item
extremes from `item_stats`, int64 again; the top lists and the other totals are written from Python ints.

`KnownEvents` are the other kind of known data: records made by hand (malformed, late and duplicate ones among
them), and the documents the project's independent recomputation (`ops.verify`) says a correct job writes for them.

The data sit around `written_at` so that the charts' time ranges ("the last 60 one-minute windows", "today") cut
through them: some documents fall inside, some outside, some exactly on a boundary, and a few minute windows lie
ahead of the clock (the job accepts events up to `max_future_skew` ahead). What a chart must show depends on the
dashboard's filters, given as a `View`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bson.int64 import Int64

from conf import load_config
from ops.verify import Record, recompute_for

INTERACTION_TYPES = ("login", "logout", "view", "click", "scroll", "add_to_cart", "purchase")
PLATFORMS = ("web", "ios", "android")
FUNNEL = ("view", "add_to_cart", "purchase")
MINUTES_WRITTEN = 75          # minute_counts: the current minute and the 74 before it (15 fall outside the last 60)
MINUTES_AHEAD = 2             # ... and the next two (events stamped a little ahead of the clock)
HOURS_WRITTEN = 30            # hourly_counts: the current hour and 29 before it (always spans midnight)
DAYS_WRITTEN = 3              # daily_counts: today and the two days before
BATCH_INTERVAL = dt.timedelta(seconds=5)
BATCHES_WRITTEN = 840         # 70 minutes of micro-batches
LAST_WINDOWS = 60             # the per-minute charts' default range: the last 60 one-minute windows

# Per-type weights that make the data look like a shop (and keep the funnel a funnel).
_HOURLY_BASE = {"login": 60, "logout": 55, "view": 400, "click": 260, "scroll": 190, "add_to_cart": 70,
                "purchase": 25}
_PLATFORM_FACTOR = {"web": 3, "ios": 2, "android": 1}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def floor_day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


Range = tuple[dt.datetime, dt.datetime]  # [start, end)


@dataclass(frozen=True)
class View:
    """The dashboard's filters at one clock reading: the per-minute charts' time range, the day figures' range and
    the platforms shown (None: all)."""

    minutes: Range
    days: Range
    platforms: tuple[str, ...] | None = None

    @classmethod
    def default(cls, now: dt.datetime) -> View:
        """The filters' defaults: the last 60 one-minute windows, today (UTC), every platform."""
        return cls(minutes=(floor_minute(now) - dt.timedelta(minutes=LAST_WINDOWS - 1), now),
                   days=(floor_day(now), floor_day(now) + dt.timedelta(days=1)))

    def shows(self, doc: dict) -> bool:
        return self.platforms is None or doc["platform"] in self.platforms


def within(t: dt.datetime, period: Range) -> bool:
    return period[0] <= t < period[1]


@dataclass
class KnownAggregates:
    written_at: dt.datetime
    minute_counts: list[dict] = field(default_factory=list)
    hourly_counts: list[dict] = field(default_factory=list)
    daily_counts: list[dict] = field(default_factory=list)
    top_users: list[dict] = field(default_factory=list)
    top_items: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    batches: list[dict] = field(default_factory=list)

    def collections(self) -> dict[str, list[dict]]:
        return {"minute_counts": self.minute_counts, "hourly_counts": self.hourly_counts,
                "daily_counts": self.daily_counts, "top_users": self.top_users, "top_items": self.top_items,
                "totals": [self.totals], "batches": self.batches}

    # --- what each chart must show -----------------------------------------------------------------------------

    def events_per_minute(self, view: View) -> dict[dt.datetime, dict[str, int]]:
        """minute_counts: SUM(events) by window and type over the per-minute range."""
        out: dict[dt.datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for doc in self.minute_counts:
            if within(doc["window_start"], view.minutes) and view.shows(doc):
                out[doc["window_start"]][doc["interaction_type"]] += doc["events"]
        return {minute: dict(by_type) for minute, by_type in out.items()}

    def purchases_per_minute(self, view: View) -> dict[dt.datetime, int]:
        out: dict[dt.datetime, int] = defaultdict(int)
        for doc in self.minute_counts:
            if within(doc["window_start"], view.minutes) and view.shows(doc) and doc["interaction_type"] == "purchase":
                out[doc["window_start"]] += doc["events"]
        return dict(out)

    def cumulative_events(self, view: View) -> list[tuple[dt.datetime, int]]:
        """Running total of hourly_counts events per hour, over the hours starting in the day range."""
        per_hour: dict[dt.datetime, int] = defaultdict(int)
        for doc in self.hourly_counts:
            if within(doc["window_start"], view.days) and view.shows(doc):
                per_hour[doc["window_start"]] += doc["events"]
        running, out = 0, []
        for hour in sorted(per_hour):
            running += per_hour[hour]
            out.append((hour, running))
        return out

    def events_by(self, key: str, view: View, only: tuple[str, ...] | None = None) -> dict[str, int]:
        """daily_counts: SUM(events) by `key` (interaction_type or platform) over the days in range."""
        out: dict[str, int] = defaultdict(int)
        for doc in self.daily_counts:
            if within(doc["window_start"], view.days) and view.shows(doc) and (
                    only is None or doc["interaction_type"] in only):
                out[doc[key]] += doc["events"]
        return dict(out)

    def events_in_days(self, view: View) -> int | None:
        """daily_counts: SUM(events) of the days in range (None, SQL's SUM of nothing, when there are none)."""
        docs = [doc for doc in self.daily_counts if within(doc["window_start"], view.days) and view.shows(doc)]
        return sum(doc["events"] for doc in docs) if docs else None

    def dead_letters_and_late(self, view: View) -> dict[dt.datetime, tuple[int, int]]:
        """batches: SUM(dead_letters), SUM(late_events) by processed_at minute, processed in the per-minute range."""
        out: dict[dt.datetime, list[int]] = defaultdict(lambda: [0, 0])
        for doc in self.batches:
            if within(doc["processed_at"], view.minutes):
                sums = out[floor_minute(doc["processed_at"])]
                sums[0] += doc["dead_letters"]
                sums[1] += doc["late_events"]
        return {minute: (dl, late) for minute, (dl, late) in out.items()}

    def ranking(self, collection: str, scope: str, key: str) -> list[tuple[int, str, int]]:
        docs = [doc for doc in getattr(self, collection) if doc["scope"] == scope]
        return [(doc["rank"], doc[key], doc["interactions"]) for doc in sorted(docs, key=lambda d: d["rank"])]

    def documents_in(self, collection: str, time_field: str, period: Range) -> int:
        """How many documents of `collection` a query over `period` needs: those whose time lies in it."""
        return sum(1 for doc in self.collections()[collection] if within(doc[time_field], period))


def build(written_at: dt.datetime, seed: int = 20261128) -> KnownAggregates:
    """Deterministic documents around `written_at`, with gaps (a missing type/platform cell) and ties avoided."""
    rng = random.Random(seed)
    data = KnownAggregates(written_at=written_at)
    current_minute = floor_minute(written_at)
    for back in range(-MINUTES_AHEAD, MINUTES_WRITTEN):
        start = current_minute - dt.timedelta(minutes=back)
        for t, interaction in enumerate(INTERACTION_TYPES):
            for p, platform in enumerate(PLATFORMS):
                if (back + t + p) % 11 == 0:
                    continue  # nothing of this type on this platform in this minute
                events = 1 + (back * 7 + t * 3 + p * 5) % 23
                data.minute_counts.append(_window_doc(start, dt.timedelta(minutes=1), interaction, platform, events))
    current_hour = current_minute.replace(minute=0)
    for back in range(HOURS_WRITTEN):
        start = current_hour - dt.timedelta(hours=back)
        for interaction in INTERACTION_TYPES:
            for platform in PLATFORMS:
                events = _HOURLY_BASE[interaction] * _PLATFORM_FACTOR[platform] + (back * 37) % 29
                data.hourly_counts.append(_window_doc(start, dt.timedelta(hours=1), interaction, platform, events))
    today = floor_day(written_at)
    for back in range(DAYS_WRITTEN):  # numbers of their own: a chart reading the wrong rollup shows other numbers
        start = today - dt.timedelta(days=back)
        for t, interaction in enumerate(INTERACTION_TYPES):
            for p, platform in enumerate(PLATFORMS):
                if back == 0 and interaction == "scroll" and platform == "android":
                    continue  # a cell missing today
                events = _HOURLY_BASE[interaction] * _PLATFORM_FACTOR[platform] * (11 + back) + t * 13 + p * 7
                data.daily_counts.append(_window_doc(start, dt.timedelta(days=1), interaction, platform, events))
    for scope, size, base in (("all", 10, 5000), ("last_hour", 5, 300)):
        for rank in range(1, size + 1):
            data.top_users.append({"_id": f"{scope}:{rank}", "scope": scope, "rank": rank,
                                   "user_id": f"u{rng.randrange(10**6):06d}", "interactions": base - rank * 17})
    for rank in range(1, 11):
        data.top_items.append({"_id": f"all:{rank}", "scope": "all", "rank": rank,
                               "item_id": f"i{rng.randrange(10**5):05d}", "interactions": 2000 - rank * 93})
    rng.shuffle(data.top_users)  # stored out of order: the tables must sort by rank (numerically: 10 after 9)
    rng.shuffle(data.top_items)
    data.totals = {"_id": "all", "events": 1_234_567, "users": 9_876, "items": 1_999, "purchases": 4_321,
                   "revenue": 98_765.43, "max_item_interactions": Int64(7_021), "min_item_interactions": Int64(3),
                   "avg_interactions_per_user": 125.0625, "dead_letters": 17, "late_events": 42,
                   "updated_at": written_at}
    first = written_at - BATCH_INTERVAL * (BATCHES_WRITTEN - 1)
    for batch_id in range(BATCHES_WRITTEN):
        processed_at = (first + BATCH_INTERVAL * batch_id).replace(microsecond=(batch_id * 137 % 1000) * 1000)
        data.batches.append({"_id": f"interactions:{batch_id}", "query": "interactions", "batch_id": batch_id,
                             "processed_at": processed_at, "input_rows": 1000 + batch_id % 50,
                             "dead_letters": batch_id % 3 if batch_id % 4 == 0 else 0,
                             "late_events": (batch_id * 7) % 5, "duplicates": batch_id % 2,
                             "duration_ms": 600 + batch_id % 400,
                             "watermark": processed_at - dt.timedelta(minutes=2)})
    return data


def _window_doc(start: dt.datetime, width: dt.timedelta, interaction: str, platform: str, events: int) -> dict:
    revenue = round(events * 19.99, 2) if interaction == "purchase" else 0.0
    return {"_id": f"{start.isoformat()}Z|{interaction}|{platform}", "window_start": start,
            "window_end": start + width, "interaction_type": interaction, "platform": platform,
            "events": Int64(events), "revenue": revenue}


# Known events (KnownEvents): the job's settings, and ids that must reach the page as the text they are.
CONFIG = load_config(env={})  # the job's defaults: lateness, future skew, top-N sizes, the recent window
TOPIC = "interactions"
PARTITIONS = 4
MARKUP_USER = '<a href="https://example.com/">link</a><img src="https://example.com/t.png"><b>over</b>'
CONTROL_USER = ("tab\there\x07bell\x1b[31mred\x00nul\u202eevil\u200b\U0001F600 ").ljust(128, "\u00e9")
MARKUP_ITEM = '<img src="https://example.com/i.png" onerror="document.title=1"><b style="position:fixed;inset:0">x</b>'
BUSIEST = 1234   # interactions of the busiest item
CONNECTOR_COLLECTIONS = ("user_stats", "item_stats", "minute_counts", "hourly_counts", "daily_counts")
BATCH = dt.timedelta(seconds=5)


# --- known events: records made by hand, the documents from the independent recomputation -------------------------

def payload(n: int, when: dt.datetime, user: str, kind: str, item: str | None = None, platform: str = "web",
            price: float | None = None, quantity: int | None = None) -> str:
    return json.dumps({"event_id": f"e{n}", "user_id": user, "item_id": item, "interaction_type": kind,
                       "platform": platform, "session_id": f"s{n % 97}", "price": price, "quantity": quantity,
                       "event_time": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "country": "DE"})


def known_records(end: dt.datetime, span: dt.timedelta) -> list[Record]:
    """About 3,000 records with event times over the `span` before `end`: events of 42 users (one named with markup,
    one with control characters) on 32 items (the busiest with BUSIEST interactions, one with one), logins without
    an item, purchases; and malformed records, events an hour late, and redelivered duplicates."""
    rng = random.Random(20261208)
    start = end - span
    users = [MARKUP_USER, CONTROL_USER] + [f"u{n:03d}" for n in range(40)]
    weights = [60, 45] + [40 - n for n in range(40)]  # the two odd ids among the busiest: in every top list
    items = [MARKUP_ITEM] + [f"i{n:03d}" for n in range(30)]
    sent: list[tuple[str, dt.datetime]] = []  # (payload, broker time)

    def send(n: int, kind: str, item: str | None, **fields: Any) -> None:
        when = start + span * rng.random()
        user = rng.choices(users, weights)[0]
        platform = rng.choice(("web", "web", "ios", "android"))
        sent.append((payload(n, when, user, kind, item, platform, **fields),
                     when + dt.timedelta(milliseconds=rng.randint(50, 3000))))

    n = 0
    for _ in range(BUSIEST):
        send(n := n + 1, rng.choice(("view", "view", "click", "scroll")), "i-busy")
    send(n := n + 1, "view", "i-quiet")
    for _ in range(1500):
        kind = rng.choices(("view", "click", "scroll", "add_to_cart", "purchase"), (40, 25, 15, 12, 8))[0]
        item = rng.choices(items, [50] + [30 - i for i in range(30)])[0]
        purchase = {"price": round(rng.uniform(1, 300), 2), "quantity": rng.randint(1, 3)} if kind == "purchase" \
            else {}
        send(n := n + 1, kind, item, **purchase)
    for _ in range(200):
        send(n := n + 1, rng.choice(("login", "logout")), None)
    events = list(sent)
    for raw, broker in rng.sample(events, 25):  # redelivered within the duplicate window
        sent.append((raw, broker + dt.timedelta(seconds=rng.randint(1, 90))))
    for k in range(15):  # an hour late
        broker = start + span * rng.random()
        sent.append((payload(n := n + 1, broker - dt.timedelta(hours=1), f"u{k:03d}", "view", "i000"), broker))
    malformed = ["not json", "", "[1, 2]", json.dumps({"event_id": "x"}),
                 payload(0, end, "u" * 129, "view", "i000"), payload(0, end, "u001", "teleport", "i000")]
    for k in range(20):
        sent.append((malformed[k % len(malformed)].replace('"e0"', f'"bad{k}"'), start + span * rng.random()))
    sent.sort(key=lambda record: record[1])
    offsets = Counter[int]()
    records = []
    for k, (raw, broker) in enumerate(sent):
        partition = k % PARTITIONS
        records.append(Record(raw, partition, offsets[partition], broker, topic=TOPIC))
        offsets[partition] += 1
    return records


def as_stored(collection: str, document: dict[str, Any]) -> dict[str, Any]:
    """The document with the BSON types the job writes: the Spark connector writes every integer of its
    collections as an int64, and `totals` takes its item extremes from `item_stats` (int64 again)."""
    if collection in CONNECTOR_COLLECTIONS:
        return {key: Int64(value) if type(value) is int else value for key, value in document.items()}
    if collection == "totals":
        return {**document, "max_item_interactions": Int64(document["max_item_interactions"]),
                "min_item_interactions": Int64(document["min_item_interactions"])}
    return dict(document)


def batches_of(records: list[Record], expected: Any) -> list[dict[str, Any]]:
    """`batches`: one micro-batch per 5 s of broker time, each with the dead letters and late events the
    recomputation set aside among its records (found by their Kafka coordinates)."""
    slots: dict[dt.datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record in records:
        assert record.timestamp is not None
        slot = slots[_floor(record.timestamp, BATCH)]
        key = (record.topic, record.partition, record.offset)
        slot[0] += 1
        slot[1] += key in expected.rejected
        slot[2] += key in expected.late_at
    return [{"_id": f"interactions:{batch_id}", "query": "interactions", "batch_id": batch_id,
             "processed_at": (slot + BATCH).replace(tzinfo=None), "input_rows": rows, "dead_letters": dead,
             "late_events": late, "duplicates": 0}
            for batch_id, (slot, (rows, dead, late)) in enumerate(sorted(slots.items()))]


def _floor(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + (t - epoch) // width * width


def naive(document: dict[str, Any]) -> dict[str, Any]:
    """Times as pymongo reads them back: naive UTC."""
    return {key: value.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(value, dt.datetime) else value
            for key, value in document.items()}


class KnownEvents:
    """Known records (`known_records`), the documents a correct job writes for them by collection (naive UTC
    times): the independent recomputation's, and `batches` built from the records it set aside."""

    def __init__(self, end: dt.datetime, span: dt.timedelta) -> None:
        self.records = known_records(end, span)
        expected = recompute_for(CONFIG, self.records)
        assert expected.rejected and expected.late_events and expected.duplicates, "every kind is among them"
        self.documents = {name: [naive(doc) for doc in docs.values()] for name, docs in expected.collections.items()}
        self.documents["batches"] = batches_of(self.records, expected)

    @property
    def totals(self) -> dict[str, Any]:
        (totals,) = self.documents["totals"]
        return totals

    @contextlib.contextmanager
    def stored_in(self, database: Any, replacing: dict[str, list[dict]]) -> Iterator[None]:
        """The database holds these documents, as the job stores them, instead of `replacing`'s (put back after)."""
        for name in set(replacing) | set(self.documents):
            database.drop_collection(name)
        for name, documents in self.documents.items():
            if documents:
                database[name].insert_many([as_stored(name, document) for document in documents])
        try:
            yield
        finally:
            for name in self.documents:
                database.drop_collection(name)
            for name, documents in replacing.items():
                database[name].insert_many(documents)
