"""Pipeline health: each micro-batch's progress as figures, kept in `pipeline_metrics` (with a retention limit) and
served as the current values in Prometheus' text format from the driver.

The figures come from Spark's StreamingQueryProgress (rows, rates, duration, watermark, state, Kafka offsets) and,
for the records query, from the dead-letter and late counts its sink stored in `batches`. Kafka lag per partition
is the broker's latest offset minus the offset the batch read up to, both as Spark saw them when it planned the
batch (`sources[].latestOffset` / `endOffset`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

log = logging.getLogger(__name__)

PIPELINE_METRICS = "pipeline_metrics"
BATCHES = "batches"  # where the sinks record per-batch counts (docs/collections.md)
RETENTION_INDEX = "retention"


def batch_metrics(query: str, progress: Mapping[str, Any], set_aside: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """One `pipeline_metrics` document from a progress (as JSON-decoded) and the batch's `batches` record."""
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
    if set_aside:
        for key in ("dead_letters", "late_events"):
            if set_aside.get(key) is not None:
                figures[key] = int(set_aside[key])
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


def ensure_retention(collection: Collection, seconds: float) -> None:
    """A TTL index on recorded_at: the server deletes documents older than `seconds` (mongod checks every 60 s)."""
    ttl = max(1, int(seconds))
    try:
        collection.create_index([("recorded_at", ASCENDING)], name=RETENTION_INDEX, expireAfterSeconds=ttl)
    except OperationFailure:  # the retention changed: same key, new expiry
        collection.database.command("collMod", collection.name,
                                    index={"name": RETENTION_INDEX, "expireAfterSeconds": ttl})


