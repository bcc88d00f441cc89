"""The read layer Superset's charts go through (pymongosql with superset/mongodb_reads.py installed) returns every
number as a number, whatever the documents hold at the time: one document or many, int32 and int64 (pymongo's
`bson.Int64`: every count the job's Spark connector writes, and the item extremes in `totals`), small and large
values, ints among doubles, a field absent from some documents or null. The expected values are computed here from
the documents written.

A count that came back as the string "1" was drawn by Superset's big number as a date ("2001"); MAX over a column
of strings compares text ("9" > "10").
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

pytestmark = pytest.mark.superset

HERE = Path(__file__).resolve().parent
SUPERSET_PYTHON = HERE.parents[1] / "superset" / ".venv" / "bin" / "python"
READER = HERE / "pymongosql_reads.py"

# name -> the `interactions` values of a collection's documents, in insertion order (None: null; ABSENT: no field)
ABSENT = object()
CASES: dict[str, list[Any]] = {
    "one document, an int64 count of 1": [Int64(1)],
    "one document, a large int64 count": [Int64(32_412)],
    "one document, an int32 count": [3],
    "many documents, int32 and int64, small and large": [9, Int64(10), Int64(2**40), 3, Int64(2**53 + 1)],
    "a field absent from the first document and null in another": [ABSENT, None, Int64(5), 12, ABSENT],
    "ints among doubles": [0, 19.99, Int64(3), 0.5],
    "a BSON decimal among ints": [Decimal128("2.5"), 1],
    "no document has a value": [ABSENT, None],
}


def plain(value: Any) -> Any:
    """The number a stored value means (an int, or a float where a double or a decimal is among them)."""
    return float(value.to_decimal()) if isinstance(value, Decimal128) else value


def expected_aggregates(values: list[Any]) -> dict[str, Any]:
    present = [plain(v) for v in values if v is not ABSENT and v is not None]
    if not present:
        return {"least": None, "most": None, "total": None, "present": 0}
    total: Any = sum(Decimal(str(v)) for v in present)
    total = float(total) if any(isinstance(v, float) for v in present) else int(total)
    return {"least": min(present), "most": max(present), "total": total, "present": len(present)}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def answers(superset, mongo_server, mongo_client) -> dict[str, dict[str, list[dict]]]:
    """Each case's documents in a collection of their own, read through pymongosql in one run of superset/.venv's
    Python (the `superset` fixture installs it): an aggregate query and the rows in order, as a chart asks."""
    database = mongo_client[f"reads_{uuid.uuid4().hex[:8]}"]
    queries = {}
    for number, (name, values) in enumerate(CASES.items()):
        collection = f"case_{number}"
        database[collection].insert_many([
            {"_id": n, "seen_at": dt.datetime(2026, 11, 29, 12, n), **({} if v is ABSENT else {"interactions": v})}
            for n, v in enumerate(values)])
        inner = f"SELECT _id, seen_at, interactions FROM {collection}"
        queries[f"{name}/aggregates"] = (
            'SELECT MIN(interactions) AS least, MAX(interactions) AS most, SUM(interactions) AS total, '
            f'COUNT(interactions) AS present FROM ({inner}) AS virtual_table')
        queries[f"{name}/rows"] = (
            f"SELECT _id, interactions FROM ({inner}) AS virtual_table ORDER BY interactions, _id LIMIT 100")
    request = {"uri": mongo_server.uri, "database": database.name, "queries": queries}
    try:
        result = subprocess.run([str(SUPERSET_PYTHON), str(READER)], input=json.dumps(request), text=True,
                                capture_output=True, timeout=120)
    finally:
        mongo_client.drop_database(database.name)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    return {name: {"aggregates": rows[f"{name}/aggregates"], "rows": rows[f"{name}/rows"]} for name in CASES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_aggregates_of_a_numeric_field_come_back_as_the_numbers_stored(case, answers):
    (row,) = answers[case]["aggregates"]
    wanted = expected_aggregates(CASES[case])
    for column, value in row.items():
        if wanted[column] is None:
            assert value is None, (column, row)
        else:
            assert is_number(value), f"{column} came back as {value!r} ({type(value).__name__}): {row}"
    assert row == pytest.approx(wanted, rel=1e-12), row


@pytest.mark.parametrize("case", sorted(CASES))
def test_rows_of_a_numeric_field_come_back_as_numbers_in_numeric_order(case, answers):
    values = CASES[case]
    stored = [(n, plain(v)) for n, v in enumerate(values) if v is not ABSENT and v is not None]
    rows = answers[case]["rows"]
    numbers = [row for row in rows if row["interactions"] is not None]
    assert all(is_number(row["interactions"]) for row in numbers), rows
    assert [(row["_id"], row["interactions"]) for row in numbers] == sorted(stored, key=lambda nv: (nv[1], nv[0]))
    assert len(rows) == len(values)
