"""spark-submit entry point of the streaming job: read flags and conf, check the services, start the queries.

    spark-submit jobs/aggregate.py [--bootstrap-servers H:P] [--topic T] [--mongo-uri URI] [--database DB] ...

Flags override environment variables (PIPELINE_<SECTION>_<KEY>), which override conf/pipeline.toml.
"""
from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import urllib.parse

from conf import ConfigError, PipelineConfig, load_config

log = logging.getLogger("aggregate")

FLAG_KEYS = {  # flag -> (section, key)
    "bootstrap_servers": ("kafka", "bootstrap_servers"),
    "topic": ("kafka", "topic"),
    "starting_offsets": ("kafka", "starting_offsets"),
    "starting_timestamp": ("kafka", "starting_timestamp"),
    "mongo_uri": ("mongo", "uri"),
    "database": ("mongo", "database"),
    "checkpoint_dir": ("job", "checkpoint_dir"),
    "trigger_interval": ("job", "trigger_interval"),
    "duplicate_window": ("job", "duplicate_window"),
    "max_partition_lag": ("job", "max_partition_lag"),
    "max_offsets_per_trigger": ("job", "max_offsets_per_trigger"),
    "watermark_delay": ("job", "watermark_delay"),
    "shuffle_partitions": ("job", "shuffle_partitions"),
    "alert_rules": ("alerts", "rules_file"),
    "prometheus_port": ("health", "prometheus_port"),
}


def parse_flags(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aggregate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file (default conf/pipeline.toml)")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--topic", help="Kafka topic to read")
    parser.add_argument("--starting-offsets", choices=["earliest", "latest"],
                        help="where a NEW checkpoint starts reading (an existing one resumes)")
    parser.add_argument("--starting-timestamp", metavar="ISO",
                        help="a NEW checkpoint starts at this time (backfill into a fresh --database); "
                             "overrides --starting-offsets")
    parser.add_argument("--mongo-uri", help="MongoDB connection string (one with a password belongs in "
                                            "PIPELINE_MONGO_URI: arguments show in `ps` and in Spark's UI)")
    parser.add_argument("--database", help="MongoDB database to write")
    parser.add_argument("--checkpoint-dir", help="checkpoint directory (one per database)")
    parser.add_argument("--trigger-interval", help="micro-batch interval, e.g. '5 seconds'")
    parser.add_argument("--duplicate-window",
                        help="redeliveries within this broker time of the first copy are dropped, e.g. '2 minutes'")
    parser.add_argument("--max-partition-lag",
                        help="records further behind the newest broker time than this are dropped, e.g. '10 seconds'")
    parser.add_argument("--max-offsets-per-trigger", type=int, help="records per micro-batch at most (0: no limit)")
    parser.add_argument("--watermark-delay", help="event-time watermark delay, e.g. '2 minutes'")
    parser.add_argument("--shuffle-partitions", type=int, help="state partitions (fixed once a checkpoint exists)")
    parser.add_argument("--alert-rules", metavar="FILE", help="alert rules file (default conf/alerts.toml; '' = off)")
    parser.add_argument("--prometheus-port", type=int, help="serve health metrics on this port (0 = off)")
    parser.add_argument("--available-now", action="store_true",
                        help="process everything in the topic now, then stop (backfills, tests)")
    parser.add_argument("--reset", action="store_true",
                        help="with a new checkpoint: clear the database's derived collections first (they hold the "
                             "output of another checkpoint)")
    parser.add_argument("--dry-run", action="store_true",
                        help="compute every aggregate but store none (only per-batch figures in `batches`, as query "
                             "interactions-dry-run); measures the job without the database. Runs on a checkpoint "
                             "of its own (<checkpoint-dir>-dry-run, started afresh each time), so the real "
                             "checkpoint and the database's output are left as they were")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> PipelineConfig:
    overrides: dict[str, dict[str, object]] = {}
    for flag, (section, key) in FLAG_KEYS.items():
        overrides.setdefault(section, {})[key] = getattr(args, flag)
    return load_config(args.config, overrides=overrides)


def carries_secret(uri: str) -> bool:
    """A password in the URI's user information (also one whose unescaped `/`, `?` or `#` misplaces it), or an option
    that may hold a secret (tlsCertificateKeyFilePassword, authMechanismProperties' tokens)."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:  # e.g. an unbalanced "[": not readable, so not known to be free of a password
        return "@" in uri
    keys = [key for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return (parts.password is not None or "@" in parts.path + parts.fragment
            or any("@" in key or re.search(r"(?i)password|secret|token|authmechanismproperties", key) for key in keys))


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    if args.mongo_uri and carries_secret(args.mongo_uri):
        print("aggregate: warning: --mongo-uri carries a password, which every user can read in the process list "
              "and Spark's UI shows in its Environment tab; give that URI in PIPELINE_MONGO_URI instead",
              file=sys.stderr)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        config = load(args)
        if config.alerts.rules_file:  # a bad rule ends here, in one line, before Spark starts
            from interactions.alerting import load_rules
            load_rules(config.alerts.rules_file)
        from interactions.preflight import check_services
        check_services(config, reset=args.reset, dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"aggregate: {exc}", file=sys.stderr)
        return 2

    from pyspark.sql import SparkSession

    from interactions.pipeline import RunMode, start_queries

    spark = (SparkSession.builder.appName("interaction-analytics")
             .config("spark.sql.shuffle.partitions", str(config.job.shuffle_partitions))
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    stopping = threading.Event()

    def stop(signum, _frame):
        log.info("signal %d: stopping the queries after their current batch", signum)
        stopping.set()
        for query in spark.streams.active:
            query.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        pipeline = start_queries(spark, config, RunMode(available_now=args.available_now, dry_run=args.dry_run))
        log.info("started %s; reading %s from %s, writing %s", ", ".join(q.name for q in pipeline.queries),
                 config.kafka.topic, config.kafka.bootstrap_servers, config.mongo.database)
        pipeline.await_termination()
    # a failed query: one readable line, the details are in Spark's log above
    except Exception as exc:  # noqa: BLE001 (any failure)
        if stopping.is_set():
            return 0
        print(f"aggregate: a streaming query failed: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
