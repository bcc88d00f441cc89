"""What the generated stream looks like: one frozen value, validated once, shared by the pure model and the CLI."""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from generator.pacing import Burst

MAX_JITTER_S = 5.0  # event times never trail "now" by more than this (apart from injected late events)


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """Parameters of the event content. Everything except wall-clock event times follows from these values."""

    users: int = 10_000
    items: int = 2_000
    zipf: float = 1.1                # popularity exponent for users and items (0 = uniform)
    seed: int = 0                    # 0 = pick a random seed (see resolved())
    # session funnel
    session_length: float = 12.0     # mean browsing events (view/click/scroll) per session
    cart_rate: float = 0.15          # probability that a viewed item is then added to the cart
    purchase_rate: float = 0.5       # probability that a session with a non-empty cart checks out
    concurrent_sessions: int = 1_000  # sessions interleaved in the stream at any time (per producer process)
    # fault injection, each a fraction of all messages sent
    late_ratio: float = 0.0
    duplicate_ratio: float = 0.0
    malformed_ratio: float = 0.0
    late_by: float = 3600.0          # seconds a late event's time lies in the past
    # event times
    jitter: float = 0.5              # event time = now - uniform(0, jitter) seconds
    start_time: float | None = None  # epoch seconds: pin event times (reproducible), advancing 1/rate per event
    rate: float = 1000.0             # events/s of the whole run (all processes); paces pinned times
    bursts: tuple[Burst, ...] = ()

    def validate(self) -> None:
        """Raise ValueError with a one-line message naming the flag at fault."""
        def require(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        require(self.users >= 1, "--users must be >= 1")
        require(self.items >= 1, "--items must be >= 1")
        require(math.isfinite(self.zipf) and 0 <= self.zipf <= 10, "--zipf must be between 0 and 10")
        require(self.seed >= 0, "--seed must be >= 0")
        require(math.isfinite(self.session_length) and self.session_length >= 1, "--session-length must be >= 1")
        for name in ("cart_rate", "purchase_rate", "late_ratio", "duplicate_ratio", "malformed_ratio"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"--{name.replace('_', '-')} must be between 0 and 1, got {value:g}")
        total = self.late_ratio + self.duplicate_ratio + self.malformed_ratio
        require(total <= 1, f"--late-ratio + --duplicate-ratio + --malformed-ratio must be <= 1, got {total:g}")
        require(self.concurrent_sessions >= 1, "--concurrent-sessions must be >= 1")
        require(math.isfinite(self.late_by) and self.late_by > 0, "--late-by must be > 0 seconds")
        require(0 <= self.jitter <= MAX_JITTER_S, f"--jitter must be between 0 and {MAX_JITTER_S:g} seconds")
        require(self.rate > 0, "--rate must be > 0")
        require(self.start_time is None or math.isfinite(self.rate),
                "--start-time needs a finite --rate (event times advance by 1/rate per event)")

    def resolved(self) -> StreamSettings:
        """A copy with seed 0 replaced by a random seed, so the run can still be reproduced afterwards."""
        if self.seed:
            return self
        return dataclasses.replace(self, seed=random.SystemRandom().randrange(1, 2**31))
