"""Pipeline health: each micro-batch's figures (interactions.progress) kept in `pipeline_metrics`, with a retention
limit, and the latest per query held for the Prometheus endpoint the driver serves (interactions.prometheus)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from interactions import documents as docs
from interactions import prometheus
from interactions.progress import add_set_aside

log = logging.getLogger(__name__)

PIPELINE_METRICS = "pipeline_metrics"
RETENTION_INDEX = "retention"


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

    def record(self, figures: dict[str, Any]) -> dict[str, Any]:
        """Store one batch's figures (interactions.progress.batch_metrics), with the dead-letter and late counts its
        sink stored in `batches`; returns them (also when MongoDB could not be written: health never stops the
        stream)."""
        query = figures["query"]
        db = self._client[self.database] if self._client is not None else None
        if db is not None:
            try:
                add_set_aside(figures, db[docs.BATCHES].find_one({"_id": figures["_id"]},
                                                                 {"dead_letters": 1, "late_events": 1}))
            except Exception as exc:  # noqa: BLE001 (health must never stop the stream)
                log.warning("health: could not read the batches record of %s: %s", query, exc)
        if db is not None:
            try:
                db[PIPELINE_METRICS].replace_one({"_id": figures["_id"]}, figures, upsert=True)
            except Exception as exc:  # noqa: BLE001 (health must never stop the stream)
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

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- Prometheus ----------------------------------------------------------------------------------------------

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
        """The latest figures and the totals since start, per query (copies, for a scrape)."""
        with self._lock:
            return ({q: dict(f) for q, f in self._latest.items()}, {q: dict(t) for q, t in self._totals.items()})

    def exposition(self) -> bytes:
        """The current values in Prometheus' text format (what GET /metrics answers)."""
        from prometheus_client import generate_latest

        return generate_latest(prometheus.registry(self))

    def _start_exporter(self) -> None:
        try:
            from prometheus_client import start_http_server

            self._server, _thread = start_http_server(self.prometheus_port, addr=self.prometheus_host,
                                                      registry=prometheus.registry(self))
        except (OSError, ImportError) as exc:  # e.g. the port is taken: the job runs on without the endpoint
            log.warning("health: Prometheus endpoint not started on %s:%d: %s", self.prometheus_host,
                        self.prometheus_port, exc)
            return
        self.bound_port = self._server.server_port
        log.info("health: Prometheus metrics on http://%s:%d/metrics", self.prometheus_host, self.bound_port)
