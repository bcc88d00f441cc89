"""Documents for bench.dashboard: what the job leaves in MongoDB after a span of event time at the demo's shape
(conf/pipeline.toml [generator]: 1000 events/s, 10k users, 2k items, every interaction type on every platform; one
micro-batch every 5 s), written exactly as docs/collections.md describes them. Built here from a seeded random
stream, not by the job's own code, so that the benchmark needs no Spark.

Every minute holds all 7 types x 3 platforms, so a month is 30 x 1440 x 21 = 907,200 `minute_counts` documents:
what the job writes before its retention (`[retention] minute_counts`, a TTL index) removes any. The windows are
consistent: each hour's and day's counts are the sums of its minutes.
"""
from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from contract import times

INTERACTION_TYPES = ("login", "logout", "view", "click", "scroll", "add_to_cart", "purchase")
TYPE_SHARE = {"login": 0.05, "logout": 0.04, "view": 0.42, "click": 0.24, "scroll": 0.16, "add_to_cart": 0.06,
              "purchase": 0.03}
PLATFORM_SHARE = {"web": 0.5, "android": 0.3, "ios": 0.2}  # generator/sessions.py's PLATFORM_WEIGHTS
BATCH_INTERVAL = dt.timedelta(seconds=5)                    # conf/pipeline.toml [job] trigger_interval
PRICE = 24.5                                                # mean purchase value
BULK = 5000                                                 # documents per insert_many, as the job writes
log = logging.getLogger("dashboard_data")


@dataclass(frozen=True)
class Shape:
    """How much the job has seen: `span` of event time ending at `end`, at `rate` events/s, by `users` users on
    `items` items (`user_stats` holds `user_documents` documents: bench.dashboard asks for 1M in the month)."""

    span: dt.timedelta
    end: dt.datetime
    rate: float = 1000.0
    users: int = 10_000
    items: int = 2_000
    user_documents: int = 10_000
    seed: int = 17

    @property
    def start(self) -> dt.datetime:
        return floor(self.end - self.span, dt.timedelta(minutes=1))


def floor(t: dt.datetime, width: dt.timedelta) -> dt.datetime:
    """contract.times.floor for the naive UTC datetimes these documents are built from."""
    return times.floor(t, width).replace(tzinfo=None)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def window_document(start: dt.datetime, width: dt.timedelta, *, interaction: str, platform: str, events: int,
                    revenue: float) -> dict:
    """A `minute_counts` / `hourly_counts` / `daily_counts` document."""
    return {"_id": f"{iso(start)}|{interaction}|{platform}", "window_start": start, "window_end": start + width,
            "interaction_type": interaction, "platform": platform, "events": events, "revenue": round(revenue, 2)}


def minute_counts(shape: Shape) -> Iterator[dict]:
    """Every minute of the span, every type x platform: ~rate x 60 events a minute, with a daily swing."""
    rng = random.Random(shape.seed)
    minute = shape.start
    width = dt.timedelta(minutes=1)
    while minute < shape.end:
        daily = 1 + 0.4 * math.sin(2 * math.pi * (minute.hour * 60 + minute.minute) / 1440)
        for interaction in INTERACTION_TYPES:
            for platform, share in PLATFORM_SHARE.items():
                mean = shape.rate * 60 * daily * TYPE_SHARE[interaction] * share
                events = max(1, round(rng.gauss(mean, math.sqrt(mean))))
                revenue = events * PRICE * rng.uniform(0.8, 1.2) if interaction == "purchase" else 0.0
                yield window_document(minute, width, interaction=interaction, platform=platform, events=events,
                                      revenue=revenue)
        minute += width


class Rollups:
    """`hourly_counts` and `daily_counts` as the minutes go by: each hour's and UTC day's sums of its minutes."""

    def __init__(self) -> None:
        # width -> (window start, type, platform) -> [events, revenue]
        self.sums: dict[dt.timedelta, defaultdict[tuple[dt.datetime, str, str], list[float]]] = {
            width: defaultdict(lambda: [0, 0.0]) for width in (dt.timedelta(hours=1), dt.timedelta(days=1))}
        self.events = self.purchases = 0
        self.revenue = 0.0

    def add(self, doc: dict) -> None:
        for width, sums in self.sums.items():
            cell = sums[(floor(doc["window_start"], width), doc["interaction_type"], doc["platform"])]
            cell[0] += doc["events"]
            cell[1] += doc["revenue"]
        self.events += doc["events"]
        self.purchases += doc["events"] if doc["interaction_type"] == "purchase" else 0
        self.revenue += doc["revenue"]

    def documents(self, width: dt.timedelta) -> list[dict]:
        return [window_document(start, width, interaction=interaction, platform=platform, events=int(events),
                                revenue=revenue)
                for (start, interaction, platform), (events, revenue) in sorted(self.sums[width].items())]


