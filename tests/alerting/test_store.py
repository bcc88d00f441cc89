"""The `alerts` collection against the MongoDB-protocol server: a replayed batch, or a restarted job that
replays it, leaves one document and sends nothing twice."""
from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest
from bson.codec_options import CodecOptions
from pymongo.errors import AutoReconnect

from conf import load_config
from interactions.alerting.channels import Notification
from interactions.alerting.evaluation import FIRING, RESOLVED, Transition
from interactions.alerting.monitor import AlertMonitor, payload
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


def transition(kind: str, m: int, value: float) -> Transition:
    return Transition(kind, RULES.rules[0], "bot|2026-01-01T10:00:00Z", minute(m), minute(m + 1), value, "u7",
                      minute(0), minute(0))


def test_a_notification_is_claimed_once_by_the_write_that_opens_or_resolves_the_alert(mongo_db):
    store = AlertStore(aware(mongo_db))
    assert store.open(transition(FIRING, 0, 150), NOW, ["inbox"], {"value": 150}) is True
    assert store.open(transition(FIRING, 0, 150), NOW, ["inbox"], {"value": 150}) is False  # a replay
    assert store.resolve(transition(RESOLVED, 1, 20), NOW, ["inbox"], {"value": 20}) is True
    assert store.resolve(transition(RESOLVED, 1, 20), NOW, ["inbox"], {"value": 20}) is False
    claims = store.get("bot|2026-01-01T10:00:00Z")["notifications"]
    assert claims == {"firing": {"claimed_at": NOW, "channels": ["inbox"], "payload": {"value": 150}},
                      "resolved": {"claimed_at": NOW, "channels": ["inbox"], "payload": {"value": 20}}}


class FlakyStore(AlertStore):
    """The alert store, with MongoDB failing the next `failures[method]` calls of a method (a transient error)."""

    def __init__(self, db, **failures: int) -> None:
        super().__init__(db)
        self.failures = failures

    def _fail(self, method: str) -> None:
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            raise AutoReconnect(f"connection lost ({method})")

    def open(self, *args, **kwargs) -> bool:
        self._fail("open")
        return super().open(*args, **kwargs)

    def resolve(self, *args, **kwargs) -> bool:
        self._fail("resolve")
        return super().resolve(*args, **kwargs)


def test_an_alert_fires_only_once_stored_and_the_next_batch_stores_what_a_failed_write_lost(mongo_db, caplog):
    mongo_db = aware(mongo_db)
    inbox = Inbox()
    job = AlertMonitor(RULES, FlakyStore(mongo_db, open=1), [inbox], clock=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="interactions.alerting.monitor"):
        job.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)  # MongoDB fails: logged, the stream goes on
    assert any("user-rate batch 0 not evaluated" in r.getMessage() for r in caplog.records)
    assert job.firing() == {"bot": False} and mongo_db.alerts.count_documents({}) == 0  # Prometheus says what is stored

    job.on_busiest_users([(minute(0), "u7", 160)], batch_id=1)  # a later batch: the breach is there again
    assert job.firing() == {"bot": True}
    job.on_busiest_users([(minute(0), "u7", 160)], batch_id=1)  # ... and replayed: nothing twice
    job.close()
    assert inbox.kinds() == [("firing", "bot|2026-01-01T10:00:00Z")]
    alert = mongo_db.alerts.find_one()
    assert (alert["state"], alert["value"], alert["subject"]) == ("firing", 160, "u7")
    assert alert["notifications"]["firing"]["inbox"]["status"] == "sent"


def test_an_alert_resolves_only_once_stored(mongo_db):
    mongo_db = aware(mongo_db)
    inbox = Inbox()
    job = AlertMonitor(RULES, FlakyStore(mongo_db, resolve=1), [inbox], clock=lambda: NOW)
    job.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)
    job.on_busiest_users([(minute(1), "u7", 20), (minute(2), "u7", 20)], batch_id=1)  # clear: the resolve fails
    assert job.firing() == {"bot": True} and mongo_db.alerts.find_one()["state"] == "firing"

    job.on_busiest_users([(minute(3), "u7", 20)], batch_id=2)
    assert job.firing() == {"bot": False}
    job.close()
    assert inbox.kinds() == [("firing", "bot|2026-01-01T10:00:00Z"), ("resolved", "bot|2026-01-01T10:00:00Z")]
    alert = mongo_db.alerts.find_one()
    assert (alert["state"], alert["resolved_window"]) == ("resolved", minute(1))


def named(name: str) -> Inbox:
    inbox = Inbox()
    inbox.name = name
    return inbox


