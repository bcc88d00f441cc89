"""python -m ops.verify: recompute every aggregate from the raw events and compare with MongoDB, from a terminal."""
from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import urllib.parse
from dataclasses import dataclass, field

from conf import ConfigError, PipelineConfig, load_config
from conf.loader import parse_duration_seconds
from contract.times import parse_instant
from ops.verify.compare import Coverage, Report, compare, coverage_after_retention
from ops.verify.read import Record, TopicRead, manifest_records, read_partitions
from ops.verify.recompute import Expected, recompute_for


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops.verify",
        description="Recompute every aggregate independently from the raw events and compare with MongoDB.")
    parser.add_argument("--config", help="configuration file (default conf/pipeline.toml)")
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default from conf)")
    parser.add_argument("--topic", help="topic to read (default from conf)")
    parser.add_argument("--mongo-uri", help="MongoDB connection string (default from conf; one with a password "
                                            "belongs in PIPELINE_MONGO_URI: arguments show in `ps`)")
    parser.add_argument("--database", help="database to check (default from conf)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--manifest", metavar="FILE", help="read the events from a generator manifest instead")
    source.add_argument("--from", dest="start", metavar="ISO",
                        help="only records the broker received at or after this time (the database must have been "
                             "built from the same range, e.g. by a backfill)")
    parser.add_argument("--to", dest="end", metavar="ISO", help="only records received before this time")
    parser.add_argument("--examples", type=int, default=5, help="mismatches shown per collection (default 5)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="give up on a partition when no record of it arrives for this long (default 60)")
    return parser


@dataclass
class Records:
    """The records to recompute from, what limits the comparison, and the lines that say what was read."""

    records: list[Record]
    coverage: Coverage | None = None
    context: list[str] = field(default_factory=list)


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
    args = build_parser().parse_args(argv)
    if args.mongo_uri and carries_secret(args.mongo_uri):
        print("verify: warning: --mongo-uri carries a password, which every user can read in the process list; "
              "give that URI in PIPELINE_MONGO_URI instead", file=sys.stderr)
    try:
        config = load_config(args.config, overrides={
            "kafka": {"bootstrap_servers": args.bootstrap_servers, "topic": args.topic},
            "mongo": {"uri": args.mongo_uri, "database": args.database}})
        start = _instant(args.start, "--from")
        end = _instant(args.end, "--to")
    except ConfigError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    try:
        read = read_records(config, args, start=start, end=end)
    except (OSError, TimeoutError, LookupError, ValueError) as exc:
        print(f"verify: cannot read the events: {exc}", file=sys.stderr)
        return 2
    expected = recompute_for(config, read.records)
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        with MongoClient(config.mongo.uri, document_class=dict, tz_aware=True,
                         serverSelectionTimeoutMS=10_000) as client:
            report = compare(expected, client[config.mongo.database], coverage=read.coverage)
    except PyMongoError as exc:
        print(f"verify: MongoDB unreachable: {str(exc).split(',')[0]}", file=sys.stderr)
        return 2
    print_report(config, read, expected, report, args.examples)
    return 0 if report.ok else 1


def read_records(config: PipelineConfig, args: argparse.Namespace, *, start: dt.datetime | None,
                 end: dt.datetime | None) -> Records:
    """From the manifest or the topic, limited to [start, end) of broker time when asked."""
    topic = config.kafka.topic
    if args.manifest:
        out = Records(manifest_records(args.manifest, topic))
        out.context.append(f"read {len(out.records)} records of topic {topic} from the manifest {args.manifest}")
    else:
        read = read_partitions(config.kafka.bootstrap_servers, topic, args.timeout)
        out = Records(read.records)
        out.context.append(f"read topic {topic}, {len(read.partitions)} partitions:")
        out.context += [f"  {partition.describe()}" for partition in read.partitions]
        if read.cut and start is None:
            out.coverage = _coverage_after_retention(config, read, out.context)
    if start is not None or end is not None:
        out.records = [r for r in out.records if r.timestamp is not None
                       and (start is None or r.timestamp >= start) and (end is None or r.timestamp < end)]
        out.context.append(f"compared the {len(out.records)} records the broker received in "
                           f"[{args.start or 'the start'}, {args.end or 'now'})")
    return out


def print_report(config: PipelineConfig, read: Records, expected: Expected, report: Report, examples: int) -> None:
    totals = expected.collections.get("totals", {}).get("all", {})
    print(f"verify: {len(read.records)} records -> {totals.get('events', 0)} events counted, "
          f"{sum(expected.dead_letters.values())} dead-lettered, {expected.late_events} late, "
          f"{expected.duplicates} duplicates; database {config.mongo.database}")
    print("\n".join(f"verify: {line}" for line in read.context))
    print("\n".join(report.lines(examples)))
    print("verify: OK, every document matches" if report.ok
          else f"verify: FAILED, {len(report.mismatches)} mismatching documents")


def _coverage_after_retention(config: PipelineConfig, read: TopicRead, context: list[str]) -> Coverage | None:
    """The partial comparison after retention; adds the lines that say what it leaves out to `context`."""
    from contract.topics import TopicConfigUnavailable, topic_timestamp_type

    context.append(f"retention has deleted the start of {len(read.cut)} of {len(read.partitions)} partitions: the "
                   f"aggregates include events that are gone, so only what the remaining records account for is "
                   f"compared (for everything: backfill a fresh database with --starting-timestamp, then verify it "
                   f"with --from)")
    timestamp_type: str | None
    try:
        timestamp_type = topic_timestamp_type(config.kafka.bootstrap_servers, read.topic)
    except TopicConfigUnavailable as exc:
        context.append(f"{exc}: window documents are not compared")
        timestamp_type = None
    skew = dt.timedelta(seconds=parse_duration_seconds(config.job.max_future_skew))
    return coverage_after_retention(read, timestamp_type, skew)


def _instant(text: str | None, flag: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise ConfigError(f"{flag} must be an ISO-8601 time, got {text!r}") from None
