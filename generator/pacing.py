"""When each event is due: a base rate with optional bursts, as a piecewise-constant rate schedule.

The producer asks `due(elapsed)` how many events should have been sent by now and sends the difference in one batch,
so the rate holds over any window longer than a few ticks without a sleep per event. `time_of(k)` is the inverse:
it gives event k its pinned event time when `--start-time` makes times reproducible.
"""
from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class Burst:
    """`factor` times the base rate for `seconds`, starting `after` seconds into the run."""

    factor: float
    seconds: float
    after: float = 0.0

    def __str__(self) -> str:
        return f"{self.factor:g}x for {self.seconds:g} s after {self.after:g} s"


_BURST = re.compile(r"^\s*([0-9.]+)\s*x?\s*:\s*([0-9.]+)\s*s?\s*(?:@\s*([0-9.]+)\s*s?)?\s*$", re.IGNORECASE)


def parse_burst(text: str) -> Burst:
    """'10:30' / '10x:30s@60' -> Burst(10, 30, 60). Raises ValueError with a readable message."""
    match = _BURST.match(text)
    if not match:
        raise ValueError(f"burst must look like FACTOR:SECONDS[@AFTER] (e.g. 10x:30@60), got {text!r}")
    try:
        factor, seconds = float(match.group(1)), float(match.group(2))
        after = float(match.group(3)) if match.group(3) else 0.0
    except ValueError:
        raise ValueError(f"burst must look like FACTOR:SECONDS[@AFTER] (e.g. 10x:30@60), got {text!r}") from None
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"burst factor must be > 0, got {text!r}")
    if not seconds > 0:
        raise ValueError(f"burst duration must be > 0 seconds, got {text!r}")
    return Burst(factor, seconds, after)


class Schedule:
    """Cumulative number of events due after t seconds, for a base rate (events/s, may be inf) and bursts.

    Overlapping bursts multiply. With an infinite rate everything is due at once (run as fast as possible).
    """

    def __init__(self, rate: float, bursts: tuple[Burst, ...] | list[Burst] = ()) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.bursts = tuple(bursts)
        edges = sorted({0.0} | {b.after for b in self.bursts} | {b.after + b.seconds for b in self.bursts})
        self._starts: list[float] = []
        self._rates: list[float] = []
        self._counts: list[float] = []  # events due at each segment start
        count = 0.0
        for i, start in enumerate(edges):
            segment_rate = rate
            for b in self.bursts:
                if b.after <= start < b.after + b.seconds:
                    segment_rate *= b.factor
            if i:
                count += (start - self._starts[-1]) * self._rates[-1]
            self._starts.append(start)
            self._rates.append(segment_rate)
            self._counts.append(count)
        self.unlimited = math.isinf(rate)

    def rate_at(self, t: float) -> float:
        return self._rates[max(0, bisect_right(self._starts, t) - 1)]

    def due(self, t: float) -> float:
        """Events due by t seconds after the start (a float; inf when the rate is unlimited)."""
        if self.unlimited:
            return math.inf
        if t <= 0:
            return 0.0
        i = bisect_right(self._starts, t) - 1
        return self._counts[i] + (t - self._starts[i]) * self._rates[i]

    def time_of(self, k: float) -> float:
        """Seconds after the start at which event number k (0-based) is due: the inverse of `due`."""
        if self.unlimited or k <= 0:
            return 0.0
        i = bisect_right(self._counts, k) - 1
        return self._starts[i] + (k - self._counts[i]) / self._rates[i]
