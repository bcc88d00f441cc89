"""Expected documents against MongoDB: collection by collection, and set-aside records record by record."""
from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from contract.times import as_utc
from ops.verify.read import TopicRead
from ops.verify.recompute import WINDOW_LENGTHS, Expected

# distinct_items / distinct_users come from Apache DataSketches HLL sketches with lgConfigK = 12 (k = 4096 slots).
# A sketch keeps each distinct value's 32-bit coupon (a 26-bit address and a 6-bit leading-zero count taken from the
# value's hash: BaseHllSketch.coupon) in a list, then a hash set, until the set would be more than 3/4 full at its
# largest size, 2^(lgConfigK - 3) = 512 slots (CouponList.couponUpdate, CouponHashSet.checkGrowOrPromote; HllUtil:
# LG_INIT_LIST_SIZE 3, RESIZE_NUMER/RESIZE_DENOM 3/4). Up to 384 distinct values its estimate is the coupon count
# (interpolation adds under 0.5 there), short by one for every two values whose coupons coincide: same address and
# same count, probability 2^-26 * 1/3 per pair, n^2/2 * 5e-9 <= 3.7e-4 per key at n = 384 (~0.5 % of runs of the
# test suite would see one somewhere); two coincidences in one key, ~1e-7. So: exact, or one below.
HLL_LG_K = 12
HLL_COUPON_MODE_MAX = 3 * 2 ** (HLL_LG_K - 3) // 4   # 384 distinct values
HLL_COUPON_SHORTFALL = 1
# Beyond that, HLL mode: relative standard error sqrt(3 ln 2 - 1) / sqrt(k) = 1.03896 / 64 = 1.62 % for a sketch built
# by merging (the non-HIP estimator, HllUtil.HLL_NON_HIP_RSE_FACTOR; the HIP estimator of a sketch updated in order
# is better, 0.8326 / 64); 5 standard errors: a false alarm with probability ~6e-7 per key (normal tails).
HLL_RELATIVE_STANDARD_ERROR = math.sqrt(3 * math.log(2) - 1) / math.sqrt(2 ** HLL_LG_K)
HLL_TOLERANCE_STANDARD_ERRORS = 5
APPROXIMATE = {"distinct_items", "distinct_users"}

WINDOWS = tuple(WINDOW_LENGTHS)                  # one document per event-time window


@dataclass(frozen=True)
class Coverage:
    """What the records still in the topic can account for once retention has deleted the start of a partition.

    Set-aside documents (dead letters, late events) are records' own: those at or after each partition's first
    retained offset are checked exactly, earlier ones not at all. A window document is complete when no deleted
    record can have counted in it: with the broker's clock (LogAppendTime) a partition's timestamps never go back, so
    a deleted record reached the broker no later than the partition's first retained record, and a counted event is
    at most max_future_skew ahead of its broker timestamp; windows starting after `windows_after` are checked exactly
    (a redelivery carries its original's event time, so a retained duplicate of a deleted event falls before too).
    Per-user and per-item statistics, top lists and totals add up every event ever read: not checked.
    """

    first_offsets: Mapping[int, int]                 # partition -> first offset still in the topic
    windows_after: dt.datetime | None = None         # None: no window can be shown complete (producer clocks)


@dataclass
class Mismatch:
    """One document that differs: where, and how."""

    collection: str
    doc_id: Any
    problem: str


@dataclass
class Report:
    """The comparison's outcome, collection by collection."""

    checked: Counter = field(default_factory=Counter)
    mismatches: list[Mismatch] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)   # collection -> why
    notes: dict[str, str] = field(default_factory=dict)          # collection -> what was left out of it

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def lines(self, examples: int = 5) -> list[str]:
        out = []
        by_collection: dict[str, list[Mismatch]] = defaultdict(list)
        for m in self.mismatches:
            by_collection[m.collection].append(m)
        for name in sorted(set(self.checked) | set(by_collection) | set(self.not_compared)):
            if name in self.not_compared:
                out.append(f"{name:<16} not compared: {self.not_compared[name]}")
                continue
            bad = by_collection.get(name, [])
            note = f" ({self.notes[name]})" if name in self.notes else ""
            out.append(f"{name:<16} {self.checked[name]:>8} documents  "
                       f"{'OK' if not bad else f'{len(bad)} MISMATCHES'}{note}")
            out += [f"    {m.doc_id!r}: {m.problem}" for m in bad[:examples]]
        return out


def compare(expected: Expected, db: Database, scopes: Iterable[str] = ("all", "last_hour"),
            coverage: Coverage | None = None) -> Report:
    """Compare every expected document with MongoDB, and report documents MongoDB has that it should not.

    Dead letters and late events are compared record by record: the coordinates (`_id` = topic:partition:offset)
    the oracle sets aside, and a dead letter's reason. With `coverage` (retention has deleted the start of the topic)
    only what the remaining records account for is compared (see Coverage).
    """
    report = Report()
    for name, wanted in expected.collections.items():
        query: dict[str, Any] = {"scope": {"$in": list(scopes)}} if name == "top_users" else {}
        if coverage is not None:
            if name not in WINDOWS:
                report.not_compared[name] = "it adds up records that retention has deleted"
                continue
            after = coverage.windows_after
            if after is None:
                report.not_compared[name] = ("the topic's timestamps are the producers' (CreateTime), so no window "
                                             "can be shown to hold only retained records")
                continue
            query = {"window_start": {"$gt": after}}
            wanted = {k: v for k, v in wanted.items() if as_utc(v["window_start"]) > after}
            report.notes[name] = f"windows starting after {after:%Y-%m-%dT%H:%M:%SZ}"
        _compare_documents(report, name, wanted, {d["_id"]: d for d in db[name].find(query)})
    _compare_set_aside(report, db, "dead_letters", expected.rejected, coverage)
    _compare_set_aside(report, db, "late_events", dict.fromkeys(expected.late_at), coverage)
    return report


