"""A backlog of real traffic, side by side in one run: clean, and mixed with malformed, late and redelivered records.

    .venv/bin/python -m bench.backlog [--records 1000000] [--users 2000] [--items 500] [--batch N (conf)]
                                      [--scenarios clean,mixed] [--out .stack/bench/backlog.json]

Starts its own Apache Kafka and MongoDB-protocol server (free ports, temporary folder), and for each scenario
produces the backlog with bench.traffic (raw bytes, as an outside producer sends them), runs
`spark-submit jobs/aggregate.py --available-now` over it into a fresh database (default configuration), and checks
every document against the independent recomputation (ops.verify): a fast wrong run does not count.

  clean   ordinary events only
  mixed   3 % malformed (every dead-letter reason), 1 % late, 2 % redelivered

Reported per scenario: records/s from the process's start to its exit ("with start-up"), over the batches, and over
the batches after the first ("marginal"); each batch's duration and where it went (the plan and the sink's writes).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.end_to_end import batch_figures, run_job
from bench.report import write_report
from bench.services import local_services
from bench.traffic import Mix, produce

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS: dict[str, dict[str, Any]] = {"clean": {}, "mixed": {"malformed": 0.03, "late": 0.01, "duplicates": 0.02}}


def run_scenario(name: str, args: argparse.Namespace, work: Path, broker: Any, mongo: Any) -> dict[str, Any]:
    from pymongo import MongoClient

    from conf import load_config
    from ops.verify import compare, read_topic, recompute_for

    mix = Mix(users=args.users, items=args.items, **SCENARIOS[name])
    produced = produce(broker.bootstrap_servers, name, args.records, mix)
    began, wall = run_job(broker.bootstrap_servers, name, mongo_uri=mongo.uri, database=name,
                          checkpoint=work / f"checkpoint-{name}", batch=args.batch)
    db: Any = MongoClient(mongo.uri, tz_aware=True)[name]
    figures = batch_figures(db, began, wall)
    batches = list(db.batches.find({"input_rows": {"$gt": 0}}).sort("batch_id", 1))
    figures["phases"] = [{"batch_ms": b.get("duration_ms"), "plan_ms": b.get("summary_ms"),
                          "connector_ms": b.get("mongo_write_ms"), "derived_ms": b.get("derived_ms"),
                          "documents": b.get("documents"), "state_rows": b.get("state_rows"),
                          "by_collection": b.get("write_ms_by_collection"), "dashboard_ms": b.get("dashboard_ms")}
                         for b in batches]
    report = compare(recompute_for(load_config(env={}), read_topic(broker.bootstrap_servers, name)), db)
    if not report.ok:
        print("\n".join(report.lines()[:40]))
    return {"producer_records_per_s": produced, **figures, "correct": report.ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--batch", type=int,
                        help="records per micro-batch (default: conf's job.max_offsets_per_trigger)")
    parser.add_argument("--scenarios", default="clean,mixed")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "backlog.json"))
    args = parser.parse_args()
    from conf import load_config

    args.batch = args.batch or load_config(env={}).job.max_offsets_per_trigger
    results: dict[str, Any] = {}
    with local_services("bench-backlog-") as (work, broker, mongo):
        for name in args.scenarios.split(","):
            results[name] = run_scenario(name, args, work, broker, mongo)
            print(name, {k: v for k, v in results[name].items() if k != "phases"}, flush=True)
    print(f"\n{args.records:,} records, {args.users:,} users, {args.items:,} items, batches of {args.batch:,}")
    print(f"{'scenario':<10}{'with start-up/s':>16}{'batches/s':>11}{'marginal/s':>12}{'wall s':>8}  batches (plan + "
          "connector + totals and lists, s)  correct")
    for name, r in results.items():
        phases = ", ".join(f"{p['batch_ms'] / 1000:.1f} ({(p['plan_ms'] or 0) / 1000:.1f}+"
                           f"{(p['connector_ms'] or 0) / 1000:.1f}+{(p['derived_ms'] or 0) / 1000:.1f})"
                           for p in r["phases"])
        print(f"{name:<10}{r['records_per_s_with_startup']:>16,.0f}{r['records_per_s']:>11,.0f}"
              f"{(r['marginal_records_per_s'] or 0):>12,.0f}{r['wall_s']:>8.1f}  {phases}  {r['correct']}")
    write_report(args.out, machine=f"{os.cpu_count()} cores, {platform.machine()}, everything on one machine",
                 records=args.records, users=args.users, items=args.items, batch=args.batch, scenarios=results)
    return 0 if all(r["correct"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
