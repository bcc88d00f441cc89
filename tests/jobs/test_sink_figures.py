"""The sink's own timing figure: how long MongoDB was busy with at least one bulk write of a batch."""
from __future__ import annotations

import pytest

from interactions.sinks.mongo import busy_seconds


def test_overlapping_writes_from_parallel_partitions_count_once():
    assert busy_seconds([(0.0, 2.0), (1.0, 3.0), (2.5, 2.8)]) == pytest.approx(3.0)


def test_gaps_between_writes_are_not_busy_time():
    assert busy_seconds([(5.0, 6.0), (0.0, 1.0), (1.0, 1.5)]) == pytest.approx(2.5)


def test_no_writes_is_no_time():
    assert busy_seconds([]) == 0.0
