"""Rule evaluation: fresh figures in, alert transitions out. Pure Python, no Spark, no I/O, no clock of its own.

Each rule is evaluated over aligned, tumbling windows of its `window` length (event time for the per-minute and
per-user metrics, processing time for the dead-letter ratio). Figures arrive per micro-batch as absolute values of
the windows the batch changed (Spark's update mode), so merging a replayed batch changes nothing.

* A window is **complete** once a later window has data and the job's clock has passed its end by `grace` (the
  stragglers of a minute arrive a few seconds after it). Only complete windows can show that a value is low, or
  that a firing alert has cleared.
* The current window is partial. For a growing value compared with > or >= (event counts, the busiest user's
  count), part of a window already proves a breach, so those rules fire as soon as the threshold is crossed.
* The first window seen after the job starts is partial too (the stream, or this process, began inside it): it
  can fire a rule that fires early, never clear one, and never fire a "below" rule.
* A window with no data at all between two with data counts as zero events (a silent minute is a low minute).
* **Cooldown**: a firing alert resolves only after the condition has been clear for `cooldown` of window time
  (from the start of its last breaching window to the start of the clear window being judged). A breach before
  that continues the same alert: a flapping metric gives one firing and one resolved notification, not a storm.
* **Undo**: the caller stores each transition before it counts; when that fails, `undo` takes back what the
  evaluation did to the rules (the figures stay), so the next evaluation emits those transitions again.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from contract.times import as_utc, floor
from interactions.alerting.rules import MINUTES, RECORDS, USERS, Rule, RuleSet

FIRING, ONGOING, RESOLVED = "firing", "ongoing", "resolved"
MINUTE = dt.timedelta(minutes=1)
DEFAULT_GRACE = dt.timedelta(seconds=15)
HORIZON_WINDOWS = 60  # windows further behind the newest than this are not evaluated (a jump in time, old data)


@dataclass(frozen=True)
class Transition:
    """What happened to a rule's alert in one evaluation."""

    kind: str                # FIRING (new alert), ONGOING (a further breach of a firing alert), RESOLVED
    rule: Rule
    alert_id: str            # "<rule>|<start of the first breaching window>": the same under a replay
    window_start: dt.datetime
    window_end: dt.datetime
    value: float | None      # the window's value (the breaching value; for RESOLVED the clear value)
    subject: str | None      # what the value is about, e.g. the user of max_user_events_per_minute
    first_seen: dt.datetime  # start of the first breaching window
    last_seen: dt.datetime   # start of the last breaching window


@dataclass
class _Firing:
    alert_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass
class _RuleState:
    cursor: dt.datetime | None = None   # start of the last window judged complete
    partial: dt.datetime | None = None  # the first window seen: its data may be incomplete
    firing: _Firing | None = None


@dataclass
class _Series:
    """Recent figures of one source, keyed by window start (UTC)."""

    step: dt.timedelta
    values: dict[dt.datetime, Any] = field(default_factory=dict)  # per source: see the observe_* methods
    newest: dt.datetime | None = None


