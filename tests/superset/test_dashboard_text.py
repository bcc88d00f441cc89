"""What the dashboard draws, read from the page as a person reads it: the text of every big number, every cell of
the top lists, and the values of the charts' tooltips (hovered with the mouse), each compared with the independent
recomputation (`ops.verify.recompute_for`) of known records, formatted as the chart formats it.

The records (`superset_aggregates.KnownEvents`) are ordinary events and, among them, malformed records, late events
and duplicates; the documents a correct job writes for them are the recomputation's, stored with the BSON types the
job writes (every count the Spark connector writes is an int64, and so are the item extremes in `totals`). For the
module's duration they replace the session database's documents (which go back afterwards).

Event data is text: a user id and an item id made of markup appear as characters in the top lists, never as links,
images or styled elements; a user id of 128 characters with control characters comes through unchanged.
"""
from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from stack.browser import CHART_STATES_JS, RENDER_TIMEOUT_S, Browser, all_settled, fit_window_to_page
from stack.superset_api import DASHBOARD

from superset_aggregates import CONTROL_USER, MARKUP_ITEM, MARKUP_USER, KnownEvents, View, utcnow, within
from superset_checks import (
    NOT_NUMBERS,
    assert_numbers_are_numbers,
    echarts_percents,
    grouped_fixed,
    percent,
    smart_number,
)

pytestmark = pytest.mark.superset

SPAN = dt.timedelta(minutes=30)  # the records' event times span 30 minutes
# Superset's table passes a string that looks like HTML through its sanitizer (the `xss` package, with Superset's
# allowlist) before showing it, as text too: attributes outside the allowlist (`onerror`, `style`) are not shown.
SHOWN_AS = {MARKUP_ITEM: '<img src="https://example.com/i.png"><b>x</b>'}
TABLES = {"Top 10 users": ("top_users", "all", "user_id"), "Top 5 users in the last hour": ("top_users", "last_hour",
          "user_id"), "Top 10 items": ("top_items", "all", "item_id")}
BIG_NUMBERS = ("Events (selected UTC days)", "Most interactions on one item", "Fewest interactions on one item",
               "Average interactions per user")


# --- what the page must show, formatted as each chart formats it ---------------------------------------------------

def big_numbers(known: KnownEvents, view: View) -> dict[str, str]:
    today = [doc["events"] for doc in known.documents["daily_counts"] if within(doc["window_start"], view.days)]
    return {"Events (selected UTC days)": smart_number(sum(today)) if today else "No data",
            "Most interactions on one item": smart_number(known.totals["max_item_interactions"]),
            "Fewest interactions on one item": smart_number(known.totals["min_item_interactions"]),
            "Average interactions per user": grouped_fixed(known.totals["avg_interactions_per_user"], 2)}


def table(known: KnownEvents, collection: str, scope: str, key: str) -> list[list[str]]:
    ranked = sorted((doc for doc in known.documents[collection] if doc["scope"] == scope), key=lambda d: d["rank"])
    return [[str(doc["rank"]), SHOWN_AS.get(doc[key], doc[key]), f"{doc['interactions']:,}"]  # d3 format ","
            for doc in ranked]


def per_minute(known: KnownEvents, view: View) -> dict[str, dict[dt.datetime, dict[str, str]]]:
    """The time-series charts' values by time, as their tooltips show them (a chart of several series adds
    their total)."""
    by_type: dict[dt.datetime, Counter[str]] = defaultdict(Counter)
    for doc in known.documents["minute_counts"]:
        if within(doc["window_start"], view.minutes):
            by_type[doc["window_start"]][doc["interaction_type"]] += doc["events"]
    per_hour: Counter[dt.datetime] = Counter()
    for doc in known.documents["hourly_counts"]:
        if within(doc["window_start"], view.days):
            per_hour[doc["window_start"]] += doc["events"]
    running, cumulative = 0, {}
    for hour in sorted(per_hour):
        running += per_hour[hour]
        cumulative[hour] = {"Events": smart_number(running)}
    set_aside: dict[dt.datetime, list[int]] = defaultdict(lambda: [0, 0])
    for doc in known.documents["batches"]:
        if within(doc["processed_at"], view.minutes):
            minute = doc["processed_at"].replace(second=0, microsecond=0)
            set_aside[minute][0] += doc["dead_letters"]
            set_aside[minute][1] += doc["late_events"]
    return {
        "Events per minute by type": {
            minute: {**{kind: smart_number(events) for kind, events in counts.items()},
                     "Total": smart_number(sum(counts.values()))}
            for minute, counts in by_type.items()},
        "Purchases per minute": {minute: {"Purchases": smart_number(counts["purchase"])}
                                 for minute, counts in by_type.items() if counts["purchase"]},
        "Data volume (cumulative events)": cumulative,
        "Dead letters and late events per minute": {
            minute: {"Dead letters": smart_number(dead), "Late events": smart_number(late),
                     "Total": smart_number(dead + late)}
            for minute, (dead, late) in set_aside.items()}}


