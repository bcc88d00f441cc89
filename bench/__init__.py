"""Benchmarks: programs that measure the pipeline and print their figures; never run as tests.

Each runs from the repository root as a module of this package:

    .venv/bin/python -m bench.end_to_end --events 1000000
    .venv/bin/python -m bench.live --rates 5000,10000 --seconds 60
    .venv/bin/python -m bench.<name> --help          # what it measures, and its flags

A benchmark starts the services it measures itself, on free ports in a temporary folder (bench/services.py over the
`stack` package), so it never touches a running stack; a few can be pointed at one instead (--uri,
--bootstrap-servers). It prints a table of its figures and writes them as JSON, stamped with the day and the
machine, through bench/report.py's `write_report` (--out, by default under .stack/bench/). The README's
*Benchmarks* section has each one's command and the figures it gave.

The modules without a command line are parts of the others: services (the broker and database), report (the JSON),
cpu (CPU and memory per process tree, from /proc), dashboard_data (the documents bench.dashboard seeds) and
spark_sql_baseline (the Spark SQL stages bench.dataflow measures the job's against). peer_consumer is both: the
batching consumer bench.end_to_end compares the job with, and a command line of its own that prints its result as
one JSON line.
"""
