"""A benchmark's results as JSON: what it measured, stamped with the day and the machine."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any


def write_report(out: str | Path, **figures: Any) -> None:
    """Write `figures` under `date` and `machine` to `out` (folders made as needed) and say where.

    A figure named `date` or `machine` replaces the stamp; values JSON cannot hold (a path, a datetime) are written
    as their text.
    """
    results = {"date": dt.date.today().isoformat(), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
               **figures}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out}")
