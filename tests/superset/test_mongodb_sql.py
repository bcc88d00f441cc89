"""The corrections superset/mongodb_reads.py makes to what pymongosql sends MongoDB and to the table it fills
(superset/mongodb_sql.py): the inner SELECT of a chart query found by its parentheses, a `$and` of ranges sent as
one filter document, and each column typed by all its values. Service-free; the superset-marked tests check the same
through pymongosql (test_mongodb_reads.py) and Superset."""
from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

_PATH = Path(__file__).resolve().parents[2] / "superset" / "mongodb_sql.py"
_spec = importlib.util.spec_from_file_location("mongodb_sql", _PATH)
mongodb_sql = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mongodb_sql)

# A chart query as Superset runs it: pretty-printed, the time range inside the virtual dataset's SELECT.
CHART_QUERY = """SELECT
  DATETIME(STRFTIME('%Y-%m-%dT%H:%M:00', window_start)) AS window_start,
  SUM(events) AS "Events"
FROM (
  SELECT
    _id,
    window_start,
    events
  FROM minute_counts
  WHERE
    window_start >= STR_TO_DATETIME('2026-11-29T12:22:00')
    AND window_start < STR_TO_DATETIME('2026-11-29T13:21:22')
) AS virtual_table
WHERE
  window_start >= '2026-11-29 12:22:00' AND window_start < '2026-11-29 13:21:22'
GROUP BY
  DATETIME(STRFTIME('%Y-%m-%dT%H:%M:00', window_start))
LIMIT 10000"""


def test_the_inner_select_ends_at_its_matching_parenthesis_not_at_the_first_one_followed_by_a_word():
    inner, alias, outer = mongodb_sql.split_subquery(CHART_QUERY)
    assert inner.startswith("SELECT\n    _id,") and inner.endswith("STR_TO_DATETIME('2026-11-29T13:21:22')")
    assert alias == "virtual_table"
    assert outer == CHART_QUERY.replace(CHART_QUERY[CHART_QUERY.index("FROM ("):CHART_QUERY.index(") AS virtual_table")
                                                    + len(") AS virtual_table")], "FROM virtual_table")


def test_parentheses_and_keywords_inside_quotes_do_not_count():
    query = "SELECT a FROM (SELECT x FROM t WHERE s = ')( FROM (SELECT' AND \"b)\" = 1) vt WHERE y > 1"
    assert mongodb_sql.split_subquery(query) == (
        "SELECT x FROM t WHERE s = ')( FROM (SELECT' AND \"b)\" = 1", "vt", "SELECT a FROM vt WHERE y > 1")


@pytest.mark.parametrize("query", ["SELECT a FROM t WHERE b IN (1, 2)", "SELECT a FROM (SELECT b FROM t"])
def test_a_query_without_a_complete_parenthesised_select_has_no_subquery(query):
    assert mongodb_sql.split_subquery(query) is None


def test_a_range_given_as_and_of_two_bounds_becomes_one_condition_per_field():
    start, end = dt.datetime(2026, 11, 29, 12), dt.datetime(2026, 11, 29, 13)
    assert mongodb_sql.merged_filter({"$and": [{"window_start": {"$gte": start}}, {"window_start": {"$lt": end}},
                                               {"platform": "ios"}]}) == \
        {"window_start": {"$gte": start, "$lt": end}, "platform": "ios"}


def test_nested_ands_merge_too():
    assert mongodb_sql.merged_filter({"$and": [{"$and": [{"a": {"$gt": 1}}, {"b": 2}]}, {"a": {"$lt": 5}}]}) == \
        {"a": {"$gt": 1, "$lt": 5}, "b": 2}


@pytest.mark.parametrize("query", [
    {"$and": [{"a": {"$gte": 1}}, {"a": {"$gte": 2}}]},   # the same operator twice: both must hold
    {"$and": [{"a": 1}, {"a": {"$lt": 2}}]},              # a value and an operator on one field
    {"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]},  # anything but plain field conditions
    {"a": {"$gte": 1}},                                   # no $and at all
])
def test_filters_that_would_change_meaning_when_merged_are_sent_as_they_are(query):
    assert mongodb_sql.merged_filter(query) == query


# --- the SQLite table's column types ---------------------------------------------------------------------------------

def test_a_column_of_integers_is_integer_whether_int32_or_int64():
    assert mongodb_sql.column_types([{"n": Int64(1)}]) == {"n": "INTEGER"}
    assert mongodb_sql.column_types([{"n": 9}, {"n": Int64(2**40)}, {"n": True}]) == {"n": "INTEGER"}


def test_nulls_and_absent_fields_say_nothing_about_a_column():
    documents = [{"_id": 1, "n": None}, {"_id": 2, "n": Int64(5)}, {"_id": 3}]
    assert mongodb_sql.column_types(documents) == {"_id": "INTEGER", "n": "INTEGER"}
    assert mongodb_sql.column_types([{"n": None}, {"n": None}]) == {"n": ""}


def test_a_column_of_numbers_with_one_not_an_integer_is_real():
    assert mongodb_sql.column_types([{"n": 0}, {"n": 19.99}, {"n": Int64(3)}]) == {"n": "REAL"}
    assert mongodb_sql.column_types([{"n": Decimal128("2.5")}, {"n": 1}]) == {"n": "REAL"}


def test_a_column_with_any_other_value_is_text():
    assert mongodb_sql.column_types([{"t": dt.datetime(2026, 11, 29)}, {"t": None}]) == {"t": "TEXT"}
    assert mongodb_sql.column_types([{"s": 1}, {"s": "1"}]) == {"s": "TEXT"}


def test_a_bson_decimal_goes_into_sqlite_as_a_float_and_anything_else_as_it_is():
    assert mongodb_sql.sqlite_value(Decimal128("2.5")) == 2.5
    assert type(mongodb_sql.sqlite_value(Int64(7))) is Int64 and mongodb_sql.sqlite_value("x") == "x"
