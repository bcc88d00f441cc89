"""The write ceiling of a MongoDB-protocol server for the write patterns the job uses, without Spark in front.

    .venv/bin/python -m bench.sink_ceiling [--uri URI] [--keys 10000] [--bulk 5000] [--repeats 3]
                                           [--per-message-seconds 5]
                                           [--patterns upsert,replace,replace_indexed,insert,delete_insert,
                                                       per_message,reads]
                                           [--out .stack/bench/sink_ceiling.json]

Without --uri it starts the project's own server (stack.MongoServer, SecantusDB --standalone, free port, temporary
folder) and stops it at the end; with --uri it measures whatever answers there (FerretDB, a real mongod). Each
measurement gets a fresh collection holding per-user documents shaped like the job's `user_stats` (15 fields: ints,
a float, two datetimes, a string), written in bulks of --bulk (the job's 5000) with `ordered=False` by a client
with `retryWrites=False`; the figure is the median of --repeats runs:
  upsert         UpdateOne({_id}, {$set: doc}, upsert=True): new keys, then the same keys again (existing)
  replace        ReplaceOne({_id}, doc, upsert=True) over existing keys
  replace_indexed  the same with a secondary index on `interactions` (what every index costs each write)
  insert         insert_many of the same documents
  delete_insert  delete_many({_id: {$in: chunk}}) then insert_many(chunk) over existing keys (a rewrite)
  per_message    one update_one($inc, upsert=True) per message, the simplest consumer's way, for
                 --per-message-seconds
  reads          count_documents({}), estimated_document_count(), find_one sorted by an indexed field desc, in ms,
                 on a collection of --keys documents
Compare these with the job's own `upserts_per_s` (bench.end_to_end) to see which side is the bottleneck.
A slow server makes a run long: SecantusDB's delete_many with a 5000-id $in takes ~35 s per bulk (pick --patterns),
and FerretDB 1.24 hangs on an update command of more than ~100 existing keys (measure it with --bulk 90).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.report import write_report
from contract.events import INTERACTION_TYPES

ROOT = Path(__file__).resolve().parents[1]
BULK = 5000  # the job's write batch size
PATTERNS = ("upsert", "replace", "replace_indexed", "insert", "delete_insert", "per_message", "reads")
log = logging.getLogger("sink_ceiling")
START = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)


def user_document(i: int, generation: int = 0) -> dict:
    """A `user_stats` document (documents.facet_document's shape); `generation` changes every value but the key."""
    n = i + generation
    by_type = {t: (n * (k + 3)) % 97 for k, t in enumerate(INTERACTION_TYPES)}
    return {"_id": f"user-{i:07d}", "user_id": f"user-{i:07d}", "interactions": sum(by_type.values()), **by_type,
            "distinct_items": n % 50, "first_event_time": START + dt.timedelta(seconds=i),
            "last_event_time": START + dt.timedelta(seconds=i + 60 * (generation + 1)),
            "last_platform": ("web", "ios", "android")[n % 3], "revenue": round(n * 0.37, 2)}


def chunks(items: list, size: int) -> list[list]:
    return [items[at:at + size] for at in range(0, len(items), size)]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def insert_all(collection, documents: list[dict], bulk: int) -> None:
    for chunk in chunks(documents, bulk):
        collection.insert_many(chunk, ordered=False)


def bulk_all(collection, operations: list, bulk: int) -> None:
    for chunk in chunks(operations, bulk):
        collection.bulk_write(chunk, ordered=False)


def upsert(collection, keys: int, bulk: int) -> dict[str, float]:
    from pymongo import UpdateOne

    def operations(generation: int) -> list:
        return [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=True)
                for d in (user_document(i, generation) for i in range(keys))]
    first, second = operations(0), operations(1)
    return {"upsert_new": keys / timed(lambda: bulk_all(collection, first, bulk)),
            "upsert_existing": keys / timed(lambda: bulk_all(collection, second, bulk))}


def replace(collection, keys: int, bulk: int) -> dict[str, float]:
    from pymongo import ReplaceOne

    insert_all(collection, [user_document(i) for i in range(keys)], bulk)
    operations = [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in (user_document(i, 1) for i in range(keys))]
    return {"replace_existing": keys / timed(lambda: bulk_all(collection, operations, bulk))}


def replace_indexed(collection, keys: int, bulk: int) -> dict[str, float]:
    """`replace` with one secondary index on `interactions`, which every write must also maintain."""
    from pymongo import DESCENDING

    collection.create_index([("interactions", DESCENDING)])
    return {"replace_existing_indexed": replace(collection, keys, bulk)["replace_existing"]}


def insert(collection, keys: int, bulk: int) -> dict[str, float]:
    documents = [user_document(i) for i in range(keys)]
    return {"insert": keys / timed(lambda: insert_all(collection, documents, bulk))}


def delete_insert(collection, keys: int, bulk: int) -> dict[str, float]:
    insert_all(collection, [user_document(i) for i in range(keys)], bulk)
    documents = [user_document(i, 1) for i in range(keys)]

    def rewrite() -> None:
        for chunk in chunks(documents, bulk):
            collection.delete_many({"_id": {"$in": [d["_id"] for d in chunk]}})
            collection.insert_many(chunk, ordered=False)
    return {"delete_insert": keys / timed(rewrite)}


