"""Rate schedules and burst flags."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator import Burst, Schedule, parse_burst


@pytest.mark.parametrize("text, expected", [
    ("10:30", Burst(10, 30, 0)),
    ("10x:30@60", Burst(10, 30, 60)),
    ("2.5X:1.5s@0.5s", Burst(2.5, 1.5, 0.5)),
])
def test_burst_flag_parses(text, expected):
    assert parse_burst(text) == expected


@pytest.mark.parametrize("text", ["10", "x:30", "10:0", "0:30", "10:30@", "ten:30", "10:30@-1"])
def test_bad_burst_flag_is_rejected(text):
    with pytest.raises(ValueError):
        parse_burst(text)


def test_schedule_multiplies_the_rate_during_a_burst():
    schedule = Schedule(100, [Burst(10, 2, 1)])
    assert schedule.due(1) == pytest.approx(100)
    assert schedule.due(3) == pytest.approx(100 + 2_000)
    assert schedule.due(4) == pytest.approx(2_200)
    assert schedule.rate_at(2) == 1_000
    assert schedule.time_of(1_100) == pytest.approx(2.0)


def test_unlimited_rate_makes_everything_due_at_once():
    schedule = Schedule(math.inf)
    assert schedule.due(0.001) == math.inf
    assert schedule.time_of(10**9) == 0


@given(rate=st.floats(1, 1e6), factor=st.floats(0.1, 100), seconds=st.floats(0.1, 100), after=st.floats(0, 100),
       t=st.floats(0.001, 1_000))
def test_time_of_inverts_due(rate, factor, seconds, after, t):
    schedule = Schedule(rate, [Burst(factor, seconds, after)])
    assert schedule.time_of(schedule.due(t)) == pytest.approx(t, rel=1e-6, abs=1e-6)