class PipelineHealth:
    """Records each batch's figures and keeps the latest per query for the Prometheus endpoint. Thread-safe: the
    progress listener writes, the HTTP server's thread reads."""

    def __init__(self, uri: str, database: str, retention_seconds: float, prometheus_port: int = 0,
                 prometheus_host: str = "127.0.0.1"):
        self.uri, self.database, self.retention_seconds = uri, database, retention_seconds
        self.prometheus_port, self.prometheus_host = prometheus_port, prometheus_host
        self.alert_states: Callable[[], Mapping[str, bool]] | None = None
        self._client: MongoClient | None = None
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self._totals: dict[str, dict[str, int]] = {}
        self._server: Any = None
        self.bound_port: int | None = None

    def start(self) -> PipelineHealth:
        self._client = MongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
        ensure_retention(self._client[self.database][PIPELINE_METRICS], self.retention_seconds)
        if self.prometheus_port:
            self._start_exporter()
        return self

    def record(self, query: str, progress: Mapping[str, Any]) -> dict[str, Any]:
        """Store one batch's figures; returns them (also when MongoDB could not be written: health never stops the
        stream)."""
        set_aside = None
        db = self._client[self.database] if self._client is not None else None
        if db is not None:
            try:
                set_aside = db[BATCHES].find_one({"_id": f"{query}:{int(progress['batchId'])}"},
                                                 {"dead_letters": 1, "late_events": 1})
            except Exception as exc:
                log.warning("health: could not read the batches record of %s: %s", query, exc)
        figures = batch_metrics(query, progress, set_aside)
        if db is not None:
            try:
                db[PIPELINE_METRICS].replace_one({"_id": figures["_id"]}, figures, upsert=True)
            except Exception as exc:
                log.warning("health: could not record %s batch %s: %s", query, figures["batch_id"], exc)
        with self._lock:
            previous = self._latest.get(query)
            self._latest[query] = figures
            if previous is None or previous["batch_id"] != figures["batch_id"]:  # count a batch once
                totals = self._totals.setdefault(query, {})
                for key in ("input_rows", "dead_letters", "late_events", "dropped_by_watermark", "duplicates"):
                    totals[key] = totals.get(key, 0) + int(figures.get(key) or 0)
                totals["batches"] = totals.get("batches", 0) + 1
        return figures

    def latest(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {q: dict(f) for q, f in self._latest.items()}

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- Prometheus ----------------------------------------------------------------------------------------------

    def registry(self):
        from prometheus_client.registry import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return registry

    def exposition(self) -> bytes:
        """The current values in Prometheus' text format (what GET /metrics answers)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry())

    def _start_exporter(self) -> None:
        try:
            from prometheus_client import start_http_server

            self._server, _thread = start_http_server(self.prometheus_port, addr=self.prometheus_host,
                                                      registry=self.registry())
        except (OSError, ImportError) as exc:  # e.g. the port is taken: the job runs on without the endpoint
            log.warning("health: Prometheus endpoint not started on %s:%d: %s", self.prometheus_host,
                        self.prometheus_port, exc)
            return
        self.bound_port = self._server.server_port
        log.info("health: Prometheus metrics on http://%s:%d/metrics", self.prometheus_host, self.bound_port)


class _Collector:
    """Builds the metric families from the latest figures at each scrape."""

    def __init__(self, health: PipelineHealth):
        self.health = health

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        health = self.health
        with health._lock:
            latest = {q: dict(f) for q, f in health._latest.items()}
            totals = {q: dict(t) for q, t in health._totals.items()}

        def gauge(name: str, doc: str, key: str, scale: float = 1.0) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"interactions_{name}", doc, labels=["query"])
            for query, figures in sorted(latest.items()):
                if figures.get(key) is not None:
                    family.add_metric([query], float(figures[key]) * scale)
            return family

        yield gauge("batch_id", "Id of the query's last finished micro-batch", "batch_id")
        yield gauge("batch_input_rows", "Rows read by the last micro-batch", "input_rows")
        yield gauge("batch_input_rows_per_second", "Arrival rate seen by the last micro-batch",
                    "input_rows_per_second")
        yield gauge("batch_processed_rows_per_second", "Processing rate of the last micro-batch",
                    "processed_rows_per_second")
        yield gauge("batch_duration_seconds", "Duration of the last micro-batch", "batch_duration_ms", 0.001)
        yield gauge("batch_dropped_by_watermark_rows", "Rows the last micro-batch dropped behind the watermark",
                    "dropped_by_watermark")
        yield gauge("batch_duplicate_rows", "Redelivered events the last micro-batch dropped", "duplicates")
        yield gauge("batch_dead_letters", "Malformed records in the last micro-batch", "dead_letters")
        yield gauge("batch_late_events", "Late records set aside in the last micro-batch", "late_events")
        yield gauge("state_rows", "Rows in the query's state store", "state_rows")
        yield gauge("kafka_lag_offsets_all_partitions", "Offsets behind the latest, summed over partitions",
                    "kafka_lag_total")
        stamps = [(q, f["recorded_at"], f.get("watermark")) for q, f in sorted(latest.items())]
        batch_time = GaugeMetricFamily("interactions_batch_timestamp_seconds",
                                       "When the query's last micro-batch was triggered (epoch s)", labels=["query"])
        watermark = GaugeMetricFamily("interactions_watermark_timestamp_seconds",
                                      "The query's event-time watermark (epoch s)", labels=["query"])
        for query, recorded_at, mark in stamps:
            batch_time.add_metric([query], recorded_at.timestamp())
            if mark is not None:
                watermark.add_metric([query], mark.timestamp())
        yield batch_time
        yield watermark
        lag = GaugeMetricFamily("interactions_kafka_lag_offsets", "Offsets behind the latest, per partition",
                                labels=["query", "topic", "partition"])
        behind = GaugeMetricFamily("interactions_kafka_offsets_behind_latest",
                                   "Spark's min / max / avg offsets behind the latest over partitions",
                                   labels=["query", "stat"])
        for query, figures in sorted(latest.items()):
            for key, value in sorted((figures.get("kafka_lag") or {}).items()):
                topic, _, partition = key.rpartition(":")
                lag.add_metric([query, topic, partition], float(value))
            for stat, value in sorted((figures.get("kafka_offsets_behind_latest") or {}).items()):
                behind.add_metric([query, stat], float(value))
        yield lag
        yield behind
        for key, doc in (("input_rows", "Rows read since the job started"),
                         ("batches", "Micro-batches finished since the job started"),
                         ("dead_letters", "Malformed records since the job started"),
                         ("late_events", "Late records set aside since the job started"),
                         ("dropped_by_watermark", "Rows dropped behind the watermark since the job started"),
                         ("duplicates", "Redelivered events dropped since the job started")):
            family = CounterMetricFamily(f"interactions_{key}", doc, labels=["query"])
            for query, counts in sorted(totals.items()):
                family.add_metric([query], float(counts.get(key, 0)))
            yield family
        states = health.alert_states() if health.alert_states is not None else {}
        firing = GaugeMetricFamily("interactions_alert_firing", "1 while the alert rule is firing", labels=["rule"])
        for rule, on in sorted(states.items()):
            firing.add_metric([rule], 1.0 if on else 0.0)
        yield firing


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
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