def per_message(collection, keys: int, seconds: float) -> dict[str, float]:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        collection.update_one({"_id": f"user-{done % keys:07d}"}, {"$inc": {"view": 1, "interactions": 1}},
                              upsert=True)
        done += 1
    return {"per_message": done / (time.perf_counter() - started)}


def reads(collection, keys: int, bulk: int) -> dict[str, float]:
    """Milliseconds; the collection is loaded once per repeat, untimed, with the job's index on interactions."""
    from pymongo import DESCENDING

    collection.create_index([("interactions", DESCENDING)])
    insert_all(collection, [user_document(i) for i in range(keys)], bulk)
    return {"count_documents_ms": 1000 * timed(lambda: collection.count_documents({})),
            "estimated_count_ms": 1000 * timed(collection.estimated_document_count),
            "find_one_top_ms": 1000 * timed(lambda: collection.find_one(sort=[("interactions", DESCENDING)]))}


def measure(db, patterns: list[str], *, keys: int, bulk: int, repeats: int, seconds: float) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for pattern in patterns:
        for repeat in range(repeats):
            collection = db[f"{pattern}_{repeat}"]
            collection.drop()
            run = {"upsert": upsert, "replace": replace, "replace_indexed": replace_indexed, "insert": insert,
                   "delete_insert": delete_insert,
                   "reads": reads, "per_message": lambda c, k, _: per_message(c, k, seconds)}[pattern]
            figures = run(collection, keys, bulk)
            collection.drop()
            for name, value in figures.items():
                samples.setdefault(name, []).append(value)
            log.info("%s run %d/%d: %s", pattern, repeat + 1, repeats,
                     ", ".join(f"{name} {value:,.1f}" for name, value in figures.items()))
    return samples


def server_version(client) -> str:
    try:
        info = client.admin.command("buildInfo")
    except Exception as error:  # noqa: BLE001 - a figure, not a failure
        return f"unknown ({error})"
    return " ".join(str(v) for v in (info.get("version"), info.get("ferretdbVersion", "")) if v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="measure this server instead of starting stack.MongoServer")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--bulk", type=int, default=BULK, help="operations per bulk write (the job uses 5000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-message-seconds", type=float, default=5.0)
    parser.add_argument("--patterns", default=",".join(PATTERNS), help=f"comma-separated subset of {PATTERNS}")
    parser.add_argument("--out", default=str(ROOT / ".stack" / "bench" / "sink_ceiling.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    patterns = [p for p in args.patterns.split(",") if p]
    if unknown := sorted(set(patterns) - set(PATTERNS)):
        parser.error(f"unknown pattern(s) {unknown}; choose from {PATTERNS}")

    with server_at(args.uri) as uri:
        version, samples = measure_server(uri, patterns, args)
    medians = print_table(uri, version, samples, args)
    write_report(args.out, uri=uri, server=version, keys=args.keys, bulk=args.bulk, repeats=args.repeats,
                 medians=medians, samples=samples)
    return 0


@contextlib.contextmanager
def server_at(uri: str | None) -> Iterator[str]:
    """`uri`; without one, the address of a stack.MongoServer started in a temporary folder for the duration."""
    if uri:
        yield uri
        return
    from stack import MongoServer, free_ports

    with tempfile.TemporaryDirectory(prefix="bench-sink-") as work:
        server = MongoServer(Path(work) / "mongo", port=free_ports(1)[0])
        server.start(timeout=120)
        try:
            yield server.uri
        finally:
            server.stop()


def measure_server(uri: str, patterns: list[str], args: argparse.Namespace) -> tuple[str, dict[str, list[float]]]:
    from pymongo import MongoClient
    from pymongo.errors import ServerSelectionTimeoutError

    client: MongoClient[dict[str, Any]] = MongoClient(uri, retryWrites=False, tz_aware=True,
                                                      serverSelectionTimeoutMS=10_000)
    try:
        client.drop_database("sink_ceiling")
    except ServerSelectionTimeoutError:
        raise SystemExit(f"no MongoDB-protocol server answers at {uri}") from None
    version = server_version(client)
    samples = measure(client["sink_ceiling"], patterns, keys=args.keys, bulk=args.bulk, repeats=args.repeats,
                      seconds=args.per_message_seconds)
    client.drop_database("sink_ceiling")
    client.close()
    return version, samples


def print_table(uri: str, version: str, samples: dict[str, list[float]], args: argparse.Namespace) -> dict:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"server {uri} ({version}), {args.keys:,} keys, bulk {args.bulk}, median of {args.repeats}")
    print(f"{'pattern':<24}{'median':>12}  unit     runs")
    for name, value in medians.items():
        unit = "ms" if name.endswith("_ms") else "docs/s"
        print(f"{name:<24}{value:>12,.1f}  {unit:<8} {', '.join(f'{v:,.1f}' for v in samples[name])}")
    return medians


if __name__ == "__main__":
    sys.exit(main())
