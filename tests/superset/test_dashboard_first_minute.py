"""A pipeline's first minute, as a newcomer to the demo sees it: the job has written one minute window, one hour
window and one day window, and every chart draws its data. A line or an area needs two points to draw anything, so
the charts over time mark each point: one minute of events is a dot per type, one hour of data volume is a dot.

The documents are the independent recomputation's for known records of one minute (`KnownEvents`), replacing the
session database's for the module's duration.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stack.browser import CHART_STATES_JS, RENDER_TIMEOUT_S, Browser, all_settled, fit_window_to_page

from superset_aggregates import KnownEvents

pytestmark = pytest.mark.superset

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ".stack" / "screenshots" / "dashboard-first-minute.png"
LEGEND_SHARE = 0.12  # the top of the canvas of a chart with its legend on top: not counted as data drawn
DRAWN_PIXELS = 10    # coloured pixels that show a series was drawn (axes, grid lines and labels are grey)

# How many pixels of a chart's canvas, below the given share of its height, are coloured (not white, black or grey):
# a drawn point, line, bar or slice.
COLOURED_PIXELS_JS = """
const [name, legendShare] = arguments;
const canvas = document.querySelector(`[data-test-chart-name="${name}"] canvas`);
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let coloured = 0;
for (let y = Math.floor(canvas.height * legendShare); y < canvas.height; y++) {
  for (let x = 0; x < canvas.width; x++) {
    const i = (y * canvas.width + x) * 4;
    if (data[i + 3] > 128 && Math.max(data[i], data[i + 1], data[i + 2])
        - Math.min(data[i], data[i + 1], data[i + 2]) > 60) coloured++;
  }
}
return coloured;
"""


def legend_on_top() -> set[str]:
    """The bundle's charts that draw their legend above the data."""
    charts = (yaml.safe_load(path.read_text()) for path in (ROOT / "superset" / "bundle" / "charts").glob("*.yaml"))
    return {chart["slice_name"] for chart in charts
            if chart["params"].get("show_legend") and chart["params"].get("legendOrientation") == "top"}


CANVAS_CHARTS_JS = """
return Array.from(document.querySelectorAll('[data-test-chart-name]')).filter(slice => slice.querySelector('canvas'))
  .map(slice => slice.getAttribute('data-test-chart-name'));
"""


@pytest.fixture(scope="module")
def first_minute(superset) -> Iterator[KnownEvents]:
    """The documents of one minute of records, the minute before the current one."""
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    events = KnownEvents(minute, dt.timedelta(minutes=1))
    assert len({doc["window_start"] for doc in events.documents["minute_counts"]}) == 1
    assert len({doc["window_start"] for doc in events.documents["hourly_counts"]}) == 1
    with events.stored_in(superset.database, replacing=superset.aggregates.collections()):
        yield events


@pytest.fixture(scope="module")
def page(open_dashboard, first_minute) -> Iterator[Browser]:
    with open_dashboard("first-minute") as browser:
        fit_window_to_page(browser)
        browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "every chart at full height",
                         until=all_settled(len(browser.run_js(CHART_STATES_JS))))
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(browser.wait_until_still(timeout=30))
        yield browser


def test_every_chart_shows_its_data(page):
    states = page.run_js(CHART_STATES_JS)
    assert [(s["name"], s["state"]) for s in states if s["state"] != "drawn"] == []


def test_every_chart_draws_its_points_even_one(page):
    """Each chart drawn on a canvas (time series, pies, the funnel) colours some of it below its legend: a single
    minute or hour is a visible point, not an empty grid."""
    charts = page.run_js(CANVAS_CHARTS_JS)
    assert len(charts) >= 7, charts
    on_top = legend_on_top()
    drawn = {name: page.run_js(COLOURED_PIXELS_JS, name, LEGEND_SHARE if name in on_top else 0) for name in charts}
    empty = {name: pixels for name, pixels in drawn.items() if pixels < DRAWN_PIXELS}
    assert not empty, f"charts with data that draw nothing (coloured pixels): {empty}; see {SCREENSHOT}"
