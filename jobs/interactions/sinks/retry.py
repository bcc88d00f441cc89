"""Retry a foreachBatch sink while MongoDB is unreachable, with exponential backoff.

The sinks are idempotent, so running a batch's sink again after a failure part-way through is safe. Only errors
that mean "the database is not there right now" are retried; anything else (a bug, a refused write) fails the
query at once. An error raised inside an executor task reaches the driver wrapped by Spark, so it is recognised
by its pymongo class name in the message.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

TRANSIENT = ("ServerSelectionTimeoutError", "AutoReconnect", "NetworkTimeout", "ConnectionFailure",
             "NotPrimaryError", "WaitQueueTimeoutError", "Connection refused", "connection closed")
Sink = Callable[[DataFrame, int], None]


def is_transient(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        text = f"{type(seen).__name__}: {seen}"
        if any(marker in text for marker in TRANSIENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retrying(sink: Sink, give_up_after_s: float, first_delay_s: float = 1.0, max_delay_s: float = 30.0,
             sleep: Callable[[float], None] = time.sleep) -> Sink:
    """`sink`, retried on transient MongoDB errors for up to `give_up_after_s` seconds per batch."""

    def run(batch: DataFrame, batch_id: int) -> None:
        deadline = time.monotonic() + give_up_after_s
        delay = first_delay_s
        attempt = 1
        while True:
            try:
                sink(batch, batch_id)
                if attempt > 1:
                    log.info("batch %d written after %d attempts", batch_id, attempt)
                return
            except Exception as error:
                if not is_transient(error) or time.monotonic() + delay > deadline:
                    raise
                log.warning("batch %d: MongoDB unavailable (%s); retrying in %.0f s", batch_id,
                            _first_line(error), delay)
                sleep(delay)
                delay = min(delay * 2, max_delay_s)
                attempt += 1

    run.__name__ = f"retrying_{type(sink).__name__}"
    return run


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