def test_a_notification_claimed_but_never_delivered_is_delivered_once_when_the_job_starts_again(mongo_db):
    mongo_db = aware(mongo_db)
    crashed = AlertMonitor(RULES, AlertStore(mongo_db), [named("inbox"), named("hook")], clock=lambda: NOW)
    crashed.notifier.send = lambda *args, **kwargs: None  # the job dies between the claim and the delivery
    crashed.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)
    crashed.close()
    mongo_db.alerts.update_one({"_id": "bot|2026-01-01T10:00:00Z"},  # one channel had delivered it
                               {"$set": {"notifications.firing.hook": {"status": "sent"}}})
    # a claim of an older version (the time alone), whose job died before any channel delivered it
    mongo_db.alerts.insert_one({
        "_id": "bot|2026-01-01T09:00:00Z", "rule": "bot", "metric": "max_user_events_per_minute", "comparison": ">",
        "threshold": 100.0, "window": "1 minute", "description": "", "state": "resolved", "value": 130,
        "subject": "u9", "window_start": minute(-60), "window_end": minute(-59), "first_seen": minute(-60),
        "last_seen": minute(-60), "resolved_window": minute(-58), "resolved_value": 3,
        "notifications": {"firing": {"claimed_at": NOW, "inbox": {"status": "sent"}},
                          "resolved": {"claimed_at": NOW}}})

    inbox, hook, added = named("inbox"), named("hook"), named("added")
    restarted = AlertMonitor(RULES, AlertStore(mongo_db), [inbox, hook, added], clock=lambda: NOW)
    wait_until(lambda: len(inbox.items) == 2 and hook.items and added.items, 10, "the undelivered notifications")
    restarted.on_busiest_users([(minute(0), "u7", 150)], batch_id=0)  # Spark replays the batch: nothing new
    restarted.close()
    assert sorted(inbox.kinds()) == [("firing", "bot|2026-01-01T10:00:00Z"), ("resolved", "bot|2026-01-01T09:00:00Z")]
    assert hook.kinds() == [("resolved", "bot|2026-01-01T09:00:00Z")]  # it had the new alert's firing already
    # a channel configured since is owed only what an older version claimed without naming channels
    assert added.kinds() == [("resolved", "bot|2026-01-01T09:00:00Z")]
    firing = next(n for n in inbox.items if n.kind == "firing")
    assert firing.payload == payload(transition(FIRING, 0, 150))  # what the crashed job would have sent
    resolved = next(n for n in inbox.items if n.kind == "resolved").payload
    assert (resolved["window_start"], resolved["window_end"], resolved["value"], resolved["subject"]) == (
        "2026-01-01T09:02:00Z", "2026-01-01T09:03:00Z", 3, "u9")

    again = named("inbox")
    AlertMonitor(RULES, AlertStore(mongo_db), [again], clock=lambda: NOW).close()  # once: the results are recorded
    assert again.kinds() == []


def test_resolved_alerts_expire_after_the_retention_and_firing_ones_never(mongo_server, mongo_db):
    config = load_config(env={}, overrides={"mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
                                            "retention": {"alerts": "7 days"}, "health": {"prometheus_port": 0}})
    job = AlertMonitor.from_config(config)  # the default rules; the job creates the indexes
    assert job is not None
    job.close()
    assert {i["name"]: i.get("expireAfterSeconds") for i in mongo_db.alerts.list_indexes()}["retention"] == 7 * 86400
    store = AlertStore(mongo_db)
    store.ensure_indexes(retention_seconds=3600)  # a changed retention updates the index in place
    assert {i["name"]: i.get("expireAfterSeconds") for i in mongo_db.alerts.list_indexes()}["retention"] == 3600
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    mongo_db.alerts.insert_many([
        {"_id": "old resolved", "state": "resolved", "first_seen": long_ago, "resolved_at": long_ago},
        {"_id": "new resolved", "state": "resolved", "first_seen": long_ago, "resolved_at": dt.datetime.now(dt.UTC)},
        {"_id": "old firing", "state": "firing", "first_seen": long_ago, "opened_at": long_ago}])

    def expired() -> bool:
        try:  # SecantusDB runs its TTL sweep on demand; a real mongod sweeps every 60 s
            mongo_db.client.admin.command("secantusAdmin.pruneTtl")
        except Exception:  # noqa: BLE001 (not SecantusDB: wait for the server's own sweep)
            pass
        return sorted(d["_id"] for d in mongo_db.alerts.find()) == ["new resolved", "old firing"]

    wait_until(expired, 90, "the alert resolved longer ago than the retention expired, the firing one stayed")
