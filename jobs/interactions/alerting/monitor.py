"""The job's alerting, driver side: each micro-batch's fresh figures -> rule evaluation -> `alerts` -> channels.

Fed from inside the job (no polling service): the aggregates sink hands over its batch's minute figures (the
minute_counts values it just wrote), the per-user rate query its busiest user per window, the progress listener each
batch of the records query (records read, dead letters). Every entry point logs and swallows its own errors: alerting
never stops or slows the stream beyond a few small writes per batch.

The store comes first: a transition counts (in `firing()`, served to Prometheus) only once `alerts` holds it, its
notification claimed in the same write; when a write fails, the evaluation is undone and the next batch emits it
again. A notification claimed but never delivered (the job stopped in between) is delivered when the next job starts.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from contract.times import as_utc
from interactions.alerting.channels import Channel, EmailChannel, LogChannel, Notification, Notifier, WebhookChannel
from interactions.alerting.evaluation import DEFAULT_GRACE, FIRING, ONGOING, RESOLVED, Evaluator, Transition
from interactions.alerting.rules import RuleSet, load_rules
from interactions.alerting.store import AlertStore

if TYPE_CHECKING:
    from conf import PipelineConfig

log = logging.getLogger(__name__)
CLOSE_TIMEOUT_S = 15.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AlertMonitor:
    def __init__(self, rules: RuleSet, store: AlertStore, channels: list[Channel], *, attempts: int = 5,
                 backoff_s: float = 1.0, queue_size: int = 1000,
                 clock: Callable[[], dt.datetime] = _utcnow, grace: dt.timedelta = DEFAULT_GRACE):
        self.rules, self.store, self.clock = rules, store, clock
        self.evaluator = Evaluator(rules, grace)
        self.notifier = Notifier(channels, attempts, backoff_s, queue_size, on_result=self._record_delivery)
        self._lock = threading.Lock()
        self._closed = False
        for alert in store.firing():  # continue what was firing when the job stopped
            self.evaluator.restore(alert["rule"], alert["_id"], alert["first_seen"], alert["last_seen"])
        self._deliver_undelivered()

    @classmethod
    def from_config(cls, config: PipelineConfig) -> AlertMonitor | None:
        """None when alerting is off (no rules file, or no rule in it)."""
        settings = config.alerts
        if not settings.rules_file:
            return None
        rules = load_rules(settings.rules_file)
        if not rules.rules:
            return None
        from conf.loader import parse_duration_seconds

        store = AlertStore.connect(config.mongo.uri, config.mongo.database)
        kept = config.retention.alerts
        store.ensure_indexes(parse_duration_seconds(kept, "retention.alerts") if kept else None)

        monitor = cls(rules, store, channels_from_config(settings), attempts=settings.retry_attempts,
                      backoff_s=parse_duration_seconds(settings.retry_backoff), queue_size=settings.queue_size)
        log.info("alerting: %d rules from %s (%s); channels %s", len(rules.rules), rules.path,
                 ", ".join(r.name for r in rules.rules), ", ".join(monitor.notifier.channel_names))
        return monitor

    @property
    def user_rate_window(self) -> dt.timedelta | None:
        return self.rules.user_rate_window

    # -- figures in (called from the job's foreachBatch functions and its progress listener) ---------------------

    def on_aggregates_batch(self, minutes: list[tuple[dt.datetime, str, str, int, float]], batch_id: int) -> None:
        """Hook of AggregatesSink: the batch's minute_counts figures (window start, type, platform, events,
        revenue), absolute values."""
        try:
            self._run(lambda now: self.evaluator.observe_minutes(minutes, now), "aggregates", batch_id)
        except Exception as exc:  # noqa: BLE001 (alerting must never stop the stream)
            log.warning("alerting: aggregates batch %d not evaluated: %s", batch_id, exc)

    def on_busiest_users(self, rows: Iterable[tuple[dt.datetime, str, int]], batch_id: int) -> None:
        try:
            self._run(lambda now: self.evaluator.observe_busiest_users(rows, now), "user_rate", batch_id)
        except Exception as exc:  # noqa: BLE001 (alerting must never stop the stream)
            log.warning("alerting: user-rate batch %d not evaluated: %s", batch_id, exc)

    def on_records_batch(self, batch_id: int, processed_at: dt.datetime, records: int, dead_letters: int,
                         dropped: int = 0) -> None:
        try:
            self._run(lambda now: self.evaluator.observe_records_batch(batch_id, processed_at, records,
                                                                       dead_letters, dropped), "records",
                      batch_id)
        except Exception as exc:  # noqa: BLE001 (alerting must never stop the stream)
            log.warning("alerting: records batch %d not evaluated: %s", batch_id, exc)

    def firing(self) -> dict[str, bool]:
        with self._lock:
            return self.evaluator.firing()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Deliver what is queued (bounded), then release the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.notifier.close(timeout_s)
        self.store.close()

    # -- effects --------------------------------------------------------------------------------------------------

    def _run(self, evaluate: Callable[[dt.datetime], list[Transition]], query: str, batch_id: int) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                for transition in evaluate(self.clock()):
                    self._apply(transition, query, batch_id)
            except Exception:
                # nothing counts as firing or resolved that the store has not accepted: the next batch emits the
                # transitions again, and what this attempt did store is applied idempotently
                self.evaluator.undo()
                raise

    def _apply(self, t: Transition, query: str, batch_id: int) -> None:
        now = self.clock()
        if t.kind == ONGOING:
            self.store.touch(t, now)
            return
        body, channels = payload(t), self.notifier.channel_names
        if t.kind == FIRING and self.store.open(t, now, channels, body):
            log.warning("alert %s firing: %s = %s (%s) [%s batch %d]", t.alert_id, t.rule.metric, _num(t.value),
                        t.rule.summary(), query, batch_id)
        elif t.kind == RESOLVED and self.store.resolve(t, now, channels, body):
            log.info("alert %s resolved: %s = %s in the window from %s, clear for %s [%s batch %d]", t.alert_id,
                     t.rule.metric, _num(t.value), _iso(t.window_start), t.window_start - t.last_seen, query,
                     batch_id)
        else:
            log.info("alert %s: %s notification already sent (a replayed batch)", t.alert_id, t.kind)
            return
        self.notifier.send(Notification(t.alert_id, t.kind, body))

    def _deliver_undelivered(self) -> None:
        """Notifications a previous job claimed but did not deliver (it stopped in between): to the channels still
        owed them, once (their results are recorded as usual)."""
        try:
            for alert, kind, owed in self.store.undelivered(self.notifier.channel_names):
                claim = alert["notifications"][kind]
                log.warning("alert %s: the %s notification claimed at %s was never delivered; delivering it to %s",
                            alert["_id"], kind, claim["claimed_at"], ", ".join(owed))
                body = claim.get("payload") or payload_from_document(alert, kind)
                self.notifier.send(Notification(alert["_id"], kind, body), channels=owed)
        except Exception as exc:  # noqa: BLE001 (alerting must never stop the stream)
            log.warning("alerting: undelivered notifications not checked: %s", exc)

    def _record_delivery(self, n: Notification, channel: str, status: str, attempts: int, error: str | None) -> None:
        self.store.record_delivery(n.alert_id, n.kind, channel, status=status, attempts=attempts, error=error,
                                   now=self.clock())


def channels_from_config(settings: Any) -> list[Channel]:
    channels: list[Channel] = [LogChannel()]
    if settings.webhook_url:
        channels.append(WebhookChannel(settings.webhook_url))
    if settings.smtp_host:
        recipients = [r.strip() for r in settings.smtp_recipients.split(",") if r.strip()]
        channels.append(EmailChannel(settings.smtp_host, settings.smtp_port, sender=settings.smtp_sender,
                                     recipients=recipients, starttls=settings.smtp_starttls,
                                     username=settings.smtp_username, password=settings.smtp_password))
    return channels


def payload(t: Transition) -> dict[str, Any]:
    """What a notification says (the webhook's JSON body, the log line, the email's lines)."""
    rule = t.rule
    return {"alert_id": t.alert_id, "rule": rule.name, "description": rule.description, "metric": rule.metric,
            "comparison": rule.comparison, "threshold": rule.threshold, "window": rule.window_text,
            "window_start": _iso(t.window_start), "window_end": _iso(t.window_end), "value": t.value,
            "subject": t.subject, "first_seen": _iso(t.first_seen), "last_seen": _iso(t.last_seen)}


def payload_from_document(alert: dict[str, Any], kind: str) -> dict[str, Any]:
    """The payload of a notification claimed without one (by an older version), from the alert as stored."""
    window_start, window_end, value = alert["window_start"], alert["window_end"], alert.get("value")
    if kind == RESOLVED:
        window_start, window_end = alert["resolved_window"], alert["resolved_window"] + (window_end - window_start)
        value = alert.get("resolved_value")
    return {"alert_id": alert["_id"], "rule": alert["rule"], "description": alert.get("description", ""),
            "metric": alert["metric"], "comparison": alert["comparison"], "threshold": alert["threshold"],
            "window": alert["window"], "window_start": _iso(window_start), "window_end": _iso(window_end),
            "value": value, "subject": alert.get("subject"), "first_seen": _iso(alert["first_seen"]),
            "last_seen": _iso(alert["last_seen"])}


def _iso(when: dt.datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
