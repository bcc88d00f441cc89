"""The progress listener: what the driver does when Spark reports a finished micro-batch."""
from __future__ import annotations

import json
import logging
from typing import Any

from pymongo.database import Database
from pyspark.sql.streaming import StreamingQueryListener

from interactions import QUERY, health
from interactions import documents as docs
from interactions.alerting.monitor import AlertMonitor
from interactions.progress import batch_metrics, batches_fields, describe
from interactions.sinks.batch import client

log = logging.getLogger(__name__)


class ProgressRecorder(StreamingQueryListener):
    """Writes each finished batch's progress (rows, duration and where it went, watermark, state, duplicates) to
    `batches`, keeps the health figures (`pipeline_metrics`, the Prometheus endpoint), hands the alert rules the
    batch's record and dead-letter counts, and logs one line per batch."""

    def __init__(self, uri: str, database: str, metrics: health.PipelineHealth | None = None,
                 alerts: AlertMonitor | None = None):
        self.uri, self.database = uri, database
        self.metrics, self.alerts = metrics, alerts

    def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's API)
        log.info("query %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event) -> None:  # noqa: N802
        progress = json.loads(event.progress.json)
        name = progress.get("name") or QUERY
        try:
            figures = batch_metrics(name, progress)
        except Exception as exc:  # noqa: BLE001 (health figures must never stop the stream)
            log.warning("no health figures for %s batch %s: %s", name, progress.get("batchId"), exc)
            return
        try:
            with client(self.uri) as mongo:
                record_progress(mongo[self.database], progress, figures)
        except Exception as exc:  # noqa: BLE001 (a health record must never stop the stream)
            log.warning("could not record progress of %s batch %s: %s", name, progress.get("batchId"), exc)
        try:
            if self.metrics is not None:
                figures = self.metrics.record(figures)
            if self.alerts is not None and figures["dead_letters"] is not None:
                self.alerts.on_records_batch(figures["batch_id"], figures["recorded_at"], figures["input_rows"],
                                             figures["dead_letters"], figures["dropped_by_watermark"] or 0)
            log.info("%s batch %s: %s", name, progress.get("batchId"), describe(figures))
        except Exception as exc:  # noqa: BLE001 (health figures must never stop the stream)
            log.warning("no health figures for %s batch %s: %s", name, progress.get("batchId"), exc)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        if event.exception:
            log.error("query %s failed: %s", event.id, event.exception.splitlines()[0])


def record_progress(db: Database, progress: dict[str, Any], figures: dict[str, Any]) -> None:
    """The batch's `batches` document gets Spark's view of it; a watermark drop is worth a warning."""
    query = figures["query"]
    fields = batches_fields(progress, figures)
    db[docs.BATCHES].update_one({"_id": f"{query}:{figures['batch_id']}"}, {"$set": fields}, upsert=True)
    if figures["dropped_by_watermark"]:
        log.warning("%s batch %d: %d records reached the job more than job.max_partition_lag"
                    " behind the newest broker time seen and were dropped", query, figures["batch_id"],
                    figures["dropped_by_watermark"])
