"""Chart queries through pymongosql with superset/mongodb_reads.py installed, as Superset's process runs them; run
with superset/.venv's Python (pymongosql lives there, not in the project's environment) by test_mongodb_reads.py.

    superset/.venv/bin/python tests/superset/pymongosql_reads.py < request.json > rows.json

The request is {"uri", "database", "queries": {name: sql}}; the answer {name: [row, ...]}, each row a JSON object of
the values as the query returned them, so that 1, 1.0 and "1" stay apart.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "superset"))

from pymongosql.connection import Connection

import mongodb_reads

mongodb_reads.install()


def main() -> None:
    request = json.load(sys.stdin)
    connection = Connection(host=request["uri"], database=request["database"], mode="superset")
    answers = {}
    for name, sql in request["queries"].items():
        cursor = connection.cursor()
        cursor.execute(sql)
        columns = [description[0] for description in cursor.description or []]
        answers[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    connection.close()
    json.dump(answers, sys.stdout, default=str)


if __name__ == "__main__":
    main()
