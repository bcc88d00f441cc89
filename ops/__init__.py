"""Operator tools, run beside the pipeline and never shipped with the job.

    python -m ops.status [--watch S]   one screen: broker and database up, the job's last batch, its Kafka lag, totals
    python -m ops.verify [...]         recompute every aggregate from the raw records and compare with MongoDB

`ops.verify` is the oracle the tests and the benchmarks trust, so it stays independent of what it checks: it imports
the event contract (`contract`) and the configuration (`conf`), never the streaming job (`interactions`).
"""
