"""The `alerts` collection: one document per alert, keyed by rule + start of its first breaching window.

Written so that a replayed micro-batch changes nothing and notifies nobody twice:
* opening an alert is an upsert whose identity fields are `$setOnInsert`; further breaches only `$max` last_seen;
* resolving is conditional on `state: firing`, so it happens once;
* a notification is sent only by whoever *claims* it: the write that inserts the alert claims its firing
  notification and the one that resolves it the resolved one, in the same update (`notifications.<firing|resolved>`:
  when, to which channels, what it says). The channels then record what they delivered under it (status, attempts,
  error); a claim a channel has no result for (the job stopped in between) is still owed to it.

Resolved alerts expire `retention.alerts` after they resolved (a TTL index on `resolved_at`, which firing alerts
do not have: they never expire).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.database import Database

from interactions.alerting.evaluation import FIRING, RESOLVED, Transition
from interactions.sinks.indexes import ensure_retention

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

    def ensure_indexes(self, retention_seconds: float | None = None) -> None:
        """Query indexes, and the retention of resolved alerts (None: kept for ever)."""
        self.alerts.create_index([("state", ASCENDING), ("rule", ASCENDING)])
        self.alerts.create_index([("first_seen", ASCENDING)])
        ensure_retention(self.db, ALERTS, "resolved_at", retention_seconds)

    def firing(self) -> list[dict[str, Any]]:
        """Alerts still firing (to continue them after a restart), oldest first."""
        return list(self.alerts.find({"state": FIRING}).sort("first_seen", ASCENDING))

    def open(self, t: Transition, now: dt.datetime, channels: Sequence[str] = (),
             payload: dict[str, Any] | None = None) -> bool:
        """True if this call inserted the alert, claiming its firing notification (False: a replay updated it)."""
        rule = t.rule
        result = self.alerts.update_one({"_id": t.alert_id}, {
            "$setOnInsert": {
                "rule": rule.name, "metric": rule.metric, "comparison": rule.comparison,
                "threshold": rule.threshold, "window": rule.window_text, "description": rule.description,
                "window_start": t.window_start, "window_end": t.window_end, "first_seen": t.first_seen,
                "state": FIRING, "opened_at": now, "notifications": {FIRING: _claim(now, channels, payload)}},
            "$max": {"last_seen": t.last_seen, "peak_value": t.value},
            "$set": {"value": t.value, "subject": t.subject, "updated_at": now}}, upsert=True)
        return result.upserted_id is not None

    def touch(self, t: Transition, now: dt.datetime) -> None:
        """A further breach of a firing alert: latest value and last breaching window."""
        self.alerts.update_one({"_id": t.alert_id, "state": FIRING}, {
            "$max": {"last_seen": t.last_seen, "peak_value": t.value},
            "$set": {"value": t.value, "subject": t.subject, "updated_at": now}})

    def resolve(self, t: Transition, now: dt.datetime, channels: Sequence[str] = (),
                payload: dict[str, Any] | None = None) -> bool:
        """True if this call resolved it, claiming its resolved notification (False: already resolved, e.g. by the
        run a replay repeats)."""
        result = self.alerts.update_one({"_id": t.alert_id, "state": FIRING}, {"$set": {
            "state": RESOLVED, "resolved_at": now, "resolved_window": t.window_start, "resolved_value": t.value,
            "last_seen": t.last_seen, "updated_at": now,
            f"notifications.{RESOLVED}": _claim(now, channels, payload)}})
        return result.modified_count == 1

    def undelivered(self, channels: Sequence[str]) -> list[tuple[dict[str, Any], str, list[str]]]:
        """Claimed notifications some channel has no result for: (alert, firing|resolved, the channels owed it).

        Owed are the channels the claim named that are configured now (a channel added since gets no old
        notification); a claim that named none (an older version) is owed to every channel while none has a result.
        """
        clauses = [{f"notifications.{kind}.claimed_at": {"$exists": True},
                    f"notifications.{kind}.{channel}": {"$exists": False}}
                   for kind in (FIRING, RESOLVED) for channel in channels]
        if not clauses:
            return []
        owed_notifications = []
        for alert in self.alerts.find({"$or": clauses}).sort("first_seen", ASCENDING):
            for kind in (FIRING, RESOLVED):
                claim = (alert.get("notifications") or {}).get(kind)
                if not isinstance(claim, dict) or "claimed_at" not in claim:
                    continue
                named = claim.get("channels")
                if named is None:
                    delivered = any(isinstance(v, dict) and "status" in v for v in claim.values())
                    owed = [] if delivered else list(channels)
                else:
                    owed = [c for c in named if c in channels and c not in claim]
                if owed:
                    owed_notifications.append((alert, kind, owed))
        return owed_notifications

    def record_delivery(self, alert_id: str, kind: str, channel: str, *, status: str, attempts: int,
                        error: str | None, now: dt.datetime) -> None:
        self.alerts.update_one({"_id": alert_id}, {"$set": {f"notifications.{kind}.{channel}": {
            "status": status, "attempts": attempts, "error": error, "at": now}}})

    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self.alerts.find_one({"_id": alert_id})


def _claim(now: dt.datetime, channels: Sequence[str], payload: dict[str, Any] | None) -> dict[str, Any]:
    return {"claimed_at": now, "channels": list(channels), "payload": payload}
