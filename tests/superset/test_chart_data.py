"""Every chart of the dashboard returns the numbers the MongoDB collections hold, asked the way Superset's own
frontend and API clients ask: a JWT from /api/v1/security/login, then each chart's saved query context through
/api/v1/chart/<id>/data/. The expected numbers are computed in the test from the documents it wrote.

Relative time ranges are evaluated by Superset at request time; the expectation is computed for the clock just
before and just after the request, and the chart must match one of them (a minute may roll over in between).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from superset_aggregates import utcnow
from superset_checks import CHECKS, assert_chart_result

pytestmark = pytest.mark.superset

BUNDLE_CHARTS = Path(__file__).resolve().parents[2] / "superset" / "bundle" / "charts"
DASHBOARD = "user-interactions"


@pytest.fixture(scope="module")
def api(superset):
    return superset.login()


@pytest.fixture(scope="module")
def dashboard_charts(api) -> dict[str, int]:
    """The dashboard's charts as the API lists them: name -> chart id."""
    charts = api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]
    return {chart["slice_name"]: chart["id"] for chart in charts}


def test_dashboard_shows_every_bundled_chart_and_each_is_checked(dashboard_charts):
    assert len(dashboard_charts) == len(list(BUNDLE_CHARTS.glob("*.yaml")))
    assert sorted(dashboard_charts) == sorted(CHECKS)


def test_dashboard_refreshes_itself_every_10_seconds(api):
    dashboard = api.call("GET", f"/api/v1/dashboard/{DASHBOARD}")["result"]
    assert json.loads(dashboard["json_metadata"])["refresh_frequency"] == 10


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_chart_returns_the_numbers_in_mongodb(name, superset, api, dashboard_charts):
    if name not in dashboard_charts:
        pytest.fail(f"chart {name!r} is not on the dashboard (it has: {sorted(dashboard_charts)})", pytrace=False)
    before = utcnow()
    response = api.call("GET", f"/api/v1/chart/{dashboard_charts[name]}/data/")
    assert_chart_result(name, response, superset.aggregates, before, utcnow())
