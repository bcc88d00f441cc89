"""Rule evaluation, without any server: figures per micro-batch in, firing / ongoing / resolved transitions out.

Times are fixed: minute m of the scenario starts at T0 + m minutes, and the job's clock is an hour later unless a
test is about the clock, so every window that has a successor with data is complete.
"""
from __future__ import annotations

import datetime as dt

from interactions.alerting.evaluation import FIRING, ONGOING, RESOLVED, Evaluator
from interactions.alerting.rules import parse_rules

T0 = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(hours=1)


def evaluator(**rule: object) -> Evaluator:
    table = {"name": "r", "comparison": ">", "window": "1 minute", "cooldown": "0 minutes", **rule}
    return Evaluator(parse_rules({"rule": [table]}, "test"))


def at(minute: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


def minutes(ev: Evaluator, now: dt.datetime = LATER, **per_minute: tuple[int, int]) -> list:
    """Absolute counts per minute as the aggregates query emits them: m<N>=(views, purchases)."""
    rows = []
    for key, (views, purchases) in per_minute.items():
        start = at(int(key[1:]))
        rows += [(start, "view", "web", views, 0.0), (start, "purchase", "web", purchases, 9.5 * purchases)]
    return ev.observe_minutes(rows, now)


def kinds(transitions: list) -> list[tuple[str, str]]:
    return [(t.kind, t.window_start.strftime("%H:%M")) for t in transitions]


def changes(transitions: list) -> list[tuple[str, str]]:
    """Only what notifies: firing and resolved (ongoing transitions just update the alert's latest value)."""
    return [k for k in kinds(transitions) if k[0] != ONGOING]


def test_a_count_over_its_threshold_fires_before_the_minute_is_over():
    ev = evaluator(metric="events_per_minute", threshold=100)
    assert minutes(ev, m0=(40, 0)) == []
    fired = minutes(ev, m0=(140, 0))  # the same minute, later: absolute values, not increments
    assert kinds(fired) == [(FIRING, "10:00")]
    assert fired[0].value == 140 and fired[0].alert_id == "r|2026-01-01T10:00:00Z"


def test_the_same_batch_twice_fires_once():
    ev = evaluator(metric="events_per_minute", threshold=100)
    first = minutes(ev, m0=(140, 0))
    replay = minutes(ev, m0=(140, 0))
    assert kinds(first) == [(FIRING, "10:00")] and kinds(replay) == [(ONGOING, "10:00")]
    assert replay[0].alert_id == first[0].alert_id


def test_a_low_value_is_judged_only_on_complete_minutes_and_never_on_the_first_one_seen():
    ev = evaluator(metric="purchases_per_minute", comparison="<", threshold=10)
    assert minutes(ev, m0=(100, 2), m1=(100, 3)) == []  # 10:00 may be partial (start); 10:01 is still open
    fired = minutes(ev, m2=(100, 50))
    assert kinds(fired) == [(FIRING, "10:01")] and fired[0].value == 3


def test_a_minute_without_any_event_counts_as_zero():
    ev = evaluator(metric="purchases_per_minute", comparison="<", threshold=10)
    assert minutes(ev, m0=(100, 20), m1=(100, 20)) == []
    fired = minutes(ev, m4=(100, 20))
    assert kinds(fired) == [(FIRING, "10:02"), (ONGOING, "10:03")] and fired[0].value == 0


def test_a_minute_is_complete_only_once_the_clock_has_passed_its_end():
    ev = evaluator(metric="purchases_per_minute", comparison="<", threshold=10)
    minutes(ev, now=at(1.1), m0=(100, 20))
    assert minutes(ev, now=at(2.1), m1=(100, 1), m2=(1, 0)) == []  # 10:01 ended 6 s ago: stragglers may come
    assert kinds(minutes(ev, now=at(2.5), m2=(5, 0))) == [(FIRING, "10:01")]


def test_a_breach_within_the_cooldown_continues_the_alert_and_it_resolves_once_after_the_cooldown():
    ev = evaluator(metric="events_per_minute", threshold=100, cooldown="3 minutes")
    seen = []
    for minute, events in enumerate([50, 150, 50, 150, 50, 50, 50, 50, 50]):
        seen += minutes(ev, **{f"m{minute}": (events, 0)})
    assert changes(seen) == [(FIRING, "10:01"), (RESOLVED, "10:06")]
    resolved = seen[-1]
    assert resolved.alert_id == "r|2026-01-01T10:01:00Z" and resolved.last_seen == at(3)
    assert resolved.first_seen == at(1) and resolved.value == 50


def test_a_breach_after_the_alert_resolved_opens_a_new_alert():
    ev = evaluator(metric="events_per_minute", threshold=100, cooldown="1 minute")
    seen = []
    for minute, events in enumerate([150, 50, 50, 150]):
        seen += minutes(ev, **{f"m{minute}": (events, 0)})
    assert [(k, t.alert_id) for k, t in zip(kinds(seen), seen, strict=True) if k[0] != ONGOING] == [
        ((FIRING, "10:00"), "r|2026-01-01T10:00:00Z"), ((RESOLVED, "10:01"), "r|2026-01-01T10:00:00Z"),
        ((FIRING, "10:03"), "r|2026-01-01T10:03:00Z")]


def test_a_longer_window_averages_per_minute_over_aligned_windows():
    ev = evaluator(metric="revenue_per_minute", threshold=100, window="5 minutes")
    assert minutes(ev, m0=(0, 10), m1=(0, 10), m2=(0, 10), m3=(0, 10)) == []  # 380 over 5 minutes = 76/min
    fired = minutes(ev, m4=(0, 30))  # (4 * 95 + 285) / 5 = 133/min
    assert kinds(fired) == [(FIRING, "10:00")] and fired[0].value == 133 and fired[0].window_end == at(5)


def test_the_busiest_user_fires_with_the_user_and_resolves_when_the_window_moves_on():
    ev = evaluator(metric="max_user_events_per_minute", threshold=100, cooldown="1 minute")
    assert ev.observe_busiest_users([(T0, "u1", 80)], LATER) == []
    fired = ev.observe_busiest_users([(T0, "u2", 120)], LATER)
    assert kinds(fired) == [(FIRING, "10:00")] and (fired[0].subject, fired[0].value) == ("u2", 120)
    # a later batch changed a quieter user of the same window: the window's busiest is still u2
    assert kinds(ev.observe_busiest_users([(T0, "u1", 90)], LATER)) == [(ONGOING, "10:00")]
    assert changes(ev.observe_busiest_users([(at(1), "u3", 30), (at(2), "u3", 10)], LATER)) == [(RESOLVED, "10:01")]


def test_the_dead_letter_ratio_counts_a_batch_reported_twice_once():
    ev = evaluator(metric="dead_letter_ratio", threshold="5%")
    assert ev.observe_records_batch(0, at(0.5), 1000, 900) == []  # the first minute seen is never judged
    ev.observe_records_batch(1, at(1.1), 1000, 10)
    ev.observe_records_batch(2, at(1.5), 1000, 200)
    ev.observe_records_batch(2, at(1.5), 1000, 200)  # the same batch again
    fired = ev.observe_records_batch(3, at(2.5), 1000, 0)
    assert kinds(fired) == [(FIRING, "10:01")] and fired[0].value == 210 / 2000


def test_records_dropped_behind_the_watermark_fire_at_once_and_resolve_once_none_are():
    ev = evaluator(metric="dropped_by_watermark_per_minute", threshold=0, cooldown="1 minute")
    assert ev.observe_records_batch(0, at(0.5), 1000, 0, 0) == []
    fired = ev.observe_records_batch(1, at(1.2), 1000, 0, 3)
    assert kinds(fired) == [(FIRING, "10:01")] and fired[0].value == 3
    assert changes(ev.observe_records_batch(1, at(1.2), 1000, 0, 3)) == []  # the same batch reported again
    ev.observe_records_batch(2, at(2.5), 1000, 0, 0)
    assert changes(ev.observe_records_batch(3, at(3.5), 1000, 0, 0)) == [(RESOLVED, "10:02")]


def test_an_alert_restored_after_a_restart_continues_and_is_not_cleared_by_a_partial_window():
    ev = evaluator(metric="events_per_minute", threshold=100, cooldown="1 minute")
    ev.restore("r", "r|2026-01-01T09:58:00Z", at(-2), at(-1))
    assert kinds(minutes(ev, m0=(10, 0), m1=(150, 0))) == [(ONGOING, "10:01")]  # 10:00 partial: no resolve
    resolved = minutes(ev, m2=(10, 0), m3=(10, 0))
    assert changes(resolved) == [(RESOLVED, "10:02")] and resolved[-1].alert_id == "r|2026-01-01T09:58:00Z"


def test_an_undone_evaluation_emits_the_same_alert_again_even_from_the_first_window_seen():
    ev = evaluator(metric="events_per_minute", threshold=100)
    fired = minutes(ev, m0=(140, 0))
    ev.undo()  # the store refused the alert: it does not count
    assert ev.firing() == {"r": False}
    again = minutes(ev, m1=(10, 0))  # the next batch has only a later minute: the first one is judged, complete
    assert kinds(again) == [(FIRING, "10:00")] and again[0].alert_id == fired[0].alert_id
    assert ev.firing() == {"r": True}
    ev.undo()
    assert kinds(minutes(ev, m1=(10, 0))) == [(FIRING, "10:00")]  # every time, until stored
