"""What the driver needs of one batch's running totals, in one small Spark job: the global row, the changed users
and items (for top lists and counts), the window and per-user slot figures, and how many records of each passing
kind the batch holds. Pure: a DataFrame in, plain Python values out (interactions.sinks.batch applies them)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from interactions.facets import DAY, GLOBAL, HOUR, ITEM, MINUTE, USER, USER_MINUTE, USER_SLOT
from interactions.parsing import DEAD_LETTER, UNEXPECTED

SUMMARY_FACETS = (GLOBAL, USER, ITEM, MINUTE, HOUR, DAY, USER_SLOT, USER_MINUTE)
Counted = tuple[str, int]  # (key, interactions)
WindowRow = tuple[dt.datetime, str, str, int, float]  # (window start, interaction type, platform, events, revenue)


@dataclass
class Summary:
    batch_time: dt.datetime | None = None
    events: int = 0
    purchases: int = 0
    revenue: float = 0.0
    valid_records: int = 0
    dead_letters: int = 0
    late_events: int = 0
    newest_event_time: dt.datetime | None = None
    users: list[Counted] = field(default_factory=list)
    new_users: int = 0
    items: list[Counted] = field(default_factory=list)
    new_items: int = 0
    windows: dict[str, list[WindowRow]] = field(default_factory=lambda: {MINUTE: [], HOUR: [], DAY: []})
    slots: list[tuple[str, dt.datetime, int]] = field(default_factory=list)  # (user, slot start, interactions)
    user_rates: list[tuple[dt.datetime, str, int]] = field(default_factory=list)  # (window start, user, count)
    documents: dict[str, int] = field(default_factory=dict)  # facet -> rows this batch changed
    unexpected_errors: int = 0  # dead letters set aside by the classification's last-resort guard (a bug to fix)

    @property
    def has_data(self) -> bool:
        return self.batch_time is not None

    @property
    def minutes(self) -> list[WindowRow]:
        return self.windows[MINUTE]

    @property
    def duplicates(self) -> int:
        return self.valid_records - self.events


def summary_frame(totals: DataFrame) -> DataFrame:
    """The driver's share, as one frame, one Spark job, no shuffle: every row's facet, and the summary facets'
    narrow columns (null for the other facets' rows, which the driver only counts)."""
    wanted = F.col("facet").isin(*SUMMARY_FACETS)
    columns = ("key", "ftype", "fplatform", "start", "interactions", "purchase", "revenue", "valid_records",
               "dead_letters", "late_events", "last_event_time", "batch_time")
    guarded = (F.col("facet") == DEAD_LETTER) & F.col("record.reason").startswith(UNEXPECTED)
    return totals.select("facet", *[F.when(wanted, F.col(c)).alias(c) for c in columns],
                         F.when(wanted, F.col("first_batch_time") == F.col("batch_time")).alias("new"),
                         guarded.alias("unexpected"))


def collect_summary(totals: DataFrame) -> Summary:
    table = summary_frame(totals).toArrow()
    counts = dict(zip(*[c.to_pylist() for c in pc.value_counts(table.column("facet")).flatten()], strict=True))
    wanted = table.filter(pc.is_in(table.column("facet"), value_set=pa.array(SUMMARY_FACETS)))
    summary = summarize(wanted.to_pylist())
    summary.documents = {facet: int(n) for facet, n in counts.items()}
    summary.unexpected_errors = int(pc.sum(table.column("unexpected").cast(pa.int64())).as_py() or 0)
    return summary


def summarize(rows: list[dict[str, Any]]) -> Summary:
    summary = Summary()
    for row in rows:
        facet = row["facet"]
        summary.documents[facet] = summary.documents.get(facet, 0) + 1
        summary.batch_time = row["batch_time"] or summary.batch_time
        if facet == GLOBAL:
            summary.events, summary.purchases = int(row["interactions"] or 0), int(row["purchase"] or 0)
            summary.revenue = float(row["revenue"] or 0.0)
            summary.valid_records = int(row["valid_records"] or 0)
            summary.dead_letters, summary.late_events = int(row["dead_letters"] or 0), int(row["late_events"] or 0)
            summary.newest_event_time = row["last_event_time"]
        elif facet == USER:
            summary.users.append((row["key"], int(row["interactions"])))
            summary.new_users += bool(row["new"])
        elif facet == ITEM:
            summary.items.append((row["key"], int(row["interactions"])))
            summary.new_items += bool(row["new"])
        elif facet in summary.windows:
            summary.windows[facet].append((row["start"], row["ftype"], row["fplatform"], int(row["interactions"]),
                                           float(row["revenue"] or 0.0)))
        elif facet == USER_SLOT:
            summary.slots.append((row["key"], row["start"], int(row["interactions"])))
        elif facet == USER_MINUTE:
            summary.user_rates.append((row["start"], row["key"], int(row["interactions"])))
    return summary


def busiest_users(rates: list[tuple[dt.datetime, str, int]]) -> list[tuple[dt.datetime, str, int]]:
    """Per window, the user with the most interactions among these (ties: the greater user id, so a replay picks the
    same one): what the per-user rate alert evaluates."""
    best: dict[dt.datetime, tuple[int, str]] = {}
    for start, user, count in rates:
        best[start] = max(best.get(start, (count, user)), (count, user))
    return [(start, user, count) for start, (count, user) in sorted(best.items())]
