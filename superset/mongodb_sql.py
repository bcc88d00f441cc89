"""The SQL-text, filter-document and column-type corrections superset/mongodb_reads.py makes to pymongosql's queries,
kept free of pymongosql so that the tests (which run outside superset/.venv) can check them directly."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bson.decimal128 import Decimal128

_FROM_PARENTHESIS = re.compile(r"\bFROM\s*\(", re.IGNORECASE)
_SELECT = re.compile(r"\s*SELECT\s", re.IGNORECASE)
_ALIAS = re.compile(r"\s*(?:AS\s+)?(\w+)", re.IGNORECASE)


def split_subquery(query: str) -> tuple[str, str, str] | None:
    """`SELECT … FROM (<inner SELECT>) AS <alias> <rest>` as (inner SELECT, alias, the query with `FROM <alias>` in
    place of the parenthesised SELECT); None for a query without one. Parentheses and keywords inside quotes
    ('…', "…", `…`) do not count."""
    depth, quote, opened = 0, "", -1
    i = 0
    while i < len(query):
        char = query[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif opened < 0:
            match = _FROM_PARENTHESIS.match(query, i)
            if match and (i == 0 or not (query[i - 1].isalnum() or query[i - 1] == "_")) \
                    and _SELECT.match(query, match.end()):
                opened, depth, i = match.start(), 1, match.end()
                continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                inner_start = _FROM_PARENTHESIS.match(query, opened).end()
                alias = _ALIAS.match(query, i + 1)
                if alias is None:
                    return None
                outer = f"{query[:opened]}FROM {alias.group(1)}{query[alias.end():]}"
                return query[inner_start:i].strip(), alias.group(1), outer
        i += 1
    return None


def merged_filter(query: dict[str, Any]) -> dict[str, Any]:
    """A top-level `$and` of plain field conditions as one filter document, where that means the same: each field
    once, operator documents merged when they share no operator (`{a: {$gte: x}}` and `{a: {$lt: y}}` make
    `{a: {$gte: x, $lt: y}}`; the collections' fields are scalars, never arrays, so this is exact). Anything else
    (`$or`, the same operator twice, a value and an operator on one field) is returned as it was."""
    if set(query) != {"$and"} or not isinstance(query["$and"], list):
        return query
    merged: dict[str, Any] = {}
    for clause in query["$and"]:
        clause = merged_filter(clause) if isinstance(clause, dict) else None
        if clause is None:
            return query
        for field, condition in clause.items():
            if field.startswith("$"):
                return query
            if field not in merged:
                merged[field] = condition
                continue
            earlier = merged[field]
            if not (_operators_only(earlier) and _operators_only(condition)) or set(earlier) & set(condition):
                return query
            merged[field] = {**earlier, **condition}
    return merged


def _operators_only(condition: Any) -> bool:
    return isinstance(condition, dict) and bool(condition) and all(key.startswith("$") for key in condition)


# SQLite column types of the in-memory table a chart's outer query runs on.
INTEGER, REAL, TEXT, UNTYPED = "INTEGER", "REAL", "TEXT", ""


def column_types(documents: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The SQLite type of each column of the documents a `find` returned, decided by all their values: INTEGER when
    every value is an integer (BSON int32 and int64 alike), REAL when every value is a number and one is not an
    integer, TEXT when any value is something else (a string, a date), no type when no document has a value.
    A null or an absent field says nothing about the column.

    pymongosql types a column by the Python type of its values and makes it TEXT when they differ, with `int` only as
    the type of an integer: an int64 (pymongo's `bson.Int64`, what the job's connector writes for every count, and
    what `totals` holds for the item extremes), a column whose first document lacks the field (None, then a number)
    and a column of ints and doubles all became TEXT. SQLite then returned MIN and MAX of that column as text,
    compared as text ("9" > "10"), Superset saw a string column, and the big-number chart formatted a count as a
    date ("1" drawn as "2001")."""
    kinds: dict[str, set[str]] = {}
    for document in documents:
        for column, value in document.items():
            kinds.setdefault(column, set())
            if value is not None:
                kinds[column].add(_kind(value))
    return {column: _sqlite_type(found) for column, found in kinds.items()}


def sqlite_value(value: Any) -> Any:
    """A document's value as the SQLite table takes it: a BSON decimal as a float, anything else as it is (an Int64
    is an int)."""
    return float(value.to_decimal()) if isinstance(value, Decimal128) else value


def _kind(value: Any) -> str:
    if isinstance(value, int):  # bool and bson.Int64 included
        return INTEGER
    if isinstance(value, (float, Decimal128)):
        return REAL
    return TEXT


def _sqlite_type(kinds: set[str]) -> str:
    if not kinds:
        return UNTYPED
    if TEXT in kinds:
        return TEXT
    return REAL if REAL in kinds else INTEGER
