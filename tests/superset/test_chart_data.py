"""Every chart of the dashboard returns the numbers the MongoDB collections hold, asked the way Superset's own
frontend and API clients ask: a JWT from /api/v1/security/login, then each chart's saved query context through
/api/v1/chart/<id>/data/, or that query context with the dashboard's filters applied through /api/v1/chart/data.
The expected numbers are computed in the test from the documents it wrote.

Relative time ranges are evaluated by Superset at request time; the expectation is computed for the clock just
before and just after the request, and the chart must match one of them (a minute may roll over in between).

MongoDB's own profiler shows which `find` each chart query ran: the time range must reach MongoDB, so that a chart
reads the documents of its range, not its whole collection.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from superset_aggregates import PLATFORMS, View, utcnow
from superset_checks import CHECKS, assert_chart_result
from superset_filters import (
    DAYS_FILTER,
    FILTERED,
    MINUTES_FILTER,
    PLATFORM_FILTER,
    apply_filters,
    dashboard_filters,
    filtered_view,
)

pytestmark = pytest.mark.superset

BUNDLE = Path(__file__).resolve().parents[2] / "superset" / "bundle"
BUNDLE_CHARTS = BUNDLE / "charts"
BUNDLE_DATASETS = BUNDLE / "datasets" / "analytics"
DASHBOARD = "user-interactions"


@dataclass(frozen=True)
class Chart:
    id: int
    query_context: dict
    collection: str            # the dataset (named after the collection it reads)
    columns: frozenset[str]
    time_column: str | None    # the dataset's main temporal column

    @property
    def time_grain(self) -> str | None:
        return self.query_context["queries"][0].get("extras", {}).get("time_grain_sqla")


@pytest.fixture(scope="module")
def api(superset):
    return superset.login()


@pytest.fixture(scope="module")
def dashboard_charts(api) -> dict[str, int]:
    """The dashboard's charts as the API lists them: name -> chart id."""
    charts = api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]
    return {chart["slice_name"]: chart["id"] for chart in charts}


@pytest.fixture(scope="module")
def charts(api, dashboard_charts) -> dict[str, Chart]:
    """Each chart's saved query context and what its dataset offers, as the API shows them."""
    out = {}
    for name, chart_id in dashboard_charts.items():
        chart = api.call("GET", f"/api/v1/chart/{chart_id}")["result"]
        dataset = api.call("GET", f"/api/v1/dataset/{chart['datasource_id']}")["result"]
        out[name] = Chart(chart_id, json.loads(chart["query_context"]), dataset["table_name"],
                          frozenset(column["column_name"] for column in dataset["columns"]), dataset["main_dttm_col"])
    return out


@pytest.fixture(scope="module")
def filters(api):
    return dashboard_filters(api, DASHBOARD)


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


# --- the filter bar ---------------------------------------------------------------------------------------------

def test_the_dashboard_has_a_time_filter_for_the_per_minute_charts_one_for_the_day_figures_and_a_platform_filter(
        filters):
    assert {(f.id, f.filter_type) for f in filters.values()} == {
        (MINUTES_FILTER, "filter_time"), (DAYS_FILTER, "filter_time"), (PLATFORM_FILTER, "filter_select")}
    assert filters[PLATFORM_FILTER].column == "platform"
    assert not filters[PLATFORM_FILTER].default, "the platform filter starts with every platform"


def test_every_chart_over_time_windows_is_in_exactly_one_time_filter_per_minute_charts_in_the_minutes_one(
        charts, filters):
    for name, chart in charts.items():
        in_time_filters = {fid for fid in (MINUTES_FILTER, DAYS_FILTER) if chart.id in filters[fid].charts}
        if chart.time_column is None:
            assert not in_time_filters, f"{name}: its dataset has no time column, yet it is in {in_time_filters}"
        elif chart.time_grain == "PT1M":
            assert in_time_filters == {MINUTES_FILTER}, name
        else:
            assert in_time_filters == {DAYS_FILTER}, name


def test_the_platform_filter_reaches_exactly_the_charts_whose_data_has_a_platform(charts, filters):
    with_platform = {name for name, chart in charts.items() if "platform" in chart.columns}
    in_scope = {name for name, chart in charts.items() if chart.id in filters[PLATFORM_FILTER].charts}
    assert in_scope == with_platform