class Evaluator:
    """Holds recent figures and each rule's state; not thread-safe (the caller serialises calls)."""

    def __init__(self, rules: RuleSet, grace: dt.timedelta = DEFAULT_GRACE):
        self.rules = rules
        self.grace = grace
        user_step = rules.user_rate_window or MINUTE
        self._series = {MINUTES: _Series(MINUTE), USERS: _Series(user_step), RECORDS: _Series(MINUTE)}
        self._states = {rule.name: _RuleState() for rule in rules.rules}
        self._record_batches: dict[int, dt.datetime] = {}
        self._windows = {rule.name: rule.window for rule in rules.rules}
        self._before: dict[str, tuple[dt.datetime | None, _Firing | None]] = {}  # rule states before the last call

    # -- figures in ----------------------------------------------------------------------------------------------

    def observe_minutes(self, rows: Iterable[tuple[dt.datetime, str, str, int, float]],
                        now: dt.datetime) -> list[Transition]:
        """Rows of minute_counts as the aggregates query just emitted them: (minute start, interaction type,
        platform, events, revenue), absolute values."""
        self._remember()
        series = self._series[MINUTES]
        touched = set()
        for start, interaction_type, platform, events, revenue in rows:
            minute = floor(start, MINUTE)
            cells = series.values.setdefault(minute, {})
            cells[(interaction_type, platform)] = (int(events), float(revenue or 0.0))
            touched.add(minute)
        return self._observe(MINUTES, touched, now)

    def observe_busiest_users(self, rows: Iterable[tuple[dt.datetime, str, int]],
                              now: dt.datetime) -> list[Transition]:
        """Per window of the per-user query: (window start, busiest user in this batch's changes, its count).
        Counts only grow within a window, so the window's busiest user is the larger of what was known and this."""
        self._remember()
        series = self._series[USERS]
        touched = set()
        for start, user, interactions in rows:
            window = floor(start, series.step)
            known = series.values.get(window)
            candidate = (int(interactions), user)
            if known is None or candidate > known:
                series.values[window] = candidate
            touched.add(window)
        return self._observe(USERS, touched, now)

    def observe_records_batch(self, batch_id: int, processed_at: dt.datetime, records: int,
                              dead_letters: int, dropped: int = 0) -> list[Transition]:
        """One batch of the query that reads every Kafka record: how many it read, how many were dead letters and
        how many were dropped behind the watermark. Keyed by batch id, so a batch reported twice counts once."""
        self._remember()
        series = self._series[RECORDS]
        minute = self._record_batches.get(batch_id) or floor(processed_at, MINUTE)
        self._record_batches[batch_id] = minute
        series.values.setdefault(minute, {})[batch_id] = (int(records), int(dead_letters), int(dropped))
        return self._observe(RECORDS, {minute}, max(processed_at, minute))

    def restore(self, rule_name: str, alert_id: str, first_seen: dt.datetime, last_seen: dt.datetime) -> None:
        """Continue an alert that was firing when the job stopped (read back from the alert store)."""
        if rule_name in self._states:
            self._states[rule_name].firing = _Firing(alert_id, as_utc(first_seen), as_utc(last_seen))

    def firing(self) -> dict[str, bool]:
        return {name: state.firing is not None for name, state in self._states.items()}

    def undo(self) -> None:
        """Take back what the last observe_* call did to the rules' alerts (its transitions could not be stored):
        each rule's alert and judged windows return to where they were; the figures stay. They are absolute values,
        so the next call emits the same transitions again, and the store applies each one idempotently."""
        for name, (cursor, firing) in self._before.items():
            state = self._states[name]
            state.firing = firing
            if cursor is not None:
                state.cursor = cursor
            elif state.partial is not None:  # the rule's first evaluation: it still starts at the same window
                state.cursor = state.partial - self._windows[name]
        self._before = {}

    # -- evaluation ----------------------------------------------------------------------------------------------

    def _remember(self) -> None:
        """The rules' states as this observe_* call finds them, for `undo`."""
        self._before = {name: (state.cursor, replace(state.firing) if state.firing else None)
                        for name, state in self._states.items()}

    def _observe(self, source: str, touched: set[dt.datetime], now: dt.datetime) -> list[Transition]:
        series = self._series[source]
        if not touched:
            return []
        newest = max(touched)
        if series.newest is None or newest > series.newest:
            series.newest = newest
        transitions: list[Transition] = []
        for rule in self.rules.for_source(source):
            transitions.extend(self._evaluate(rule, series, touched, now))
        self._prune(series)
        return transitions

    def _evaluate(self, rule: Rule, series: _Series, touched: set[dt.datetime],
                  now: dt.datetime) -> list[Transition]:
        state = self._states[rule.name]
        length = rule.window
        assert series.newest is not None
        horizon = floor(series.newest, length) - HORIZON_WINDOWS * length
        if state.cursor is None:
            state.partial = max(floor(min(touched), length), horizon)
            state.cursor = state.partial - length
        elif state.cursor < horizon - length:
            state.cursor = horizon - length
        out: list[Transition] = []
        if rule.fires_early:  # windows not judged yet, complete or not: a crossed threshold is already final
            for start in sorted({floor(t, length) for t in touched}):
                if start > state.cursor and start >= horizon:
                    value, subject = self._value(rule, series, start)
                    if value is not None and rule.breached(value):
                        out.append(self._breach(rule, state, start, value, subject))
        start = state.cursor + length
        while self._complete(series, start, length, now):
            value, subject = self._value(rule, series, start)
            reliable = start != state.partial
            if value is None:
                pass
            elif rule.breached(value):
                if reliable or rule.fires_early:
                    out.append(self._breach(rule, state, start, value, subject))
            elif reliable and state.firing is not None and start > state.firing.last_seen \
                    and start - state.firing.last_seen >= rule.cooldown:
                firing = state.firing
                state.firing = None
                out.append(Transition(RESOLVED, rule, firing.alert_id, start, start + length, value, subject,
                                      firing.first_seen, firing.last_seen))
            state.cursor = start
            start += length
        return out

    def _breach(self, rule: Rule, state: _RuleState, start: dt.datetime, value: float,
                subject: str | None) -> Transition:
        if state.firing is None:
            state.firing = _Firing(alert_id(rule.name, start), start, start)
            kind = FIRING
        else:
            state.firing.last_seen = max(state.firing.last_seen, start)
            kind = ONGOING
        firing = state.firing
        return Transition(kind, rule, firing.alert_id, start, start + rule.window, value, subject,
                          firing.first_seen, firing.last_seen)

    def _complete(self, series: _Series, start: dt.datetime, length: dt.timedelta, now: dt.datetime) -> bool:
        end = start + length
        return series.newest is not None and series.newest >= end and now >= end + self.grace

    def _value(self, rule: Rule, series: _Series, start: dt.datetime) -> tuple[float | None, str | None]:
        minutes = rule.window / MINUTE
        if rule.source == USERS:
            busiest = series.values.get(start)
            if busiest is None:
                return 0.0, None
            count, user = busiest
            return count / minutes, user
        steps = [start + i * series.step for i in range(int(rule.window / series.step))]
        cells = [series.values.get(s) or {} for s in steps]
        if rule.source == RECORDS:
            if rule.metric == "dropped_by_watermark_per_minute":
                return sum(n for cell in cells for _, _, n in cell.values()) / minutes, None
            records = sum(r for cell in cells for r, _, _ in cell.values())
            dead = sum(d for cell in cells for _, d, _ in cell.values())
            return (dead / records if records else None), None
        if rule.metric == "events_per_minute":
            total = sum(e for cell in cells for e, _ in cell.values())
        elif rule.metric == "purchases_per_minute":
            total = sum(e for cell in cells for (kind, _), (e, _) in cell.items()
                        if kind == "purchase")
        elif rule.metric == "revenue_per_minute":
            total = sum(r for cell in cells for _, r in cell.values())
        else:
            raise ValueError(f"no evaluation for metric {rule.metric!r}")
        return total / minutes, None

    def _prune(self, series: _Series) -> None:
        if series.newest is None:
            return
        longest = max((r.window for r in self.rules.rules), default=MINUTE)
        oldest = series.newest - (HORIZON_WINDOWS + 2) * max(longest, series.step)
        for start in [s for s in series.values if s < oldest]:
            del series.values[start]
        if len(self._record_batches) > 10_000:
            for batch_id in sorted(self._record_batches)[:-1000]:
                del self._record_batches[batch_id]


def alert_id(rule_name: str, first_window: dt.datetime) -> str:
    return f"{rule_name}|{first_window.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
