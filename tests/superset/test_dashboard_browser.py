"""The dashboard as a user sees it: headless Chromium logs in, opens it, every chart draws without an error, it
refreshes itself, and the queries it sends return the numbers in MongoDB, with the filter bar's defaults and with
other filter values given in the URL. A full-page screenshot goes to .stack/screenshots/dashboard.png (the one the
README shows, docs/dashboard.png, comes from a month of seeded data: tests/superset/dashboard_screenshots.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stack.browser import CHART_STATES_JS, RENDER_TIMEOUT_S, Browser, all_settled, fit_window_to_page
from stack.superset_api import DASHBOARD

from superset_aggregates import View, utcnow
from superset_checks import CHECKS, assert_chart_result
from superset_filters import FILTERED, dashboard_filters, filtered_view, native_filters_param

pytestmark = pytest.mark.superset

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ".stack" / "screenshots" / "dashboard.png"
CHART_COUNT = len(list((ROOT / "superset" / "bundle" / "charts").glob("*.yaml")))
settled = all_settled(CHART_COUNT)

CHART_DATA_REQUESTS_JS = """
return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/chart/data')).length;
"""


@pytest.fixture(scope="module")
def dashboard(open_dashboard) -> Iterator[Browser]:
    with open_dashboard("defaults") as browser:
        yield browser


def test_every_chart_draws_without_an_error(dashboard):
    states = dashboard.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "the charts to settle", until=settled)
    problems = [s for s in states if s["state"] != "drawn"]
    assert not problems, f"charts not drawn: {problems}"


def test_full_page_screenshot_is_saved(dashboard):
    fit_window_to_page(dashboard)
    dashboard.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "the charts to redraw at full height", until=settled)
    png = dashboard.wait_until_still(timeout=30)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 50_000


def test_dashboard_refreshes_itself(dashboard):
    """The dashboard's 10-second auto-refresh asks for every chart's data again, without a reload."""
    first = dashboard.run_js(CHART_DATA_REQUESTS_JS)
    dashboard.wait_for(CHART_DATA_REQUESTS_JS, 45, "a second round of chart-data requests",
                       until=lambda count: count >= first + CHART_COUNT)


def replay_chart_queries(browser: Browser, superset, view_at: Callable) -> None:
    """Replays the chart-data requests the frontend built from each chart's params and the filter bar (not the
    saved query contexts) and checks each answer against the numbers under the filters `view_at` gives."""
    api = superset.login()
    names = {chart["id"]: chart["slice_name"]
             for chart in api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]}
    sent = {}
    for body in browser.posted("/api/v1/chart/data"):
        slice_id = body.get("form_data", {}).get("slice_id")
        if slice_id in names:  # the filter bar's own queries (its choices) have none
            sent.setdefault(names[slice_id], body)
    assert sorted(sent) == sorted(CHECKS)
    wrong = {}
    for name, body in sorted(sent.items()):
        before = utcnow()
        response = api.call("POST", "/api/v1/chart/data", body)
        try:
            assert_chart_result(name, response, superset.aggregates, before, utcnow(), view_at)
        except AssertionError as exc:
            wrong[name] = str(exc)[:600]
    assert not wrong, f"charts whose dashboard query returns other numbers: {wrong}"


def test_the_queries_the_dashboard_sends_return_the_numbers_in_mongodb(dashboard, superset):
    """The filter bar's defaults: the last 60 one-minute windows, today (UTC), every platform."""
    replay_chart_queries(dashboard, superset, View.default)


def test_filter_values_in_the_url_reach_every_chart_in_their_scope(open_dashboard, superset):
    """The last 15 one-minute windows, yesterday, iOS and Android, preselected through the URL as a shared link
    would: every chart draws, and the queries the frontend builds return those filtered numbers."""
    filters = dashboard_filters(superset.login(), DASHBOARD)
    with open_dashboard("filtered", native_filters_param(filters, FILTERED)) as browser:
        states = browser.run_js(CHART_STATES_JS)
        assert not [s for s in states if s["state"] != "drawn"], states
        replay_chart_queries(browser, superset, filtered_view)