def slices(known: KnownEvents, view: View) -> dict[str, dict[str, tuple[str, str]]]:
    """The pies' slices: name -> (events, percentage) as their tooltips show them."""
    out = {}
    for chart, key in (("Activity by type", "interaction_type"), ("Platform split", "platform")):
        events: Counter[str] = Counter()
        for doc in known.documents["daily_counts"]:
            if within(doc["window_start"], view.days):
                events[doc[key]] += doc["events"]
        ordered = events.most_common()
        shares = echarts_percents([value for _, value in ordered])
        out[chart] = {name: (smart_number(value), percent(share / 100))
                      for (name, value), share in zip(ordered, shares, strict=True)}
    return out


# --- reading the page -----------------------------------------------------------------------------------------------

# Each chart's text as the page shows it: a big number's, and the cells of a table, row by row (textContent: the
# characters themselves, control characters included, as a person copying them would get them).
PAGE_TEXT_JS = """
const charts = {};
document.querySelectorAll('[data-test-chart-name]').forEach(slice => {
  const big = slice.querySelector('.header-line');
  charts[slice.getAttribute('data-test-chart-name')] = {
    big: big ? big.textContent.trim() : null,
    header: Array.from(slice.querySelectorAll('thead th')).map(th => th.textContent.trim()),
    rows: Array.from(slice.querySelectorAll('tbody tr')).map(
      tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent)),
    markup: Array.from(slice.querySelectorAll('.slice_container tbody *')).filter(
      element => !['TR', 'TD'].includes(element.tagName)
        && !['cell-bar', 'dt-truncate-cell'].some(name => element.classList.contains(name)))
      .map(element => element.outerHTML.slice(0, 200)),
  };
});
return charts;
"""

# The chart tooltips showing now (ECharts puts one per chart in the page, hidden when the mouse leaves): the title
# line and each row's cells.
VISIBLE_TOOLTIPS_JS = """
return Array.from(document.querySelectorAll('div')).filter(div => {
  const style = div.getAttribute('style') || '';
  return style.includes('z-index: 9999999') && div.style.display !== 'none' && div.style.visibility !== 'hidden'
    && div.style.opacity !== '0';
}).map(div => ({
  title: div.querySelector('span') ? div.querySelector('span').textContent.trim() : '',
  rows: Array.from(div.querySelectorAll('tr')).map(tr => Array.from(tr.querySelectorAll('td')).map(
    td => td.textContent.trim())),
}));
"""

# Where the page points outside Superset: links, images, frames.
EXTERNAL_JS = """
return Array.from(document.querySelectorAll('[href*="example.com"], [src*="example.com"]')).map(e => e.outerHTML);
"""
TOOLTIP_TIME = "%Y-%m-%d %H:%M"  # the time-series charts' tooltipTimeFormat
HOVER_SETTLE_S = 0.3


def hover(browser: Browser, name: str, points: list[tuple[float, float]]) -> list[dict]:
    """The tooltips chart `name` shows with the mouse at each point (fractions of its canvas, from its top left)."""
    canvas = f'[data-test-chart-name="{name}"] canvas'
    browser.point_at(".header-with-actions", 0, 0)  # away from every chart: their tooltips hide
    browser.wait_for(VISIBLE_TOOLTIPS_JS, 10, "no tooltip showing", until=lambda tips: not tips)
    width, height = browser.run_js(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.width, r.height];", canvas)
    shown = []
    for x, y in points:
        browser.point_at(canvas, round(width * (x - 0.5)), round(height * (y - 0.5)))
        time.sleep(HOVER_SETTLE_S)
        shown.extend(browser.run_js(VISIBLE_TOOLTIPS_JS))
    return shown


def series_values(tooltip: dict) -> dict[str, str]:
    """A time-series tooltip's rows as {series: value}, cells without a value (N/A) left out."""
    return {row[0]: row[1] for row in tooltip["rows"] if len(row) >= 2 and row[1] not in ("", "N/A")}


