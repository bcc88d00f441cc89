"""Top-N lists (`top_users`, `top_items`, one document per rank for the dashboards), kept exact and idempotent.

Each list lives whole in one `top_lists` document (`_id` "<collection>:<scope>", its entries and the id of the last
batch merged into it), replaced atomically with a compare-and-set on that batch id; the per-rank documents are then
rewritten from it. A stop between two rank writes leaves the list document intact, and the retry (or the replay)
rewrites the ranks from it: no entry is lost, none counted twice. Merging is from absolute values, and totals only
grow, so a key that is neither in the list nor changed in a batch cannot have overtaken one that is.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database

from interactions import documents as docs

NO_BATCH = -1


def merge_into_list(db: Database, collection: str, scope: str, key_field: str,
                    candidates: Iterable[tuple[str, int]], *, n: int, batch_id: int,
                    extra: dict[str, Any] | None = None) -> list[tuple[str, int]]:
    """Merge a batch's candidates (absolute values) into the list, once per batch; rewrite its rank documents."""
    list_id = f"{collection}:{scope}"
    stored = db[docs.TOP_LISTS].find_one({"_id": list_id})
    applied = stored.get("batch_id", NO_BATCH) if stored else NO_BATCH
    current = [(e[0], int(e[1])) for e in stored.get("entries", [])] if stored else []
    if applied < batch_id:
        current = docs.merge_top(current, candidates, n)
        _store_list(db, list_id, exists=stored is not None, applied=applied, entries=current, batch_id=batch_id)
    write_ranks(db, collection, scope, key_field, current, extra=extra)
    return current


def replace_list(db: Database, collection: str, scope: str, key_field: str, entries: list[tuple[str, int]], *,
                 batch_id: int, extra: dict[str, Any] | None = None) -> None:
    """A list computed whole for this batch (not merged): stored, then its ranks written."""
    list_id = f"{collection}:{scope}"
    stored = db[docs.TOP_LISTS].find_one({"_id": list_id}, {"batch_id": 1})
    applied = stored.get("batch_id", NO_BATCH) if stored else NO_BATCH
    if applied < batch_id:
        _store_list(db, list_id, exists=stored is not None, applied=applied, entries=entries, batch_id=batch_id,
                    extra=extra)
    write_ranks(db, collection, scope, key_field, entries, extra=extra)


def _store_list(db: Database, list_id: str, *, exists: bool, applied: int, entries: list[tuple[str, int]],
                batch_id: int, extra: dict[str, Any] | None = None) -> None:
    document = {"entries": [[k, v] for k, v in entries], "batch_id": batch_id, **(extra or {})}
    if exists:
        result = db[docs.TOP_LISTS].update_one({"_id": list_id, "batch_id": applied}, {"$set": document})
        if result.matched_count != 1:
            raise RuntimeError(f"top list {list_id} changed under batch {batch_id}")
    else:
        db[docs.TOP_LISTS].insert_one({"_id": list_id, **document})


def write_ranks(db: Database, collection: str, scope: str, key_field: str, entries: list[tuple[str, int]], *,
                extra: dict[str, Any] | None = None) -> None:
    operations = [ReplaceOne({"_id": f"{scope}:{rank}"},
                             {"scope": scope, "rank": rank, key_field: key, "interactions": value, **(extra or {})},
                             upsert=True)
                  for rank, (key, value) in enumerate(entries, start=1)]
    if operations:
        db[collection].bulk_write(operations, ordered=False)
    db[collection].delete_many({"scope": scope, "rank": {"$gt": len(entries)}})
