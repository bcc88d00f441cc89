"""Where notifications go: a structured log line, an HTTP webhook (JSON POST), email over SMTP.

Delivery never blocks the stream: `Notifier.send` puts the notification on one bounded queue per channel and
returns; a daemon thread per channel delivers it, retrying a failure with exponential backoff (logged each time),
and reports the outcome (sent / failed / dropped, attempts, last error) to a callback that records it. A full
queue drops the notification with an error line instead of waiting. A slow or dead channel delays only itself.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import queue
import re
import smtplib
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
SENT, FAILED, DROPPED = "sent", "failed", "dropped"
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # control characters, line separators


@dataclass(frozen=True)
class Notification:
    alert_id: str
    kind: str                # "firing" | "resolved"
    payload: dict[str, Any]  # JSON-able: what the webhook posts and the log line shows

    def headline(self) -> str:
        p = self.payload
        subject = f" ({p['subject']})" if p.get("subject") else ""
        value = "-" if p.get("value") is None else f"{p['value']:g}"
        return (f"[{self.kind.upper()}] {p['rule']}: {p['metric']} {value}{subject} "
                f"{p['comparison']} {p['threshold']:g} in the window from {p['window_start']}")


class Channel(Protocol):
    name: str

    def deliver(self, notification: Notification) -> None:
        """Deliver once; raise on failure (the notifier retries)."""


class LogChannel:
    """One JSON line per notification on the `interactions.alerts` logger (warning when firing)."""

    name = "log"

    def __init__(self) -> None:
        self.logger = logging.getLogger("interactions.alerts")

    def deliver(self, notification: Notification) -> None:
        level = logging.WARNING if notification.kind == "firing" else logging.INFO
        self.logger.log(level, "ALERT %s", json.dumps({"state": notification.kind, **notification.payload},
                                                      sort_keys=True, default=str))


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url, self.timeout_s = url, timeout_s

    def deliver(self, notification: Notification) -> None:
        body = json.dumps({"state": notification.kind, **notification.payload}, default=str).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "interaction-analytics-alerts"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # raises on 4xx/5xx
            response.read()


class EmailChannel:
    """Mail over SMTP. With `starttls` the server's certificate and host name are verified against the system's CA
    store (or SSL_CERT_FILE): Python's smtplib verifies neither unless given a context. A login (`username`) without
    TLS is refused unless the server is on this host (loopback): it would send the password readable to the network
    path."""

    name = "email"

    def __init__(self, host: str, port: int, *, sender: str, recipients: list[str], starttls: bool = False,
                 username: str = "", password: str = "", timeout_s: float = 10.0):
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.starttls, self.username, self.password, self.timeout_s = starttls, username, password, timeout_s
        if username and not starttls and not is_loopback(host):
            raise ValueError(f"alerts: refusing to log in to the SMTP server {host}:{port} without TLS (the password "
                             "would cross the network readable): set alerts.smtp_starttls = true")

    def deliver(self, notification: Notification) -> None:
        message = EmailMessage()
        message["Subject"] = header_value(notification.headline())
        message["From"] = header_value(self.sender)
        message["To"] = header_value(", ".join(self.recipients))
        message["X-Alert-Id"] = header_value(notification.alert_id)
        lines = [notification.headline(), ""] + [f"{k}: {v}" for k, v in sorted(notification.payload.items())]
        message.set_content("\n".join(lines) + "\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                if not self.starttls and not is_loopback(self.host):
                    raise smtplib.SMTPException(f"not logging in to {self.host} without TLS")
                smtp.login(self.username, self.password)
            smtp.send_message(message)


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1): the one place a password may travel without TLS."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def header_value(text: str) -> str:
    """`text` without control characters or line breaks (each run becomes one space): the subject quotes a user id,
    free text from producers, and a header value with a line feed makes the whole message fail."""
    return _UNSAFE_IN_HEADER.sub(" ", text).strip()


ResultCallback = Callable[[Notification, str, str, int, "str | None"], None]


class Notifier:
    """Fan-out to channels through bounded queues; `send` never blocks, `close` drains with a deadline."""

    def __init__(self, channels: list[Channel], attempts: int = 5, backoff_s: float = 1.0, queue_size: int = 1000,
                 on_result: ResultCallback | None = None):
        self.attempts, self.backoff_s = max(1, attempts), backoff_s
        self.on_result = on_result
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._workers = [_ChannelWorker(self, channel, queue_size) for channel in channels]

    @property
    def channel_names(self) -> list[str]:
        return [w.channel.name for w in self._workers]

    def send(self, notification: Notification, channels: Collection[str] | None = None) -> None:
        """To every channel, or to those named."""
        for worker in self._workers:
            if channels is None or worker.channel.name in channels:
                worker.submit(notification)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (retries included) for at most timeout_s, then give up on the rest."""
        self._closing.set()
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._abort.set()
        for worker in self._workers:
            worker.thread.join(1.0)

    def _report(self, notification: Notification, channel: str, status: str, attempts: int,
                error: str | None) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(notification, channel, status, attempts, error)
        # recording the outcome is best effort; the delivery itself happened or not
        except Exception as exc:  # noqa: BLE001 (any failure)
            log.warning("could not record the %s delivery of alert %s: %s", channel, notification.alert_id, exc)


class _ChannelWorker:
    def __init__(self, notifier: Notifier, channel: Channel, queue_size: int):
        self.notifier, self.channel = notifier, channel
        self.queue: queue.Queue[Notification] = queue.Queue(maxsize=max(1, queue_size))
        self.thread = threading.Thread(target=self._run, name=f"alert-{channel.name}", daemon=True)
        self.thread.start()

    def submit(self, notification: Notification) -> None:
        try:
            self.queue.put_nowait(notification)
        except queue.Full:
            log.error("alert channel %s: %d notifications waiting, dropping %s %s", self.channel.name,
                      self.queue.qsize(), notification.kind, notification.alert_id)
            self.notifier._report(notification, self.channel.name, DROPPED, 0, "queue full")

    def _run(self) -> None:
        notifier = self.notifier
        while True:
            try:
                notification = self.queue.get(timeout=0.1)
            except queue.Empty:
                if notifier._closing.is_set():
                    return
                continue
            self._deliver(notification)

    def _deliver(self, notification: Notification) -> None:
        notifier, name = self.notifier, self.channel.name
        for attempt in range(1, notifier.attempts + 1):
            try:
                self.channel.deliver(notification)
            except Exception as exc:  # noqa: BLE001 (any failure of a channel is retried, then reported)
                error = f"{type(exc).__name__}: {exc}"
                if attempt == notifier.attempts or notifier._abort.is_set():
                    log.error("alert channel %s: giving up on %s %s after %d attempts: %s", name,
                              notification.kind, notification.alert_id, attempt, error)
                    notifier._report(notification, name, FAILED, attempt, error)
                    return
                delay = min(MAX_BACKOFF_S, notifier.backoff_s * 2 ** (attempt - 1))
                log.warning("alert channel %s: attempt %d/%d for %s %s failed (%s); retrying in %.1f s", name,
                            attempt, notifier.attempts, notification.kind, notification.alert_id, error, delay)
                notifier._abort.wait(delay)
            else:
                if attempt > 1:
                    log.info("alert channel %s: %s %s delivered on attempt %d", name, notification.kind,
                             notification.alert_id, attempt)
                notifier._report(notification, name, SENT, attempt, None)
                return