# --- fixtures ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def known(superset) -> Iterator[KnownEvents]:
    """The session database holds the recomputation's documents for the known records (restored afterwards). Their
    event times end 3 minutes before the current one: every broker time and batch (a redelivery comes up to 93 s
    after its event) lies in the past while the page is read, so the page and the expectation see the same ones."""
    events = KnownEvents(dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=3), SPAN)
    with events.stored_in(superset.database, replacing=superset.aggregates.collections()):
        yield events


@pytest.fixture(scope="module")
def page(open_dashboard, known) -> Iterator[Browser]:
    """The dashboard over the known events, the window as high as the page (every chart in view, to hover)."""
    with open_dashboard("text") as browser:
        fit_window_to_page(browser)
        browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "every chart at full height",
                         until=all_settled(len(browser.run_js(CHART_STATES_JS))))
        yield browser


# --- tests ------------------------------------------------------------------------------------------------------------

def test_every_charts_data_carries_its_numbers_as_numbers(superset, known):
    """Each chart's REST data over documents typed as the job types them: numeric columns hold numbers
    (`isinstance`), typed NUMERIC, whatever the values (an item extreme of 1 stored as an int64 among them)."""
    api = superset.login()
    charts = {chart["slice_name"]: chart["id"]
              for chart in api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]}
    assert sorted(charts) == sorted(NOT_NUMBERS)
    for name, chart_id in sorted(charts.items()):
        (result,) = api.call("GET", f"/api/v1/chart/{chart_id}/data/?force=true")["result"]
        assert result["status"] == "success", (name, result.get("error"))
        assert result["data"], f"{name}: no data"
        assert_numbers_are_numbers(name, result)


def test_every_big_number_reads_the_recomputed_figure(page, known):
    shown = page.run_js(PAGE_TEXT_JS)
    view = View.default(utcnow())
    assert {name: shown[name]["big"] for name in BIG_NUMBERS} == big_numbers(known, view)


def test_every_cell_of_the_top_lists_reads_the_recomputed_ranking(page, known):
    shown = page.run_js(PAGE_TEXT_JS)
    for name, (collection, scope, key) in TABLES.items():
        assert shown[name]["header"] == ["rank", key, "interactions"], name
        assert shown[name]["rows"] == table(known, collection, scope, key), name


def test_ids_made_of_markup_or_control_characters_are_shown_as_the_text_they_are(page, known):
    shown = page.run_js(PAGE_TEXT_JS)
    ids = {row[1] for name in TABLES for row in shown[name]["rows"]}
    assert {MARKUP_USER, CONTROL_USER, SHOWN_AS[MARKUP_ITEM]} <= ids, "the known ids reach the top lists as text"
    assert not [shown[name]["markup"] for name in TABLES if shown[name]["markup"]], "event data became elements"
    assert page.run_js(EXTERNAL_JS) == [], "the page links or loads what event data named"


@pytest.mark.parametrize("name", ["Events per minute by type", "Purchases per minute",
                                  "Data volume (cumulative events)", "Dead letters and late events per minute"])
def test_time_series_tooltips_read_the_recomputed_values(name, page, known):
    """The mouse across the chart: each tooltip's time and values are the recomputation's at that time."""
    tooltips = hover(page, name, [(x / 20, 0.5) for x in range(2, 20, 2)])
    expected = per_minute(known, View.default(utcnow()))[name]
    read = {dt.datetime.strptime(tip["title"], TOOLTIP_TIME): series_values(tip) for tip in tooltips}
    assert read, f"{name}: no tooltip showed"
    assert read == {when: expected.get(when) for when in read}
    assert len(read) >= min(len(expected), 3), f"{name}: read {sorted(read)} of {sorted(expected)}"


@pytest.mark.parametrize("name", ["Activity by type", "Platform split"])
def test_pie_tooltips_read_the_recomputed_events_and_shares(name, page, known):
    tooltips = hover(page, name, [(x / 10, y / 20) for x in range(2, 7) for y in (5, 8, 10, 12, 15)])
    expected = slices(known, View.default(utcnow()))[name]
    read = {tip["title"]: tuple(tip["rows"][0][1:3]) for tip in tooltips}
    assert read, f"{name}: no tooltip showed"
    assert read == {slice_name: expected.get(slice_name) for slice_name in read}
    assert len(read) >= min(len(expected), 2), f"{name}: read {sorted(read)} of {sorted(expected)}"
