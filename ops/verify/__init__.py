"""Recompute every aggregate from the raw records, independently of the streaming job, and compare with MongoDB.

Independent means: plain Python over the records (json, dicts, sorting), sharing no code with the job's parsing or
aggregation, only the written contract (the `contract` package and its reference validator, docs/collections.md).
Tests use it as their oracle; `python -m ops.verify` runs it against a deployment.

    read        the records, back from the topic partition by partition (or from a generator manifest)
    recompute   the documents MongoDB should hold, and the records that should be set aside
    compare     expected against MongoDB, within what retention left to compare
    cli         the command line
"""
from ops.verify.compare import Coverage, Mismatch, Report, compare, coverage_after_retention
from ops.verify.read import PartitionRange, Record, TopicRead, manifest_records, read_partitions, read_topic
from ops.verify.recompute import Expected, recompute, recompute_for

__all__ = [
    "Coverage", "Expected", "Mismatch", "PartitionRange", "Record", "Report", "TopicRead", "compare",
    "coverage_after_retention", "manifest_records", "read_partitions", "read_topic", "recompute", "recompute_for",
]
