"""Waiting on a condition with a deadline: the one way tests wait (never a fixed sleep)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, message: str = "condition not met",
               interval: float = 0.1) -> T:
    """Call `predicate` until it returns something truthy and return that; fail the test at the deadline.

    The failure names `message` and the last value the predicate returned (or the exception it raised), so a
    timeout says what was observed, not only that time ran out.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        # the service may not answer yet; keep polling, report it if it never does
        except Exception as exc:  # noqa: BLE001 (any failure)
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            pytest.fail(f"{message} (waited {timeout:g} s; last observed: {last!r})", pytrace=False)
        time.sleep(interval)
