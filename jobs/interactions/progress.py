"""A finished micro-batch as figures, read from Spark's StreamingQueryProgress (as JSON-decoded).

Rows, rates, duration, watermark, state, duplicates and Kafka offsets. Kafka lag per partition is the broker's
latest offset minus the offset the batch read up to, both as Spark saw them when it planned the batch
(`sources[].latestOffset` / `endOffset`). Pure functions: the listener (interactions.listener) stores them.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from contract.times import parse_instant


def batch_metrics(query: str, progress: Mapping[str, Any], set_aside: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """One `pipeline_metrics` document from a progress (as JSON-decoded) and, when known, the dead-letter and late
    counts the sink stored in the batch's `batches` record."""
    batch_id = int(progress["batchId"])
    operators = progress.get("stateOperators") or []
    duration = progress.get("batchDuration")
    if duration is None:
        duration = (progress.get("durationMs") or {}).get("triggerExecution", 0)
    figures: dict[str, Any] = {
        "_id": f"{query}:{batch_id}", "query": query, "batch_id": batch_id,
        "recorded_at": _time(progress.get("timestamp")) or dt.datetime.now(dt.UTC),
        "input_rows": int(progress.get("numInputRows") or 0),
        "input_rows_per_second": float(progress.get("inputRowsPerSecond") or 0.0),
        "processed_rows_per_second": float(progress.get("processedRowsPerSecond") or 0.0),
        "batch_duration_ms": int(duration or 0),
        "watermark": _time((progress.get("eventTime") or {}).get("watermark")),
        "dropped_by_watermark": sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in operators),
        "duplicates": sum(int((op.get("customMetrics") or {}).get("numDroppedDuplicateRows") or 0)
                          for op in operators),
        "state_rows": sum(int(op.get("numRowsTotal") or 0) for op in operators),
        "state_memory_bytes": sum(int(op.get("memoryUsedBytes") or 0) for op in operators),
        "dead_letters": None, "late_events": None,
    }
    add_set_aside(figures, set_aside)
    lag: dict[str, int] = {}
    behind: dict[str, float] = {}
    for source in progress.get("sources") or []:
        if not str(source.get("description", "")).startswith("Kafka"):
            continue
        end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
        for key, offset in latest.items():
            if key in end:
                lag[key] = max(0, offset - end[key])
        for stat in ("min", "max", "avg"):
            value = (source.get("metrics") or {}).get(f"{stat}OffsetsBehindLatest")
            if value is not None:
                behind[stat] = max(behind.get(stat, 0.0), float(value))
    figures["kafka_lag"] = lag  # "<topic>:<partition>" -> offsets behind the latest
    figures["kafka_lag_total"] = sum(lag.values()) if lag else None
    figures["kafka_lag_max_partition"] = max(lag.values()) if lag else None
    figures["kafka_offsets_behind_latest"] = behind  # Spark's own min / max / avg over partitions
    return figures


def add_set_aside(figures: dict[str, Any], set_aside: Mapping[str, Any] | None) -> dict[str, Any]:
    """The batch's dead-letter and late counts (from its `batches` record) into its figures."""
    for key in ("dead_letters", "late_events"):
        if set_aside and set_aside.get(key) is not None:
            figures[key] = int(set_aside[key])
    return figures


def describe(figures: Mapping[str, Any]) -> str:
    """The per-batch log line's figures."""
    parts = [f"{figures['input_rows']} rows in {figures['batch_duration_ms']} ms "
             f"({figures['processed_rows_per_second']:.0f} rows/s processed, "
             f"{figures['input_rows_per_second']:.0f} rows/s arriving)",
             f"dropped by watermark {figures['dropped_by_watermark']}", f"duplicates {figures['duplicates']}"]
    if figures.get("dead_letters") is not None:
        parts.append(f"dead letters {figures['dead_letters']}")
    if figures.get("late_events") is not None:
        parts.append(f"late {figures['late_events']}")
    watermark = figures.get("watermark")
    parts.append(f"watermark {watermark.strftime('%Y-%m-%dT%H:%M:%SZ') if watermark else '-'}")
    if figures.get("kafka_lag_total") is not None:
        parts.append(f"kafka lag {figures['kafka_lag_total']} (max partition {figures['kafka_lag_max_partition']})")
    return ", ".join(parts)



def batches_fields(progress: Mapping[str, Any], figures: Mapping[str, Any]) -> dict[str, Any]:
    """Spark's view of a batch for its `batches` document: rows, duration and phases, watermark, state."""
    query = figures["query"]
    operators = progress.get("stateOperators") or []
    fields: dict[str, Any] = {
        "query": query, "batch_id": figures["batch_id"], "input_rows": figures["input_rows"],
        "dropped_by_watermark": figures["dropped_by_watermark"], "duplicates": figures["duplicates"],
        "duration_ms": figures["batch_duration_ms"],
        # where the batch's time went (addBatch = the sink, with the plan it runs; latestOffset, walCommit, ...)
        "phases_ms": {k: int(v) for k, v in (progress.get("durationMs") or {}).items() if k != "triggerExecution"},
        "state_commit_ms": sum(int(op.get("commitTimeMs", 0)) for op in operators),
        "state_rows": figures["state_rows"], "state_memory_bytes": figures["state_memory_bytes"],
        "input_rows_per_second": figures["input_rows_per_second"],
        "processed_rows_per_second": figures["processed_rows_per_second"],
        "processed_at": figures["recorded_at"]}
    if figures["watermark"] is not None:
        fields["watermark"] = figures["watermark"]
    return fields


def _offsets(value: Any) -> dict[str, int]:
    """{"topic": {"0": 12, ...}} (or its JSON text) -> {"topic:0": 12, ...}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    out: dict[str, int] = {}
    for topic, partitions in value.items():
        if isinstance(partitions, dict):
            for partition, offset in partitions.items():
                if isinstance(offset, (int, float)):
                    out[f"{topic}:{partition}"] = int(offset)
    return out


def _time(text: Any) -> dt.datetime | None:
    if not text or not isinstance(text, str) or text.startswith("1970-01-01"):
        return None
    return parse_instant(text)
