"""The dashboard's native filters (its filter bar) as the tests use them: read from Superset's REST API, applied to a
chart's query the way the dashboard's frontend applies them, or put in a dashboard URL (`native_filters`, rison).

A time filter sets the query's `time_range` (Superset then uses it for every TEMPORAL_RANGE filter of the query); a
value filter appends `{"col", "op": "IN", "val"}`. Either only for the charts in the filter's scope.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from superset_aggregates import View, floor_day, floor_minute

MINUTES_FILTER = "NATIVE_FILTER-minutes"    # time range of the per-minute charts
DAYS_FILTER = "NATIVE_FILTER-days"          # the UTC days the day figures count
PLATFORM_FILTER = "NATIVE_FILTER-platform"  # platforms shown

# Non-default choices for the filtered tests, and the view they mean, worked out here from the clock.
LAST_15_WINDOWS = 'DATEADD(DATETRUNC(DATETIME("now"), minute), -14, minute) : now'
YESTERDAY = 'DATEADD(DATETIME("today"), -1, day) : today'
TWO_PLATFORMS = ["ios", "android"]
FILTERED = {MINUTES_FILTER: LAST_15_WINDOWS, DAYS_FILTER: YESTERDAY, PLATFORM_FILTER: TWO_PLATFORMS}


def filtered_view(now: dt.datetime) -> View:
    """What FILTERED selects at clock `now`: the last 15 one-minute windows, yesterday (UTC), iOS and Android."""
    today = floor_day(now)
    return View(minutes=(floor_minute(now) - dt.timedelta(minutes=14), now),
                days=(today - dt.timedelta(days=1), today), platforms=tuple(TWO_PLATFORMS))


@dataclass(frozen=True)
class NativeFilter:
    id: str
    name: str
    filter_type: str          # filter_time or filter_select
    column: str | None        # the column a value filter targets
    default: Any              # the default value (a time range, or a list of values)
    charts: frozenset[int]    # ids of the charts in scope

    def extra_form_data(self, value: Any) -> dict:
        if self.filter_type == "filter_time":
            return {"time_range": value}
        return {"filters": [{"col": self.column, "op": "IN", "val": list(value)}]} if value else {}


def dashboard_filters(api, dashboard: str) -> dict[str, NativeFilter]:
    """The dashboard's native filters by id, each with the charts in its scope (all but the excluded ones)."""
    meta = json.loads(api.call("GET", f"/api/v1/dashboard/{dashboard}")["result"]["json_metadata"])
    chart_ids = {chart["id"] for chart in api.call("GET", f"/api/v1/dashboard/{dashboard}/charts")["result"]}
    filters = {}
    for config in meta.get("native_filter_configuration", []):
        targets = config.get("targets") or [{}]
        column = (targets[0].get("column") or {}).get("name")
        default = config.get("defaultDataMask", {}).get("filterState", {}).get("value")
        excluded = set(config.get("scope", {}).get("excluded", []))
        filters[config["id"]] = NativeFilter(config["id"], config["name"], config["filterType"], column, default,
                                             frozenset(chart_ids - excluded))
    return filters


def apply_filters(query_context: dict, chart_id: int, filters: dict[str, NativeFilter],
                  values: dict[str, Any]) -> dict:
    """A copy of a chart's query context with the filters' `values` applied, as the dashboard applies them."""
    applied = copy.deepcopy(query_context)
    for filter_id, value in values.items():
        native = filters[filter_id]
        if chart_id not in native.charts:
            continue
        extra = native.extra_form_data(value)
        for query in applied["queries"]:
            if "time_range" in extra:
                query["time_range"] = extra["time_range"]
            query["filters"] = [*query.get("filters", []), *extra.get("filters", [])]
    return applied


def native_filters_param(filters: dict[str, NativeFilter], values: dict[str, Any]) -> str:
    """The dashboard URL's `native_filters` parameter that preselects `values` in the filter bar."""
    state = {filter_id: {"id": filter_id, "extraFormData": filters[filter_id].extra_form_data(value),
                         "filterState": {"value": value}}
             for filter_id, value in values.items()}
    return "native_filters=" + urllib.parse.quote(rison(state), safe="")


_RISON_ID = re.compile(r"^[A-Za-z_./~][A-Za-z0-9_./~-]*$")


def rison(value: Any) -> str:
    """Rison (the compact JSON Superset reads from URL parameters), for dicts, lists, strings, numbers, booleans."""
    if value is True or value is False:
        return "!t" if value else "!f"
    if value is None:
        return "!n"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        if _RISON_ID.match(value):
            return value
        return "'" + value.replace("!", "!!").replace("'", "!'") + "'"
    if isinstance(value, (list, tuple)):
        return "!(" + ",".join(rison(item) for item in value) + ")"
    if isinstance(value, dict):
        return "(" + ",".join(f"{rison(key)}:{rison(item)}" for key, item in value.items()) + ")"
    raise TypeError(f"no rison for {type(value).__name__}")
