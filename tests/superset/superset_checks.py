"""What each chart of the dashboard must return, keyed by chart name: how to read Superset's chart-data result
into comparable Python values, and the same values computed from the known aggregates under given filters.

Shared by the REST test (each chart's saved query context) and the browser test (the queries the frontend built).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from superset_aggregates import FUNNEL, KnownAggregates, View


def when(epoch_ms: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).replace(tzinfo=None)


def series_by_time(rows: list[dict], x: str) -> dict[dt.datetime, dict[str, Any]]:
    """A pivoted time series as {time: {series: value}}, cells without data (null) left out."""
    return {when(row[x]): {k: v for k, v in row.items() if k != x and v is not None} for row in rows}


def ranked(rows: list[dict], key: str) -> list[tuple]:
    return [(row["rank"], row[key], row["interactions"]) for row in rows]


def by_metric(rows: list[dict], key: str) -> list[tuple[str, int]]:
    return [(row[key], row["Events"]) for row in rows]


def descending(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: -kv[1])


# chart name -> (what the chart returned, as comparable data; what it must be under the dashboard's filters)
Check = tuple[Callable[[list[dict]], Any], Callable[[KnownAggregates, View], Any]]
CHECKS: dict[str, Check] = {
    "Events per minute by type": (
        lambda rows: series_by_time(rows, "window_start"),
        lambda agg, view: agg.events_per_minute(view)),
    "Activity by type": (
        lambda rows: by_metric(rows, "interaction_type"),
        lambda agg, view: descending(agg.events_by("interaction_type", view))),
    "Top 10 users": (
        lambda rows: ranked(rows, "user_id"),
        lambda agg, view: agg.ranking("top_users", "all", "user_id")),
    "Top 5 users in the last hour": (
        lambda rows: ranked(rows, "user_id"),
        lambda agg, view: agg.ranking("top_users", "last_hour", "user_id")),
    "Top 10 items": (
        lambda rows: ranked(rows, "item_id"),
        lambda agg, view: agg.ranking("top_items", "all", "item_id")),
    "Purchases per minute": (
        lambda rows: {when(row["window_start"]): row["Purchases"] for row in rows},
        lambda agg, view: agg.purchases_per_minute(view)),
    "Events (selected UTC days)": (
        lambda rows: [row["Events"] for row in rows],
        lambda agg, view: [agg.events_in_days(view)]),
    "Data volume (cumulative events)": (
        lambda rows: [(when(row["window_start"]), row["Events"]) for row in rows],
        lambda agg, view: agg.cumulative_events(view)),
    "Most interactions on one item": (
        lambda rows: [row["Max interactions per item"] for row in rows],
        lambda agg, view: [agg.totals["max_item_interactions"]]),
    "Fewest interactions on one item": (
        lambda rows: [row["Min interactions per item"] for row in rows],
        lambda agg, view: [agg.totals["min_item_interactions"]]),
    "Average interactions per user": (
        lambda rows: [pytest.approx(row["Avg interactions per user"], rel=1e-9) for row in rows],
        lambda agg, view: [agg.totals["avg_interactions_per_user"]]),
    "Conversion funnel: view > add to cart > purchase": (
        lambda rows: by_metric(rows, "interaction_type"),
        lambda agg, view: descending(agg.events_by("interaction_type", view, only=FUNNEL))),
    "Platform split": (
        lambda rows: by_metric(rows, "platform"),
        lambda agg, view: descending(agg.events_by("platform", view))),
    "Dead letters and late events per minute": (
        lambda rows: {when(row["processed_at"]): (row["Dead letters"], row["Late events"]) for row in rows},
        lambda agg, view: agg.dead_letters_and_late(view)),
}


def assert_chart_result(name: str, response: dict, aggregates: KnownAggregates, before: dt.datetime,
                        after: dt.datetime, view_at: Callable[[dt.datetime], View] = View.default) -> None:
    """The chart-data response of chart `name` holds the expected numbers, under the filters `view_at` gives for a
    clock reading, for a clock between before and after."""
    actual_of, expected_under = CHECKS[name]
    (result,) = response["result"]
    assert result["status"] == "success", result.get("error")
    assert not result.get("rejected_filters"), f"Superset ignored filters: {result['rejected_filters']}"
    actual = actual_of(result["data"])
    # Superset reads its clock to the second ("now" goes through a time tuple), so its reading may be up to a second
    # earlier than `before`: within the first second of a minute it still sees the minute before.
    if actual != expected_under(aggregates, view_at(before.replace(microsecond=0))):
        assert actual == expected_under(aggregates, view_at(after))