def test_the_platform_filter_offers_the_platforms_in_mongodb(superset, api, filters):
    """The filter's choices come from a query on its target dataset, as the filter bar asks for them."""
    config = json.loads(api.call("GET", f"/api/v1/dashboard/{DASHBOARD}")["result"]["json_metadata"])
    (target,) = next(f for f in config["native_filter_configuration"] if f["id"] == PLATFORM_FILTER)["targets"]
    response = api.call("POST", "/api/v1/chart/data", {
        "datasource": {"id": target["datasetId"], "type": "table"}, "result_format": "json", "result_type": "full",
        "queries": [{"columns": ["platform"], "metrics": [], "filters": [], "row_limit": 1000,
                     "orderby": [["platform", True]]}]})
    offered = {row["platform"] for row in response["result"][0]["data"]}
    assert offered == {doc["platform"] for doc in superset.aggregates.daily_counts} == set(PLATFORMS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_chart_under_the_filters_defaults_returns_the_last_hour_and_today(name, superset, api, charts, filters):
    """What the dashboard shows on opening: each filter's default applied to the charts in its scope."""
    defaults = {fid: f.default for fid, f in filters.items() if f.default}
    query = apply_filters(charts[name].query_context, charts[name].id, filters, defaults)
    before = utcnow()
    response = api.call("POST", "/api/v1/chart/data", query)
    assert_chart_result(name, response, superset.aggregates, before, utcnow(), View.default)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_chart_under_other_filter_values_returns_the_filtered_numbers(name, superset, api, charts, filters):
    """The last 15 one-minute windows, yesterday, iOS and Android only."""
    query = apply_filters(charts[name].query_context, charts[name].id, filters, FILTERED)
    before = utcnow()
    response = api.call("POST", "/api/v1/chart/data", query)
    assert_chart_result(name, response, superset.aggregates, before, utcnow(), filtered_view)


# --- what MongoDB is asked ----------------------------------------------------------------------------------------

def finds_during(database, action: Callable[[], Any]) -> list[dict]:
    """The `find` commands MongoDB ran (its profiler, level 2) while `action` ran."""
    database.command("profile", 0)
    database.drop_collection("system.profile")
    database.command("profile", 2)
    try:
        action()
    finally:
        database.command("profile", 0)
    return [entry["command"] for entry in database["system.profile"].find({"op": "query"})]


def bundled_charts_over_time() -> list[str]:
    """Names of the bundle's charts whose dataset has a main time column (read from the bundle's files)."""
    timed = {dataset["uuid"] for dataset in map(yaml.safe_load, map(Path.read_text, BUNDLE_DATASETS.glob("*.yaml")))
             if dataset.get("main_dttm_col")}
    charts = map(yaml.safe_load, map(Path.read_text, BUNDLE_CHARTS.glob("*.yaml")))
    return sorted(chart["slice_name"] for chart in charts if chart["dataset_uuid"] in timed)


TIMED_CHARTS = bundled_charts_over_time()


@pytest.mark.parametrize("filtered", [False, True], ids=["defaults", "filtered"])
@pytest.mark.parametrize("name", TIMED_CHARTS)
def test_chart_reads_only_the_documents_in_its_time_range(name, filtered, superset, api, charts, filters):
    """The `find` a chart query sends returns the documents of the chart's time range: MongoDB is given the range,
    and the rest of the collection stays where it is."""
    chart = charts[name]
    per_minute = chart.id in filters[MINUTES_FILTER].charts
    view_at: Callable = filtered_view if filtered else View.default

    def ask() -> None:
        if filtered:
            api.call("POST", "/api/v1/chart/data", apply_filters(chart.query_context, chart.id, filters, FILTERED))
        else:
            api.call("GET", f"/api/v1/chart/{chart.id}/data/")

    before = utcnow()
    finds = finds_during(superset.database, ask)
    after = utcnow()

    (find,) = [command for command in finds if command["find"] == chart.collection]
    assert not find.get("limit") and not find.get("skip"), find
    returned = superset.database[chart.collection].count_documents(find["filter"])
    in_range = set()
    for clock in (before, after):
        period = view_at(clock).minutes if per_minute else view_at(clock).days
        in_range.add(superset.aggregates.documents_in(chart.collection, chart.time_column, period))
    assert returned in in_range, (f"{name}: MongoDB returned {returned} documents for {find['filter']}, "
                                  f"the range holds {sorted(in_range)}")
    assert returned < len(superset.aggregates.collections()[chart.collection])