def batches(shape: Shape) -> Iterator[dict]:
    """One document per micro-batch of the streaming query `interactions`, every 5 s of the span."""
    rng = random.Random(shape.seed + 1)
    at, batch_id = shape.start, 0
    while at < shape.end:
        rows = max(1, round(rng.gauss(shape.rate * 5, 50)))
        duration = rng.randint(700, 2400)
        processed_at = at + dt.timedelta(milliseconds=duration)
        yield {"_id": f"interactions:{batch_id}", "query": "interactions", "batch_id": batch_id,
               "processed_at": processed_at, "input_rows": rows, "duration_ms": duration,
               "processed_rows_per_second": round(rows / duration * 1000, 1),
               "watermark": at - dt.timedelta(minutes=2), "duplicates": rng.randint(0, 3),
               "dropped_by_watermark": 0, "dead_letters": int(rng.random() < 0.05),
               "late_events": int(rng.random() < 0.1) * rng.randint(1, 4),
               "phases_ms": {"addBatch": duration - 120, "latestOffset": 40, "walCommit": 30, "commitOffsets": 50},
               "state_commit_ms": rng.randint(10, 60)}
        at += BATCH_INTERVAL
        batch_id += 1


def user_stats(shape: Shape) -> Iterator[dict]:
    rng = random.Random(shape.seed + 2)
    digits = max(6, len(str(shape.user_documents - 1)))
    events_per_user = shape.rate * shape.span.total_seconds() / shape.user_documents
    for number in range(shape.user_documents):
        by_type = {t: max(0, round(rng.expovariate(1 / max(events_per_user * TYPE_SHARE[t], 0.01))))
                   for t in INTERACTION_TYPES}
        first = shape.start + dt.timedelta(seconds=rng.uniform(0, shape.span.total_seconds() / 2))
        user_id = "u" + str(number).zfill(digits)
        yield {"_id": user_id, "user_id": user_id, "interactions": sum(by_type.values()), **by_type,
               "distinct_items": min(shape.items, by_type["view"] // 2 + 1), "first_event_time": first,
               "last_event_time": first + (shape.end - first) * rng.random(),
               "last_platform": rng.choice(tuple(PLATFORM_SHARE)), "revenue": round(by_type["purchase"] * PRICE, 2)}


def item_stats(shape: Shape) -> Iterator[dict]:
    rng = random.Random(shape.seed + 3)
    events_per_item = shape.rate * shape.span.total_seconds() / shape.items
    for number in range(shape.items):
        by_type = {t: max(0, round(rng.expovariate(1 / max(events_per_item * TYPE_SHARE[t], 0.01))))
                   for t in INTERACTION_TYPES if t not in ("login", "logout")}
        item_id = "i" + str(number).zfill(5)
        yield {"_id": item_id, "item_id": item_id, "interactions": sum(by_type.values()), **by_type,
               "distinct_users": min(shape.users, by_type["view"] // 3 + 1),
               "revenue": round(by_type["purchase"] * PRICE, 2),
               "view_to_purchase_rate": by_type["purchase"] / by_type["view"] if by_type["view"] else None}


def records_set_aside(batch: dict) -> tuple[list[dict], list[dict]]:
    """A batch's `dead_letters` and `late_events` documents, one per record it counted."""
    dead, late = [], []
    for n in range(batch["dead_letters"] + batch["late_events"]):
        offset = batch["batch_id"] * 10 + n
        key = f"interactions:{offset % 4}:{offset}"
        kafka_timestamp = batch["processed_at"] - dt.timedelta(seconds=1)
        if n < batch["dead_letters"]:
            dead.append({"_id": key, "topic": "interactions", "partition": offset % 4, "offset": offset,
                         "kafka_timestamp": kafka_timestamp, "raw": '{"event_id": "x", "user_id": 7}',
                         "reason": "user_id is not a string", "batch_id": batch["batch_id"]})
        else:
            event_time = kafka_timestamp - dt.timedelta(minutes=3 + offset % 27)
            late.append({"_id": key, "topic": "interactions", "partition": offset % 4, "offset": offset,
                         "kafka_timestamp": kafka_timestamp, "event_time": event_time,
                         "lateness_seconds": (kafka_timestamp - event_time).total_seconds(),
                         "event_id": f"e{offset}", "user_id": "u000001", "interaction_type": "view",
                         "raw": "{}", "batch_id": batch["batch_id"]})
    return dead, late


def write(collection, documents: Iterable[dict]) -> int:
    """insert_many in bulks of BULK, as the documents come; returns how many."""
    count, bulk = 0, []
    for doc in documents:
        bulk.append(doc)
        if len(bulk) == BULK:
            collection.insert_many(bulk, ordered=False)
            count, bulk = count + len(bulk), []
    if bulk:
        collection.insert_many(bulk, ordered=False)
        count += len(bulk)
    return count


def passing(documents: Iterable[dict], *observers: Callable[[dict], object]) -> Iterator[dict]:
    for doc in documents:
        for observe in observers:
            observe(doc)
        yield doc


Write = Callable[[str, Iterable[dict]], None]  # writes a collection's documents as they come


def seed(database, shape: Shape) -> dict[str, int]:
    """Write every collection of docs/collections.md that the job writes for `shape` into `database` (dropped
    first), as the documents are made (a month does not fit in memory at once), with the indexes the job creates
    for them; returns the documents per collection."""
    began = time.monotonic()
    for name in database.list_collection_names():
        database.drop_collection(name)
    counts: dict[str, int] = {}

    def timed_write(name: str, documents: Iterable[dict]) -> None:
        written = time.monotonic()
        counts[name] = write(database[name], documents)
        log.info("seed %s: %d %s documents in %.0f s", database.name, counts[name], name, time.monotonic() - written)

    rollup = seed_windows(shape, timed_write)
    set_aside = seed_batches(shape, timed_write)
    items = seed_users_and_items(shape, timed_write)
    timed_write("totals", [{"_id": "all", "events": rollup.events, "users": counts["user_stats"],
                            "items": len(items), "purchases": rollup.purchases, "revenue": round(rollup.revenue, 2),
                            "max_item_interactions": max(item["interactions"] for item in items),
                            "min_item_interactions": min(item["interactions"] for item in items),
                            "avg_interactions_per_user": rollup.events / counts["user_stats"],
                            "dead_letters": set_aside[0], "late_events": set_aside[1],
                            "updated_at": shape.end}])
    create_indexes(database)
    log.info("seed %s: %d documents and indexes in %.0f s", database.name, sum(counts.values()),
             time.monotonic() - began)
    return counts


def seed_windows(shape: Shape, timed_write: Write) -> Rollups:
    """`minute_counts`, then `hourly_counts` and `daily_counts` summed from them; returns the sums."""
    rollup = Rollups()
    timed_write("minute_counts", passing(minute_counts(shape), rollup.add))
    timed_write("hourly_counts", rollup.documents(dt.timedelta(hours=1)))
    timed_write("daily_counts", rollup.documents(dt.timedelta(days=1)))
    return rollup


def seed_batches(shape: Shape, timed_write: Write) -> tuple[int, int]:
    """`batches`, and the `dead_letters` and `late_events` they counted; returns those two counts."""
    set_aside: tuple[list[dict], list[dict]] = ([], [])
    batch_totals = [0, 0]

    def keep_set_aside(batch: dict) -> None:
        dead, late = records_set_aside(batch)
        set_aside[0].extend(dead)
        set_aside[1].extend(late)
        batch_totals[0] += batch["dead_letters"]
        batch_totals[1] += batch["late_events"]

    timed_write("batches", passing(batches(shape), keep_set_aside))
    timed_write("dead_letters", set_aside[0])
    timed_write("late_events", set_aside[1])
    return batch_totals[0], batch_totals[1]


def seed_users_and_items(shape: Shape, timed_write: Write) -> list[dict]:
    """`user_stats`, `item_stats` and the top lists ranked from them; returns the items."""
    top_users: list[tuple] = []   # (interactions, user_id) heaps of the 10 most active and 5 most viewing
    recent_users: list[tuple] = []

    def rank_user(user: dict) -> None:
        for heap, size, value in ((top_users, 10, user["interactions"]), (recent_users, 5, user["view"])):
            (heapq.heappush if len(heap) < size else heapq.heappushpop)(heap, (value, user["user_id"]))

    timed_write("user_stats", passing(user_stats(shape), rank_user))
    items = list(item_stats(shape))
    timed_write("item_stats", items)
    timed_write("top_users",
                [{"_id": f"all:{rank}", "scope": "all", "rank": rank, "user_id": user_id, "interactions": value}
                 for rank, (value, user_id) in enumerate(sorted(top_users, reverse=True), 1)]
                + [{"_id": f"last_hour:{rank}", "scope": "last_hour", "rank": rank, "user_id": user_id,
                    "interactions": value // 1000 + 1}
                   for rank, (value, user_id) in enumerate(sorted(recent_users, reverse=True), 1)])
    top_items = sorted(items, key=lambda item: -item["interactions"])[:10]
    timed_write("top_items", [{"_id": f"all:{rank}", "scope": "all", "rank": rank, "item_id": item["item_id"],
                               "interactions": item["interactions"]} for rank, item in enumerate(top_items, 1)])
    return items


def create_indexes(database) -> None:
    """The indexes the job creates (sinks/indexes.py; plain here, not TTL: the month is what the job holds before
    retention removes any)."""
    from pymongo import ASCENDING

    for name in ("minute_counts", "hourly_counts", "daily_counts"):
        database[name].create_index([("window_start", ASCENDING)])
    database["batches"].create_index([("processed_at", ASCENDING)])
    for name in ("dead_letters", "late_events"):
        database[name].create_index([("kafka_timestamp", ASCENDING)])
