"""The `alerts` collection against the MongoDB-protocol server: a replayed batch, or a restarted job that
replays it, leaves one document and sends nothing twice."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from bson.codec_options import CodecOptions

from interactions.alerting.channels import Notification
from interactions.alerting.monitor import AlertMonitor
from interactions.alerting.rules import parse_rules
from interactions.alerting.store import AlertStore

from waiting import wait_until

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(hours=1)
RULES = parse_rules({"rule": [{"name": "bot", "metric": "max_user_events_per_minute", "comparison": ">",
                               "threshold": 100, "window": "1 minute", "cooldown": "1 minute"}]}, "test")


class Inbox:
    """A channel that keeps what it is given."""

    name = "inbox"

    def __init__(self) -> None:
        self.items: list[Notification] = []
        self.lock = threading.Lock()

    def deliver(self, notification: Notification) -> None:
        with self.lock:
            self.items.append(notification)

    def kinds(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(n.kind, n.alert_id) for n in self.items]


def monitor(db, inbox: Inbox) -> AlertMonitor:
    return AlertMonitor(RULES, AlertStore(db), [inbox], clock=lambda: NOW)


def aware(db):
    """The database as the job's clients see it: dates come back as aware UTC datetimes."""
    return db.with_options(codec_options=CodecOptions(tz_aware=True))


def minute(m: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=m)


def test_a_replayed_batch_and_a_restarted_job_notify_once(mongo_db):
    mongo_db = aware(mongo_db)
    inbox = Inbox()
    job = monitor(mongo_db, inbox)
    job.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)
    job.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)  # the same batch again, same process
    job.close()
    assert inbox.kinds() == [("firing", "bot|2026-01-01T10:00:00Z")]

    restarted = monitor(mongo_db, inbox)  # a new driver: continues the firing alert read back from the store
    restarted.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)  # Spark replays the last batch
    restarted.on_busiest_users([(minute(1), "u7", 20), (minute(2), "u7", 20)], batch_id=1)
    restarted.close()
    assert inbox.kinds() == [("firing", "bot|2026-01-01T10:00:00Z"), ("resolved", "bot|2026-01-01T10:00:00Z")]

    alert = mongo_db.alerts.find_one()
    assert mongo_db.alerts.count_documents({}) == 1
    assert (alert["state"], alert["subject"], alert["value"], alert["threshold"]) == ("resolved", "u7", 150, 100)
    assert alert["first_seen"] == minute(0) and alert["resolved_window"] == minute(1)
    assert alert["notifications"]["firing"]["inbox"]["status"] == "sent"
    assert alert["notifications"]["resolved"]["inbox"]["status"] == "sent"


def test_a_notification_is_claimed_once(mongo_db):
    store = AlertStore(mongo_db)
    mongo_db.alerts.insert_one({"_id": "bot|x", "state": "firing"})
    assert store.claim_notification("bot|x", "firing", NOW) is True
    assert store.claim_notification("bot|x", "firing", NOW) is False
    assert store.claim_notification("bot|x", "resolved", NOW) is True
    wait_until(lambda: mongo_db.alerts.find_one()["notifications"].keys() == {"firing", "resolved"}, 5,
               "both claims recorded")
