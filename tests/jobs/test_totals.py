"""The user and item counts carried in `totals` from batch to batch, with a batch clock that does not always advance.

The batches are simulated: Spark's state keeps, per key, the earliest batch time it was seen in
(interactions.aggregates `first_batch_time`); a batch's new keys are those whose earliest time is this batch's; the
recount (`counts()`) is the true number of distinct keys, what the collections hold."""
from __future__ import annotations

import datetime as dt

from interactions.sinks.summary import Summary
from interactions.sinks.totals import INITIAL, next_totals

START = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class SimulatedJob:
    """Applies batches of users to a totals document as the sink does, counting the recounts."""

    def __init__(self) -> None:
        self.first_seen: dict[str, dt.datetime] = {}
        self.totals: dict = dict(INITIAL)
        self.recounts = 0

    def batch(self, batch_id: int, seconds: float, users: list[str]) -> int:
        """One batch at START + seconds on the batch clock; returns the users counted after it."""
        batch_time = START + dt.timedelta(seconds=seconds)
        for user in users:
            self.first_seen[user] = min(self.first_seen.get(user, batch_time), batch_time)
        summary = Summary(batch_time=batch_time, events=len(users), valid_records=len(users),
                          users=[(user, 1) for user in users],
                          new_users=sum(self.first_seen[user] == batch_time for user in users))
        self.totals = {**self.totals, **next_totals(self.totals, summary, self.counts, lambda: (0, None)),
                       "batch_id": batch_id}
        return self.totals["users"]

    def counts(self) -> tuple[int, int]:
        self.recounts += 1
        return len(self.first_seen), 0


def test_a_batch_clock_that_steps_back_counts_no_user_twice():
    job = SimulatedJob()
    assert job.batch(0, 10, ["a"]) == 1
    assert job.batch(1, 20, ["b", "c", "d"]) == 4
    # the clock steps back 8 s: every batch until it passes 20 s again sees old users as created "now"
    assert job.batch(2, 12, ["b"]) == 4
    assert job.batch(3, 15, ["c"]) == 4
    assert job.batch(4, 18, ["d", "a"]) == 4
    assert job.batch(5, 20, ["b"]) == 4  # a batch time equal to the latest is not after it either
    assert job.batch(6, 30, ["e", "c"]) == 5  # past the latest batch time: carried again, one new user
    assert job.batch(7, 40, ["f"]) == 6


def test_a_batch_clock_that_only_advances_recounts_only_the_first_batch():
    job = SimulatedJob()
    for batch_id, users in enumerate([["a", "b"], ["b", "c"], ["d"], ["a", "e", "f"]]):
        job.batch(batch_id, 10 * (batch_id + 1), users)
    assert job.totals["users"] == 6 and job.recounts == 1
