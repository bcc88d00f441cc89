"""How a micro-batch's duration grows with the number of distinct users and items (keys), same events per batch.

    .venv/bin/python -m bench.key_scaling [--users 10000,100000,1000000] [--events 300000] [--batch 100000]
                                          [--out .stack/bench/key_scaling.json]

For each user count (items = users / 4), on one broker and database started here (free ports, temporary folder):
produces --events ordinary events as an outside producer sends them (bench.traffic: Zipf popularity, so the number
of keys a batch touches grows more slowly than the key space), runs `spark-submit jobs/aggregate.py --available-now`
in batches of --batch events into a fresh database and checkpoint, and reports, per batch after the first (warm-up):
its duration, the documents it changed, the time the plan took, the time until the dashboard's documents were
written, the time the documents' writes took, and the time spent on totals and top-N lists. Ends with the independent
recomputation of every document, so a fast wrong run does not count.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.end_to_end import run_job
from bench.report import write_report
from bench.services import local_services
from bench.traffic import Mix, produce

ROOT = Path(__file__).resolve().parents[1]


def figures(db) -> dict:
    batches = list(db.batches.find({"input_rows": {"$gt": 0},
                                    "changed_documents": {"$exists": True}}).sort("batch_id", 1))[1:]
    if not batches:
        return {}

    def median(key: str) -> float:
        return statistics.median(b.get(key, 0) for b in batches)

    return {"batches": len(batches), "events_per_batch": median("input_rows"),
            "batch_s": median("duration_ms") / 1000, "documents": median("changed_documents"),
            "plan_s": median("summary_ms") / 1000, "dashboard_s": median("dashboard_ms") / 1000,
            "mongo_write_s": median("mongo_write_ms") / 1000, "lists_s": median("derived_ms") / 1000,
            "users": db.user_stats.estimated_document_count(), "items": db.item_stats.estimated_document_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="10000,100000,1000000", help="comma-separated user counts")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=100_000, help="events per micro-batch")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "key_scaling.json"))
    args = parser.parse_args()

    from pymongo import MongoClient
    from pymongo.database import Database

    from conf import load_config
    from ops.verify import compare, read_topic, recompute_for
    rows = []
    with local_services("bench-keys-") as (work, broker, mongo):
        for users in (int(u) for u in args.users.split(",")):
            topic, database = f"keys-{users}", f"keys_{users}"
            produce(broker.bootstrap_servers, topic, args.events, Mix(users=users, items=max(1, users // 4)))
            run_job(broker.bootstrap_servers, topic, mongo_uri=mongo.uri, database=database,
                    checkpoint=work / f"checkpoint-{users}", batch=args.batch)
            db: Database[dict[str, Any]] = MongoClient(mongo.uri, tz_aware=True)[database]
            report = compare(recompute_for(load_config(env={}), read_topic(broker.bootstrap_servers, topic)), db)
            rows.append({"user_keys": users, "item_keys": max(1, users // 4), **figures(db), "correct": report.ok})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'user keys':>10} {'users seen':>10} {'items seen':>10} {'docs/batch':>10} {'batch s':>8} "
          f"{'plan s':>7} {'dashboard s':>11} {'writes s':>9} {'lists s':>8} {'correct':>7}")
    for r in rows:
        print(f"{r['user_keys']:>10,} {r.get('users', 0):>10,} {r.get('items', 0):>10,} "
              f"{r.get('documents', 0):>10,.0f} {r.get('batch_s', 0):>8.1f} {r.get('plan_s', 0):>7.1f} "
              f"{r.get('dashboard_s', 0):>11.1f} {r.get('mongo_write_s', 0):>9.1f} {r.get('lists_s', 0):>8.2f} "
              f"{str(r['correct']):>7}")
    write_report(args.out, events=args.events, batch=args.batch, rows=rows)
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
