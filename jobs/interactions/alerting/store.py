"""The `alerts` collection: one document per alert, keyed by rule + start of its first breaching window.

Written so that a replayed micro-batch changes nothing and notifies nobody twice:
* opening an alert is an upsert whose identity fields are `$setOnInsert`; further breaches only `$max` last_seen;
* resolving is conditional on `state: firing`, so it happens once;
* a notification is sent only by whoever *claims* it first: `notifications.<firing|resolved>` is set only where
  it does not exist yet, and the channels then record what they delivered under it (status, attempts, error).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.database import Database

from interactions.alerting.evaluation import FIRING, RESOLVED, Transition

ALERTS = "alerts"
log = logging.getLogger(__name__)


class AlertStore:
    def __init__(self, db: Database, owns_client: bool = False):
        self.db = db
        self.alerts = db[ALERTS]
        self.owns_client = owns_client

    @classmethod
    def connect(cls, uri: str, database: str) -> AlertStore:
        client: MongoClient = MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
        return cls(client[database], owns_client=True)

    def close(self) -> None:
        if self.owns_client:
            self.db.client.close()

    def ensure_indexes(self) -> None:
        self.alerts.create_index([("state", ASCENDING), ("rule", ASCENDING)])
        self.alerts.create_index([("first_seen", ASCENDING)])

    def firing(self) -> list[dict[str, Any]]:
        """Alerts still firing (to continue them after a restart), oldest first."""
        return list(self.alerts.find({"state": FIRING}).sort("first_seen", ASCENDING))

    def open(self, t: Transition, now: dt.datetime) -> None:
        rule = t.rule
        self.alerts.update_one({"_id": t.alert_id}, {
            "$setOnInsert": {
                "rule": rule.name, "metric": rule.metric, "comparison": rule.comparison,
                "threshold": rule.threshold, "window": rule.window_text, "description": rule.description,
                "window_start": t.window_start, "window_end": t.window_end, "first_seen": t.first_seen,
                "state": FIRING, "opened_at": now},
            "$max": {"last_seen": t.last_seen, "peak_value": t.value},
            "$set": {"value": t.value, "subject": t.subject, "updated_at": now}}, upsert=True)

    def touch(self, t: Transition, now: dt.datetime) -> None:
        """A further breach of a firing alert: latest value and last breaching window."""
        self.alerts.update_one({"_id": t.alert_id, "state": FIRING}, {
            "$max": {"last_seen": t.last_seen, "peak_value": t.value},
            "$set": {"value": t.value, "subject": t.subject, "updated_at": now}})

    def resolve(self, t: Transition, now: dt.datetime) -> bool:
        """True if this call resolved it (False: already resolved, e.g. by the run a replay repeats)."""
        result = self.alerts.update_one({"_id": t.alert_id, "state": FIRING}, {"$set": {
            "state": RESOLVED, "resolved_at": now, "resolved_window": t.window_start, "resolved_value": t.value,
            "last_seen": t.last_seen, "updated_at": now}})
        return result.modified_count == 1

    def claim_notification(self, alert_id: str, kind: str, now: dt.datetime) -> bool:
        """True for the first caller only: that one sends the `kind` (firing/resolved) notification."""
        result = self.alerts.update_one({"_id": alert_id, f"notifications.{kind}": {"$exists": False}},
                                        {"$set": {f"notifications.{kind}": {"claimed_at": now}}})
        return result.modified_count == 1

    def record_delivery(self, alert_id: str, kind: str, channel: str, *, status: str, attempts: int,
                        error: str | None, now: dt.datetime) -> None:
        self.alerts.update_one({"_id": alert_id}, {"$set": {f"notifications.{kind}.{channel}": {
            "status": status, "attempts": attempts, "error": error, "at": now}}})

    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self.alerts.find_one({"_id": alert_id})
