"""How Superset's chart queries read MongoDB through pymongosql, with the faults of pymongosql 0.7.4 this dashboard
ran into fixed; loaded by superset_config.py, so it runs inside Superset's process (the text and filter corrections
themselves are in mongodb_sql.py).

pymongosql's `mode=superset` answers `SELECT … FROM (<inner SELECT>) AS virtual_table …` in two stages: the inner
SELECT as a MongoDB `find`, then the outer query in an in-memory SQLite table of those documents. Its one shared
execution-strategy object has these faults, each seen on this dashboard:

- it finds the inner SELECT with a regular expression that ends it at the first `)` followed by a word. Superset
  pretty-prints every statement before running it, so a time range (`window_start >= STR_TO_DATETIME('…')` then a
  new line and `AND …`) cut the inner query short: "mismatched input '('". Here the inner SELECT is the text between
  `FROM (` and its matching `)`, quotes respected.
- an empty `find` creates no SQLite table, so a collection the job has not written yet, or a time range with no
  documents, fails with `no such table: virtual_table` instead of showing "No data". Here the table is created
  from the inner SELECT's column list (the bundle's datasets name their columns), so the outer query returns no rows.
- the strategy keeps the last query's plan (its column names) on itself, shared by gunicorn's threads; a dashboard
  loads its charts in parallel, so one chart's result could be labelled with another's columns. Here it is kept per
  thread.
- `WHERE a >= x AND a < y` becomes `{"$and": [{a: {$gte: x}}, {a: {$lt: y}}]}`, which SecantusDB (the local
  MongoDB-protocol server) answers with a collection scan: 4 s instead of 0.05 s for one hour of 210k minute
  documents. Here such a filter is sent as the equivalent `{a: {$gte: x, $lt: y}}`, which its index serves.
- it types each SQLite column by the Python type of its values, `int` alone counting as an integer: a BSON int64
  (`bson.Int64`: every count the job's connector writes, and the item extremes in `totals`), a field absent from
  the first document, or ints among doubles made the column TEXT. A count came back as text, MIN and MAX compared
  as text, and Superset's big number drew the string "1" as a date ("2001"). Here a column is INTEGER or REAL
  whenever every value present is a number (`mongodb_sql.column_types`).
- nothing says what a chart cost in MongoDB. Here each chart query logs one line (logger `mongodb_reads`): the
  collection, the `find` filter, the documents MongoDB returned, the rows of the outer query and the time taken.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pymongosql.superset_mongodb.executor as superset_executor
from pymongosql.executor import ExecutionPlanFactory
from pymongosql.superset_mongodb.detector import QueryInfo, SubqueryDetector
from pymongosql.superset_mongodb.executor import SupersetExecution
from pymongosql.superset_mongodb.query_db_sqlite import QueryDBSQLite

from mongodb_sql import column_types, merged_filter, split_subquery, sqlite_value

logger = logging.getLogger("mongodb_reads")
_current = threading.local()  # the query this thread is answering: plan, columns, collection, filter, documents


class ParenthesisedSubquery(SubqueryDetector):
    """pymongosql's SubqueryDetector, with the inner SELECT found by matching parentheses (`split_subquery`)."""

    @classmethod
    def detect(cls, query: str) -> QueryInfo:
        parts = split_subquery(query)
        if parts is None:
            return QueryInfo(has_subquery=False, is_wrapped=False, query_depth=1)
        inner, alias, _ = parts
        return QueryInfo(has_subquery=True, is_wrapped=True, subquery_text=inner, outer_query_text=query,
                         subquery_alias=alias, query_depth=2)

    @classmethod
    def extract_outer_query(cls, query: str) -> tuple[str, str] | None:
        parts = split_subquery(query)
        return None if parts is None else (parts[2], parts[1])


class IntermediateTable(QueryDBSQLite):
    """pymongosql's in-memory SQLite stage, with each column typed by all its values (a number stays a number) and
    the table made also when MongoDB returned no documents."""

    def insert_records(self, table_name: str, records: list[dict[str, Any]],
                       schema: dict[str, str] | None = None) -> int:
        _current.documents = len(records)
        columns = getattr(_current, "columns", None)
        if not records and columns and table_name not in self._tables:
            self.create_table(table_name, {column: "" for column in columns})  # untyped: no rows to type them by
            return 0
        if schema is None and table_name not in self._tables:
            schema = column_types(records)
        records = [{column: sqlite_value(value) for column, value in record.items()} for record in records]
        return super().insert_records(table_name, records, schema)


class DashboardQueryExecution(SupersetExecution):
    """pymongosql's two-stage (MongoDB `find`, then SQLite) execution, per thread, empty-safe and logged."""

    def __init__(self) -> None:
        super().__init__(query_db_factory=IntermediateTable)

    # The base class stores the plan on the shared instance; a per-thread attribute keeps queries apart.
    @property
    def _execution_plan(self) -> Any:
        return getattr(_current, "plan", None)

    @_execution_plan.setter
    def _execution_plan(self, plan: Any) -> None:
        _current.plan = plan

    def _parse_sql(self, sql: str) -> Any:
        plan = super()._parse_sql(sql)
        _current.columns = list(plan.projection_stage or {})
        return plan

    def _execute_find_plan(self, execution_plan: Any, connection: Any = None, parameters: Any = None) -> Any:
        execution_plan.filter_stage = merged_filter(execution_plan.filter_stage or {})
        _current.collection = execution_plan.collection
        _current.filter = execution_plan.filter_stage
        return super()._execute_find_plan(execution_plan, connection, parameters)

    def execute(self, context: Any, connection: Any, parameters: Any = None) -> Any:
        _current.columns = _current.collection = _current.filter = _current.documents = None
        began = time.perf_counter()
        result = super().execute(context, connection, parameters)
        if _current.collection is not None and _current.documents is not None:
            rows = len(result.get("cursor", {}).get("firstBatch", [])) if isinstance(result, dict) else -1
            logger.info("find %s %s: %d documents from MongoDB, %d rows, %.0f ms", _current.collection,
                        _current.filter, _current.documents, rows, (time.perf_counter() - began) * 1000)
        return result


def install() -> None:
    """Put DashboardQueryExecution where pymongosql registered its own SupersetExecution, and the parenthesis-matching
    subquery detector where that execution looks it up (idempotent)."""
    superset_executor.SubqueryDetector = ParenthesisedSubquery
    strategies = ExecutionPlanFactory._strategies  # pymongosql's registry offers only append
    for index, strategy in enumerate(strategies):
        if type(strategy) is SupersetExecution:
            strategies[index] = DashboardQueryExecution()
            return
    if not any(isinstance(strategy, DashboardQueryExecution) for strategy in strategies):
        ExecutionPlanFactory.register_strategy(DashboardQueryExecution())
