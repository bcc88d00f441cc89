"""The dashboard as a user sees it: headless Chromium logs in, opens it, every chart draws without an error, and it
refreshes itself. A full-page screenshot goes to .stack/screenshots/dashboard.png; with
UPDATE_DASHBOARD_SCREENSHOT=1 it also replaces docs/dashboard.png, the one the README shows.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from superset_aggregates import utcnow
from superset_browser import Browser, WebDriverError
from superset_checks import CHECKS, assert_chart_result

pytestmark = pytest.mark.superset

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ".stack" / "screenshots" / "dashboard.png"
FAILURE_SCREENSHOT = ROOT / ".stack" / "screenshots" / "dashboard-failed.png"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
DASHBOARD_PATH = "/superset/dashboard/user-interactions/"
CHART_COUNT = len(list((ROOT / "superset" / "bundle" / "charts").glob("*.yaml")))
WIDTH = 1600
RENDER_TIMEOUT_S = 180  # a deadline, not a wait: ~15 s when the machine is quiet

# Each chart holder's state: an error alert, still loading, drawn (canvas, table or big number), or no data.
CHART_STATES_JS = """
return Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(holder => {
  const slice = holder.querySelector('[data-test-chart-name]');
  const error = holder.querySelector('[role=alert], .ant-alert-error');
  const text = holder.innerText || '';
  let state = 'empty';
  if (error) state = 'error';
  else if (holder.querySelector('[data-test=loading-indicator], .loading')) state = 'loading';
  else if (holder.querySelector('canvas, table, .header-line')) state = 'drawn';
  else if (text.includes('No results')) state = 'no data';
  return {name: slice ? slice.getAttribute('data-test-chart-name') : '?', state: state,
          error: error ? error.innerText.slice(0, 300) : null};
});
"""
CHART_DATA_REQUESTS_JS = """
return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/chart/data')).length;
"""


def settled(states: list[dict]) -> bool:
    return len(states) == CHART_COUNT and all(s["state"] in ("drawn", "error", "no data") for s in states)


def fit_window_to_page(browser: Browser, attempts: int = 5) -> None:
    """Grow the window until the whole dashboard fits the viewport (the outer size includes the browser's frame)."""
    for _ in range(attempts):
        page, inner, outer = browser.run_js(
            "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight]")
        if inner >= page:
            return
        browser.set_window_size(WIDTH, page + outer - inner)
    raise AssertionError(f"the window never fitted the page ({page} px high, viewport {inner} px)")


def log_in_and_open_dashboard(browser: Browser, superset) -> None:
    """The login form, as a user fills it in, going straight on to the dashboard."""
    browser.get(f"{superset.url}/login/?next={DASHBOARD_PATH}")
    browser.wait_for("return document.querySelector('[data-test=username-input]') !== null", 120, "the login form")
    browser.type_into("[data-test=username-input]", superset.username)
    browser.type_into("[data-test=password-input]", superset.password)
    browser.click("[data-test=login-button]")
    browser.wait_for("return location.pathname", 120, "the dashboard after logging in",
                     until=lambda path: path == DASHBOARD_PATH)
    browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, f"all {CHART_COUNT} charts to render", until=settled)


@pytest.fixture(scope="module")
def dashboard(superset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A logged-in headless Chromium showing the dashboard, every chart settled (drawn or failed)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium/chromedriver not installed (superset/provision install does it as root)")
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    with Browser(profile, WIDTH, 1200) as browser:
        try:
            log_in_and_open_dashboard(browser, superset)
        except (AssertionError, WebDriverError):
            FAILURE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            FAILURE_SCREENSHOT.write_bytes(browser.screenshot())
            raise
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
    if os.environ.get("UPDATE_DASHBOARD_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 50_000


def test_dashboard_refreshes_itself(dashboard):
    """The dashboard's 10-second auto-refresh asks for every chart's data again, without a reload."""
    first = dashboard.run_js(CHART_DATA_REQUESTS_JS)
    dashboard.wait_for(CHART_DATA_REQUESTS_JS, 45, "a second round of chart-data requests",
                       until=lambda count: count >= first + CHART_COUNT)


def test_the_queries_the_dashboard_sends_return_the_numbers_in_mongodb(dashboard, superset):
    """Replays the chart-data requests the frontend built from each chart's params (not the saved query contexts)."""
    api = superset.login()
    names = {chart["id"]: chart["slice_name"]
             for chart in api.call("GET", "/api/v1/dashboard/user-interactions/charts")["result"]}
    sent = {}
    for body in dashboard.posted("/api/v1/chart/data"):
        sent.setdefault(names[body["form_data"]["slice_id"]], body)
    assert sorted(sent) == sorted(CHECKS)
    wrong = {}
    for name, body in sorted(sent.items()):
        before = utcnow()
        response = api.call("POST", "/api/v1/chart/data", body)
        try:
            assert_chart_result(name, response, superset.aggregates, before, utcnow())
        except AssertionError as exc:
            wrong[name] = str(exc)[:600]
    assert not wrong, f"charts whose dashboard query returns other numbers: {wrong}"