def _compare_documents(report: Report, name: str, wanted: Mapping[Any, Mapping[str, Any]],
                       actual: Mapping[Any, Mapping[str, Any]]) -> None:
    """Every expected document field by field, then the documents MongoDB has that are not expected."""
    report.checked[name] = len(wanted)
    for doc_id, want in wanted.items():
        got = actual.get(doc_id)
        if got is None:
            report.mismatches.append(Mismatch(name, doc_id, "missing in MongoDB"))
            continue
        for key, value in want.items():
            problem = _differs(key, value, got.get(key, _ABSENT))
            if problem:
                report.mismatches.append(Mismatch(name, doc_id, f"{key}: expected {value!r}, found {problem}"))
                break
    for doc_id in actual.keys() - wanted.keys():
        report.mismatches.append(Mismatch(name, doc_id, "in MongoDB but not expected"))


def _compare_set_aside(report: Report, db: Database, name: str, wanted: Mapping[tuple, str | None],
                       coverage: Coverage | None) -> None:
    """Record by record: the coordinates the oracle sets aside against the documents' `_id`s (and, for dead letters,
    the reason). Records whose topic the oracle does not know (built by hand) match on partition and offset."""
    known_topic = all(topic is not None for topic, _, _ in wanted)
    actual: dict[tuple, Any] = {}
    before_retained = 0
    for doc in db[name].find({}, {"reason": 1}):
        key = _coordinates(doc["_id"])
        if key is None:
            report.mismatches.append(Mismatch(name, doc["_id"], "_id is not topic:partition:offset"))
            continue
        if coverage is not None and key[2] < coverage.first_offsets.get(key[1], 0):
            before_retained += 1
            continue
        actual[key if known_topic else (None, key[1], key[2])] = doc.get("reason")
    report.checked[name] = len(wanted)
    if before_retained:
        report.notes[name] = f"and {before_retained} of records retention has deleted, not checked"
    for key in sorted(wanted.keys() - actual.keys(), key=lambda k: k[1:]):
        reason = f" ({wanted[key]})" if wanted[key] is not None else ""
        report.mismatches.append(Mismatch(name, _id_of(key), f"set aside by the oracle{reason}, not in MongoDB"))
    for key in sorted(actual.keys() - wanted.keys(), key=lambda k: k[1:]):
        report.mismatches.append(Mismatch(name, _id_of(key), "in MongoDB but the oracle does not set it aside"))
    for key in sorted(wanted.keys() & actual.keys(), key=lambda k: k[1:]):
        if wanted[key] is not None and actual[key] != wanted[key]:
            report.mismatches.append(Mismatch(name, _id_of(key),
                                              f"reason: expected {wanted[key]!r}, found {actual[key]!r}"))


def _coordinates(doc_id: Any) -> tuple[str, int, int] | None:
    topic, _, rest = str(doc_id).partition(":")  # a Kafka topic name has no ':'
    partition, _, offset = rest.partition(":")
    return (topic, int(partition), int(offset)) if partition.isdigit() and offset.isdigit() and topic else None


def _id_of(key: tuple) -> str:
    topic, partition, offset = key
    return f"{topic if topic is not None else '*'}:{partition}:{offset}"


_ABSENT = object()


def _differs(key: str, want: Any, got: Any) -> str | None:
    if got is _ABSENT:
        return "no such field"
    if key in APPROXIMATE:
        return None if _within_sketch_error(want, got) else repr(got)
    if isinstance(want, dt.datetime):
        if not isinstance(got, dt.datetime):
            return repr(got)
        got = as_utc(got)
        return None if abs((got - want).total_seconds()) < 0.0005 else repr(got)
    if isinstance(want, float) and not isinstance(want, bool):
        if isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6):
            return None
        return repr(got)
    return None if got == want else repr(got)


def _within_sketch_error(exact: int, estimate: Any) -> bool:
    """Whether a sketch's distinct count is one the sketch can give for `exact` distinct values (see HLL_*)."""
    if not isinstance(estimate, (int, float)) or isinstance(estimate, bool):
        return False
    if exact <= HLL_COUPON_MODE_MAX:
        return exact - HLL_COUPON_SHORTFALL <= round(estimate) <= exact
    return abs(estimate - exact) <= HLL_TOLERANCE_STANDARD_ERRORS * HLL_RELATIVE_STANDARD_ERROR * exact


def coverage_after_retention(read: TopicRead, timestamp_type: str | None,
                             max_future_skew: dt.timedelta) -> Coverage | None:
    """What a comparison can still check when retention has cut partitions of `read` (None when none is cut):
    see Coverage. `timestamp_type` is the topic's message.timestamp.type."""
    cut = read.cut
    if not cut:
        return None
    windows_after = None
    if timestamp_type == "LogAppendTime":
        kept_from = [p.first_timestamp for p in cut if p.first_timestamp is not None]
        if len(kept_from) == len(cut):
            windows_after = max(kept_from) + max_future_skew
    return Coverage({p.partition: p.first for p in read.partitions}, windows_after)
