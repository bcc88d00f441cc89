"""The SQL-text and filter-document corrections superset/mongodb_reads.py makes to pymongosql's queries, kept free of
pymongosql so that the tests (which run outside superset/.venv) can check them directly."""
from __future__ import annotations

import re
from typing import Any

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
