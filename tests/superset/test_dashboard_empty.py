"""A fresh pipeline: the job has not written any collection yet. Every chart answers with no data, and the dashboard
shows "No data" / "No results" in every chart, never an error such as `no such table: virtual_table`.

The module empties the session's database for its duration (the documents go back afterwards).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.browser import CHART_STATES_JS
from stack.superset_api import DASHBOARD

from superset_checks import CHECKS

pytestmark = pytest.mark.superset


@pytest.fixture(scope="module")
def no_collections(superset) -> Iterator[None]:
    """The database as a job that has not started leaves it: no collections; restored afterwards."""
    written = superset.aggregates.collections()
    for name in written:
        superset.database.drop_collection(name)
    assert not set(superset.database.list_collection_names()) & set(written)
    try:
        yield
    finally:
        for name, documents in written.items():
            superset.database[name].insert_many(documents)


@pytest.fixture(scope="module")
def api(superset, no_collections):
    return superset.login()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_chart_of_a_collection_not_written_yet_returns_no_data(name, api):
    charts = {chart["slice_name"]: chart["id"]
              for chart in api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]}
    (result,) = api.call("GET", f"/api/v1/chart/{charts[name]}/data/")["result"]
    assert result["status"] == "success", result.get("error")
    values = [value for row in result["data"] for value in row.values()]
    assert all(value is None for value in values), f"{name} shows {result['data']} from an empty database"


def test_every_chart_shows_no_data_instead_of_an_error(open_dashboard, no_collections):
    with open_dashboard("empty") as browser:
        states = browser.run_js(CHART_STATES_JS)
    not_empty = [s for s in states if s["state"] != "no data"]
    assert not not_empty, f"charts showing something other than no data: {not_empty}"
    assert not [s for s in states if "no such table" in s["text"]]
