"""What each chart of the dashboard must return, keyed by chart name: how to read Superset's chart-data result
into comparable Python values, and the same values computed from the known aggregates under given filters; and how
the page formats a number (Superset's number formats, ECharts' percentages), so that a test can compare the page's
own text with numbers it computed.

Shared by the REST test (each chart's saved query context) and the browser tests (the queries the frontend built,
the text the page shows).
"""
from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
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


# chart name -> the columns of its result that are not numbers (every other column holds numbers or nulls)
NOT_NUMBERS: dict[str, set[str]] = {
    "Events per minute by type": {"window_start"},
    "Activity by type": {"interaction_type"},
    "Top 10 users": {"user_id"},
    "Top 5 users in the last hour": {"user_id"},
    "Top 10 items": {"item_id"},
    "Purchases per minute": {"window_start"},
    "Events (selected UTC days)": set(),
    "Data volume (cumulative events)": {"window_start"},
    "Most interactions on one item": set(),
    "Fewest interactions on one item": set(),
    "Average interactions per user": set(),
    "Conversion funnel: view > add to cart > purchase": {"interaction_type"},
    "Platform split": {"platform"},
    "Dead letters and late events per minute": {"processed_at"},
}
NUMERIC = 0  # Superset's GenericDataType.NUMERIC in a result's `coltypes` (1 is STRING, 2 TEMPORAL)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def assert_numbers_are_numbers(name: str, result: dict) -> None:
    """Every numeric column of chart `name`'s result holds numbers (or nulls), and Superset types it NUMERIC: the
    frontend formats by that type, and draws a big number typed STRING as a date ("1" as "2001")."""
    numeric = [column for column in result["colnames"] if column not in NOT_NUMBERS[name]]
    not_numbers = {column: row[column] for row in result["data"] for column in numeric
                   if row.get(column) is not None and not is_number(row[column])}
    assert not not_numbers, f"{name}: numeric columns hold values that are not numbers: {not_numbers}"
    types = dict(zip(result["colnames"], result["coltypes"], strict=True))
    with_values = {column for row in result["data"] for column in numeric if row.get(column) is not None}
    mistyped = {column: types[column] for column in with_values if types[column] != NUMERIC}
    assert not mistyped, f"{name}: numeric columns typed otherwise (coltypes): {mistyped}"


def assert_chart_result(name: str, response: dict, aggregates: KnownAggregates, before: dt.datetime,
                        after: dt.datetime, view_at: Callable[[dt.datetime], View] = View.default) -> None:
    """The chart-data response of chart `name` holds the expected numbers, under the filters `view_at` gives for a
    clock reading, for a clock between before and after."""
    actual_of, expected_under = CHECKS[name]
    (result,) = response["result"]
    assert result["status"] == "success", result.get("error")
    assert not result.get("rejected_filters"), f"Superset ignored filters: {result['rejected_filters']}"
    assert_numbers_are_numbers(name, result)
    actual = actual_of(result["data"])
    # Superset reads its clock to the second ("now" goes through a time tuple), so its reading may be up to a second
    # earlier than `before`: within the first second of a minute it still sees the minute before.
    if actual != expected_under(aggregates, view_at(before.replace(microsecond=0))):
        assert actual == expected_under(aggregates, view_at(after))


# --- numbers as the page shows them ---------------------------------------------------------------------------------

_SI_PREFIXES = ("y", "z", "a", "f", "p", "n", "\u00b5", "m", "", "k", "M", "G", "T", "P", "E", "Z", "Y")


def _half_up(value: Decimal, places: int) -> Decimal:
    """`value` to `places` decimals, a tie away from zero: what JavaScript's toFixed and toExponential do with the
    exact value of a double (Python's own formatting rounds a tie to even: 32450 would be 32.4k, not the page's
    32.5k)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def js_fixed(value: float, places: int) -> str:
    """JavaScript's `value.toFixed(places)`."""
    with decimal.localcontext(prec=200):
        return f"{_half_up(Decimal(value), places):f}"


def d3_si(value: float, digits: int = 3) -> str:
    """d3-format's `.<digits>~s`: `digits` significant digits, an SI prefix, trailing zeros trimmed."""
    if value == 0:
        return "0"
    sign, magnitude = ("\u2212" if value < 0 else ""), abs(value)
    with decimal.localcontext(prec=200):
        exact = Decimal(magnitude)
        exponent = exact.adjusted()
        coefficient = _half_up(exact.scaleb(-exponent), digits - 1)
        if coefficient >= 10:  # 9.995 -> 10.0: one more digit before the point
            exponent += 1
            coefficient = _half_up(exact.scaleb(-exponent), digits - 1)
    significant = f"{coefficient:f}".replace(".", "")
    prefix = max(-8, min(8, exponent // 3))
    before_point = exponent - prefix * 3 + 1
    if before_point >= len(significant):
        text = significant + "0" * (before_point - len(significant))
    elif before_point > 0:
        text = significant[:before_point] + "." + significant[before_point:]
    else:
        text = "0." + "0" * -before_point + significant
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return sign + text + _SI_PREFIXES[8 + prefix]


def smart_number(value: float) -> str:
    """Superset's SMART_NUMBER format (its "Adaptive formatter"): 3 significant digits with an SI prefix from
    1,000 (B for billions), at most 2 decimals from 1, 4 below."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return d3_si(value).replace("G", "B")
    if magnitude >= 1:
        return _trimmed(js_fixed(value, 2))
    if magnitude >= 0.001:
        return _trimmed(js_fixed(value, 4))
    if magnitude > 0.000001:
        return d3_si(value * 1_000_000) + "\u00b5"
    return d3_si(value)


def grouped_fixed(value: float, places: int = 2) -> str:
    """d3-format's `,.<places>f`: thousands separated by commas."""
    whole, _, fraction = js_fixed(value, places).partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    return sign + f"{int(digits):,}" + (f".{fraction}" if fraction else "")


def percent(fraction: float, places: int = 2) -> str:
    """d3-format's `.<places>%`."""
    return js_fixed(fraction * 100, places) + "%"


def echarts_percents(values: Sequence[float], precision: int = 2) -> list[float]:
    """The percentages ECharts gives a pie's slices (`getPercentSeats`, largest remainder): rounded to `precision`
    decimals so that they add up to exactly 100, each computed with the same floating-point steps."""
    total = sum(values)
    if total == 0:
        return [0.0] * len(values)
    digits = 10 ** precision
    quotas = [value / total * digits * 100 for value in values]
    seats = [int(quota // 1) for quota in quotas]
    remainders = [quota - seat for quota, seat in zip(quotas, seats, strict=True)]
    while sum(seats) < digits * 100:
        largest = max(range(len(remainders)), key=lambda index: (remainders[index], -index))
        seats[largest] += 1
        remainders[largest] = 0
    return [seat / digits for seat in seats]


def _trimmed(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text
