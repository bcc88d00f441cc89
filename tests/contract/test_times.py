"""Instants and windows as the contract states them (contract/times.py): every reader floors and parses through
these, so each is checked here against values worked out by hand."""
from __future__ import annotations

import datetime as dt

import pytest

from contract.times import as_utc, floor, parse_instant

UTC = dt.UTC


def test_naive_datetimes_are_utc_and_aware_ones_are_converted():
    assert as_utc(dt.datetime(2026, 11, 29, 13, 5)) == dt.datetime(2026, 11, 29, 13, 5, tzinfo=UTC)
    berlin = dt.timezone(dt.timedelta(hours=1))
    converted = as_utc(dt.datetime(2026, 11, 29, 14, 5, tzinfo=berlin))
    assert converted == dt.datetime(2026, 11, 29, 13, 5, tzinfo=UTC) and converted.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("step, start", [
    (dt.timedelta(minutes=1), dt.datetime(2026, 11, 29, 13, 47, tzinfo=UTC)),
    (dt.timedelta(minutes=5), dt.datetime(2026, 11, 29, 13, 45, tzinfo=UTC)),
    (dt.timedelta(hours=1), dt.datetime(2026, 11, 29, 13, 0, tzinfo=UTC)),
    (dt.timedelta(days=1), dt.datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
])
def test_a_window_starts_on_the_epoch_aligned_boundary_at_or_before_the_instant(step, start):
    assert floor(dt.datetime(2026, 11, 29, 13, 47, 31, 999_999, tzinfo=UTC), step) == start
    assert floor(start, step) == start  # a boundary is its own window's start


def test_a_day_window_is_the_utc_day_whatever_the_instants_offset():
    late_evening_in_new_york = dt.datetime(2026, 11, 28, 22, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert floor(late_evening_in_new_york, dt.timedelta(days=1)) == dt.datetime(2026, 11, 29, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-11-28T04:50:01Z", "2026-11-28T05:50:01+01:00", "2026-11-28T04:50:01",
                                  " 2026-11-28T04:50:01.000Z "])
def test_an_instant_with_z_an_offset_or_none_is_read_as_utc(text):
    assert parse_instant(text) == dt.datetime(2026, 11, 28, 4, 50, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "1795841401"])
def test_anything_else_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_instant(text)
