"""Alert rules: conf/alerts.toml parsed once into typed, validated `Rule`s.

A mistake in the file (unknown metric, bad comparison, a window that is not whole minutes, ...) is a ConfigError
with one readable line naming the file and the rule, so the job refuses to start instead of alerting wrongly.
"""
from __future__ import annotations

import datetime as dt
import operator
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conf.loader import ConfigError, parse_duration_seconds

MINUTES, USERS, RECORDS = "minutes", "users", "records"  # where a metric's figures come from (see evaluation.py)


@dataclass(frozen=True)
class Metric:
    name: str
    source: str
    growing: bool  # a window's value can only grow as its data arrives (counts do, ratios do not)
    description: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("events_per_minute", MINUTES, True, "valid, deduplicated events per minute of event time"),
    Metric("purchases_per_minute", MINUTES, True, "purchase events per minute of event time"),
    Metric("revenue_per_minute", MINUTES, True, "revenue (price x quantity of purchases) per minute of event time"),
    Metric("max_user_events_per_minute", USERS, True,
           "interactions per minute of the busiest single user (bot suspicion)"),
    Metric("dead_letter_ratio", RECORDS, False,
           "dead letters / records read from Kafka, per minute of processing time (0..1; '5%' also accepted)"),
    Metric("dropped_by_watermark_per_minute", RECORDS, True,
           "records dropped behind the watermark (reached the job more than job.max_partition_lag behind the newest "
           "broker time seen), per minute of processing time: records no aggregate counts"),
)}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_COMPARISON_WORDS = {"above": ">", "below": "<"}
_KEYS = {"name", "metric", "comparison", "threshold", "window", "cooldown", "description"}
_REQUIRED = ("name", "metric", "comparison", "threshold", "window", "cooldown")


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str          # one of COMPARISONS
    threshold: float
    window: dt.timedelta     # whole minutes; aligned, tumbling windows of this length
    cooldown: dt.timedelta   # how long the condition must stay clear before a firing alert resolves
    window_text: str         # as written ("5 minutes"), for messages and the alert document
    description: str = ""

    @property
    def source(self) -> str:
        return METRICS[self.metric].source

    @property
    def fires_early(self) -> bool:
        """True when part of a window can already prove a breach: a growing value compared with > or >=."""
        return METRICS[self.metric].growing and self.comparison in (">", ">=")

    def breached(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)

    def summary(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold:g} over {self.window_text}"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    path: str

    def for_source(self, source: str) -> list[Rule]:
        return [r for r in self.rules if r.source == source]

    @property
    def user_rate_window(self) -> dt.timedelta | None:
        """The window of the per-user rate query, None when no rule needs that query."""
        windows = {r.window for r in self.for_source(USERS)}
        return windows.pop() if windows else None


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file (TOML, a `[[rule]]` table per rule)."""
    file_path = Path(path)
    try:
        raw = tomllib.loads(file_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"alert rules file {file_path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"alert rules file {file_path} is not valid TOML: {exc}") from None
    return parse_rules(raw, str(file_path))


def parse_rules(raw: dict[str, Any], where: str) -> RuleSet:
    unknown = set(raw) - {"rule"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key {sorted(unknown)[0]!r} (rules are [[rule]] tables)")
    tables = raw.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: 'rule' must be an array of tables ([[rule]])")
    rules: list[Rule] = []
    for index, table in enumerate(tables, start=1):
        rule = _parse_rule(table, f"{where}: rule #{index}")
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"{where}: rule name {rule.name!r} is used twice")
        rules.append(rule)
    user_windows = sorted({r.window_text for r in rules if r.source == USERS})
    if len({r.window for r in rules if r.source == USERS}) > 1:
        raise ConfigError(f"{where}: every max_user_events_per_minute rule must use the same window "
                          f"(found {', '.join(user_windows)}): they share one streaming query")
    return RuleSet(tuple(rules), where)


def _parse_rule(table: dict[str, Any], where: str) -> Rule:
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
    for key in _REQUIRED:
        if key not in table:
            raise ConfigError(f"{where}: missing key {key!r}")
    name = table["name"]
    if not isinstance(name, str) or not name.strip() or "|" in name:
        raise ConfigError(f"{where}: name must be a non-empty string without '|', got {name!r}")
    where = f"{where.rsplit(': ', 1)[0]}: rule {name!r}"
    metric = table["metric"]
    if metric not in METRICS:
        raise ConfigError(f"{where}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    comparison = _COMPARISON_WORDS.get(table["comparison"], table["comparison"])
    if comparison not in COMPARISONS:
        raise ConfigError(f"{where}: comparison must be one of >, >=, <, <=, above, below; "
                          f"got {table['comparison']!r}")
    threshold = _threshold(table["threshold"], metric, where)
    window_text = _text(table["window"], "window", where)
    window = parse_duration_seconds(window_text, f"{where}: window")
    if window <= 0 or window % 60:
        raise ConfigError(f"{where}: window must be a whole number of minutes, got {window_text!r}")
    cooldown = parse_duration_seconds(_text(table["cooldown"], "cooldown", where), f"{where}: cooldown")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be a string")
    return Rule(name, metric, comparison, threshold, dt.timedelta(seconds=window), dt.timedelta(seconds=cooldown),
                window_text, description)


def _threshold(value: Any, metric: str, where: str) -> float:
    if isinstance(value, str) and value.strip().endswith("%") and metric == "dead_letter_ratio":
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if metric == "dead_letter_ratio" and not 0 <= value <= 1:
            raise ConfigError(f"{where}: a dead_letter_ratio threshold is a fraction 0..1 or a percentage "
                              f"like '5%', got {value!r}")
        return float(value)
    raise ConfigError(f"{where}: threshold must be a number, got {value!r}")


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a duration like '5 minutes', got {value!r}")
    return value
