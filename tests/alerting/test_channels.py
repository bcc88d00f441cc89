"""The channels against real local receivers: delivery, retry with backoff, and never blocking the caller."""
from __future__ import annotations

import logging
import threading
import time

from interactions.alerting.channels import (
    DROPPED,
    FAILED,
    SENT,
    EmailChannel,
    LogChannel,
    Notification,
    Notifier,
    WebhookChannel,
)
from stack import free_port

from waiting import wait_until

PAYLOAD = {"alert_id": "spike|2026-01-01T10:01:00Z", "rule": "spike", "description": "", "metric": "events_per_minute",
           "comparison": ">", "threshold": 100.0, "window": "1 minute", "window_start": "2026-01-01T10:01:00Z",
           "window_end": "2026-01-01T10:02:00Z", "value": 150.0, "subject": None,
           "first_seen": "2026-01-01T10:01:00Z", "last_seen": "2026-01-01T10:01:00Z"}


def notification(n: int = 0, kind: str = "firing") -> Notification:
    alert_id = f"spike|2026-01-01T10:{n:02d}:00Z"
    return Notification(alert_id, kind, {**PAYLOAD, "alert_id": alert_id})


class Results:
    """The notifier's outcome callback, recorded."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, int, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, n: Notification, channel: str, status: str, attempts: int, error: str | None) -> None:
        with self.lock:
            self.items.append((n.alert_id, channel, status, attempts, error))

    def of(self, channel: str) -> list[tuple[str, str, str, int, str | None]]:
        with self.lock:
            return [item for item in self.items if item[1] == channel]


def test_a_notification_reaches_the_log_the_webhook_and_the_mailbox(webhook_receiver, smtp_receiver, caplog):
    results = Results()
    notifier = Notifier([LogChannel(), WebhookChannel(webhook_receiver.url),
                         EmailChannel("127.0.0.1", smtp_receiver.port, sender="job@test",
                                      recipients=["ops@test", "oncall@test"])],
                        on_result=results)
    with caplog.at_level(logging.INFO, logger="interactions.alerts"):
        notifier.send(notification(1))
        wait_until(lambda: len(results.items) == 3, 20, "deliveries on all three channels")
    notifier.close()
    assert sorted((channel, status, attempts) for _, channel, status, attempts, _ in results.items) == [
        ("email", SENT, 1), ("log", SENT, 1), ("webhook", SENT, 1)]
    body = webhook_receiver.messages()[0]
    assert body["state"] == "firing" and body["rule"] == "spike" and body["value"] == 150.0
    mail = smtp_receiver.messages()[0]
    assert mail["Subject"].startswith("[FIRING] spike: events_per_minute 150 > 100")
    assert mail["X-Alert-Id"] == "spike|2026-01-01T10:01:00Z" and smtp_receiver.recipients == [["ops@test",
                                                                                                 "oncall@test"]]
    assert any('"rule": "spike"' in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_failing_webhook_is_retried_with_backoff_until_it_accepts(webhook_receiver, caplog):
    webhook_receiver.failures_left = 2
    results = Results()
    notifier = Notifier([WebhookChannel(webhook_receiver.url)], attempts=4, backoff_s=0.05, on_result=results)
    with caplog.at_level(logging.WARNING, logger="interactions.alerting.channels"):
        notifier.send(notification(1))
        wait_until(lambda: results.of("webhook"), 20, "the webhook's delivery outcome")
    notifier.close()
    assert results.of("webhook") == [("spike|2026-01-01T10:01:00Z", "webhook", SENT, 3, None)]
    assert webhook_receiver.attempts == 3 and len(webhook_receiver.messages()) == 1
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and "retrying in 0.1 s" in retries[1]  # 0.05 s, then doubled


def test_a_dead_channel_never_blocks_the_caller_and_a_full_queue_drops(caplog):
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    results = Results()
    notifier = Notifier([WebhookChannel(dead, timeout_s=2),
                         EmailChannel("127.0.0.1", free_port(), sender="job@test", recipients=["ops@test"],
                                      timeout_s=2)],
                        attempts=3, backoff_s=0.05, queue_size=2, on_result=results)
    started = time.monotonic()
    for n in range(6):
        notifier.send(notification(n))
    assert time.monotonic() - started < 0.5  # six sends into two dead channels: no waiting
    wait_until(lambda: len(results.items) == 12, 30, "an outcome for every notification on both channels")
    notifier.close(timeout_s=5)
    for channel in ("webhook", "email"):
        outcomes = results.of(channel)
        failed = [o for o in outcomes if o[2] == FAILED]
        assert failed and all(o[3] == 3 for o in failed)  # tried three times, then given up
        assert [o for o in outcomes if o[2] == DROPPED]  # the queue held two: the rest were dropped at once
    assert any("giving up" in r.getMessage() for r in caplog.records)


def test_a_user_id_with_line_breaks_still_gets_its_mail_with_clean_headers(smtp_receiver):
    user = "bot\r\nBcc: everyone@test\x00\u2028x"  # user ids are free text from producers
    bot = Notification("bot|2026-01-01T10:01:00Z", "firing", {
        **PAYLOAD, "alert_id": "bot|2026-01-01T10:01:00Z", "rule": "bot", "metric": "max_user_events_per_minute",
        "subject": user})
    results = Results()
    notifier = Notifier([EmailChannel("127.0.0.1", smtp_receiver.port, sender="job@test\n",
                                      recipients=["ops@test"])], attempts=1, on_result=results)
    notifier.send(bot)
    wait_until(lambda: results.of("email"), 20, "the mail's delivery outcome")
    notifier.close()
    assert results.of("email") == [("bot|2026-01-01T10:01:00Z", "email", SENT, 1, None)]
    mail = smtp_receiver.messages()[0]
    assert mail["Subject"] == "[FIRING] bot: max_user_events_per_minute 150 (bot Bcc: everyone@test x) > 100 " \
                              "in the window from 2026-01-01T10:01:00Z"
    assert mail["Bcc"] is None and mail["From"] == "job@test" and smtp_receiver.recipients == [["ops@test"]]
