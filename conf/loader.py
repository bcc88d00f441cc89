"""Load conf/pipeline.toml, overlay PIPELINE_<SECTION>_<KEY> environment variables and explicit overrides."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from contract.times import parse_instant

DEFAULT_PATH = Path(__file__).with_name("pipeline.toml")
ENV_PREFIX = "PIPELINE_"


class ConfigError(ValueError):
    """A configuration value a user can fix; its message is one readable line."""


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    topic: str
    partitions: int
    starting_offsets: str
    starting_timestamp: str

    def starting_timestamp_ms(self) -> int | None:
        """The starting timestamp as epoch milliseconds, or None when unset."""
        if not self.starting_timestamp:
            return None
        try:
            when = parse_instant(self.starting_timestamp)
        except ValueError:
            raise ConfigError(f"kafka.starting_timestamp must be an ISO-8601 time, got {self.starting_timestamp!r}") \
                from None
        return int(when.timestamp() * 1000)

    def validate(self) -> None:
        self.starting_timestamp_ms()
        _require(self.partitions >= 1, "kafka.partitions must be >= 1")
        _require(self.starting_offsets in ("earliest", "latest"), "kafka.starting_offsets must be earliest or latest")
        _require(bool(self.topic.strip()), "kafka.topic must not be empty")


@dataclass(frozen=True)
class MongoConfig:
    uri: str
    database: str
    write_batch_size: int
    unavailable_patience: str

    def validate(self) -> None:
        parse_duration_seconds(self.unavailable_patience, "mongo.unavailable_patience")
        _require(self.uri.startswith(("mongodb://", "mongodb+srv://")), "mongo.uri must start with mongodb://")
        _require(self.write_batch_size >= 1, "mongo.write_batch_size must be >= 1")
        _require(bool(self.database) and not set(self.database) & set('/\\. "$'),
                 f"mongo.database {self.database!r} is not a valid MongoDB database name")


@dataclass(frozen=True)
class JobConfig:
    checkpoint_dir: str
    trigger_interval: str
    max_offsets_per_trigger: int
    watermark_delay: str
    max_future_skew: str
    duplicate_window: str
    max_partition_lag: str
    shuffle_partitions: int
    top_n_users: int
    top_n_items: int
    top_n_users_last_hour: int
    recent_window: str
    recent_slide: str
    archive_raw_events: bool
    archive_retention: str

    def validate(self) -> None:
        for name in ("trigger_interval", "watermark_delay", "max_future_skew", "duplicate_window", "max_partition_lag",
                     "recent_window", "recent_slide", "archive_retention"):
            parse_duration_seconds(getattr(self, name), f"job.{name}")
        _require(parse_duration_seconds(self.duplicate_window) >= 1, "job.duplicate_window must be at least 1 second")
        _require(parse_duration_seconds(self.max_partition_lag) >= 1, "job.max_partition_lag must be at least 1 second")
        _require(self.max_offsets_per_trigger >= 0, "job.max_offsets_per_trigger must be >= 0")
        _require(self.shuffle_partitions >= 1, "job.shuffle_partitions must be >= 1")
        for name in ("top_n_users", "top_n_items", "top_n_users_last_hour"):
            _require(getattr(self, name) >= 1, f"job.{name} must be >= 1")
        window = parse_duration_seconds(self.recent_window)
        slide = parse_duration_seconds(self.recent_slide)
        _require(0 < slide <= window and window % slide == 0,
                 "job.recent_slide must divide job.recent_window (e.g. 1 hour sliding every 5 minutes)")


@dataclass(frozen=True)
class GeneratorConfig:
    rate: float
    users: int
    items: int
    seed: int

    def validate(self) -> None:
        _require(self.rate > 0, "generator.rate must be > 0")
        _require(self.users >= 1 and self.items >= 1, "generator.users and generator.items must be >= 1")


@dataclass(frozen=True)
class StackConfig:
    host: str
    kafka_port: int
    kafka_controller_port: int
    mongo_port: int
    data_dir: str

    def validate(self) -> None:
        for name in ("kafka_port", "kafka_controller_port", "mongo_port"):
            _require(0 < getattr(self, name) < 65536, f"stack.{name} must be a TCP port (1-65535)")


@dataclass(frozen=True)
class AlertsConfig:
    rules_file: str
    webhook_url: str
    smtp_host: str
    smtp_port: int
    smtp_sender: str
    smtp_recipients: str
    smtp_starttls: bool
    smtp_username: str
    smtp_password: str = field(repr=False)
    retry_attempts: int
    retry_backoff: str
    queue_size: int

    def validate(self) -> None:
        _require(not self.webhook_url or self.webhook_url.startswith(("http://", "https://")),
                 "alerts.webhook_url must start with http:// or https:// (or be empty: no webhook)")
        _require(0 < self.smtp_port < 65536, "alerts.smtp_port must be a TCP port (1-65535)")
        _require(not self.smtp_host or any(r.strip() for r in self.smtp_recipients.split(",")),
                 "alerts.smtp_recipients must name at least one address when alerts.smtp_host is set")
        _require(self.retry_attempts >= 1, "alerts.retry_attempts must be >= 1")
        parse_duration_seconds(self.retry_backoff, "alerts.retry_backoff")
        _require(self.queue_size >= 1, "alerts.queue_size must be >= 1")


@dataclass(frozen=True)
class HealthConfig:
    prometheus_host: str
    prometheus_port: int
    metrics_retention: str

    def validate(self) -> None:
        _require(0 <= self.prometheus_port < 65536, "health.prometheus_port must be a TCP port (0 = off)")
        _require(parse_duration_seconds(self.metrics_retention, "health.metrics_retention") >= 1,
                 "health.metrics_retention must be at least 1 second")


@dataclass(frozen=True)
class RetentionConfig:
    """How long MongoDB keeps each collection's documents (a TTL index); "" keeps them for ever."""

    minute_counts: str
    hourly_counts: str
    daily_counts: str
    user_slots: str
    batches: str
    dead_letters: str
    late_events: str
    alerts: str  # resolved alerts, from resolved_at; firing alerts never expire

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                _require(parse_duration_seconds(value, f"retention.{f.name}") >= 1,
                         f"retention.{f.name} must be at least 1 second (or \"\": kept for ever)")


@dataclass(frozen=True)
class PipelineConfig:
    kafka: KafkaConfig
    mongo: MongoConfig
    job: JobConfig
    generator: GeneratorConfig
    stack: StackConfig
    alerts: AlertsConfig
    health: HealthConfig
    retention: RetentionConfig
    source: str = field(default=str(DEFAULT_PATH), compare=False)

    def replace(self, section: str, **values: Any) -> PipelineConfig:
        """A copy with some keys of one section changed (validated like any other source)."""
        return _apply(self, {section: values}, origin="override")


SECTIONS: dict[str, Any] = {f.name: f.type for f in fields(PipelineConfig) if f.name != "source"}
_SECTION_TYPES = {"kafka": KafkaConfig, "mongo": MongoConfig, "job": JobConfig,
                  "generator": GeneratorConfig, "stack": StackConfig, "alerts": AlertsConfig, "health": HealthConfig,
                  "retention": RetentionConfig}


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> PipelineConfig:
    """Read the file, then environment variables, then overrides (e.g. parsed flags; None values are ignored)."""
    file_path = Path(path) if path else DEFAULT_PATH
    try:
        # the default file is read as package data, so `conf` also works from a zip (spark-submit --py-files)
        text = file_path.read_text() if path else resources.files("conf").joinpath("pipeline.toml").read_text()
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file {file_path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file_path} is not valid TOML: {exc}") from None

    for section in raw:
        if section not in _SECTION_TYPES:
            raise ConfigError(f"{file_path}: unknown section [{section}] (known: {', '.join(_SECTION_TYPES)})")
    built = {}
    for section, cls in _SECTION_TYPES.items():
        values = dict(raw.get(section, {}))
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{file_path}: unknown key {section}.{key}")
        missing = known - values.keys()
        if missing:
            raise ConfigError(f"{file_path}: missing key {section}.{sorted(missing)[0]}")
        built[section] = cls(**{f.name: _coerce(values[f.name], f.type, f"{section}.{f.name}") for f in fields(cls)})
    config = PipelineConfig(**built, source=str(file_path))

    env_values: dict[str, dict[str, Any]] = {}
    for name, value in (os.environ if env is None else env).items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTION_TYPES:
            continue  # not ours (PIPELINE_ is a common prefix in CI systems)
        if key not in {f.name for f in fields(_SECTION_TYPES[section])}:
            raise ConfigError(f"environment variable {name} names no configuration key")
        env_values.setdefault(section, {})[key] = value
    config = _apply(config, env_values, origin="environment")
    config = _apply(config, overrides or {}, origin="flag")
    for section in _SECTION_TYPES:
        getattr(config, section).validate()
    _check_across_sections(config)
    return config


def _check_across_sections(config: PipelineConfig) -> None:
    slots = config.retention.user_slots
    _require(not slots or parse_duration_seconds(slots) >= parse_duration_seconds(config.job.recent_window),
             "retention.user_slots must be at least job.recent_window (the last hour is summed from them)")


def _apply(config: PipelineConfig, values: Mapping[str, Mapping[str, Any]], origin: str) -> PipelineConfig:
    for section, items in values.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(f"{origin}: unknown section {section}")
        current = getattr(config, section)
        types = {f.name: f.type for f in fields(current)}
        changes = {}
        for key, value in items.items():
            if value is None:
                continue
            if key not in types:
                raise ConfigError(f"{origin}: unknown key {section}.{key}")
            changes[key] = _coerce(value, types[key], f"{section}.{key}")
        if changes:
            updated = dataclasses.replace(current, **changes)
            updated.validate()
            config = dataclasses.replace(config, **{section: updated})
    return config


def _coerce(value: Any, type_name: Any, where: str) -> Any:
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(
        type_name if isinstance(type_name, str) else type_name.__name__)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where} must be {kind.__name__ if kind else type_name}, got {value!r}")


MAX_DURATION_S = 2**31 - 1  # the longest TTL MongoDB accepts (expireAfterSeconds is a 32-bit int)
_UNITS = {"ms": 0.001, "millisecond": 0.001, "s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
          "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_duration_seconds(text: str, where: str = "duration") -> float:
    """'2 minutes', '500 ms', '1 hour' -> seconds. The same spelling Spark accepts for watermarks and triggers."""
    parts = text.strip().split()
    if len(parts) == 2:
        number, unit = parts
        unit = unit.lower()
        unit = unit[:-1] if unit.endswith("s") and unit[:-1] in _UNITS else unit
        if unit in _UNITS:
            try:
                value = float(number)
            except ValueError:
                value = -1
            if value >= 0:  # not NaN
                seconds = value * _UNITS[unit]
                if seconds > MAX_DURATION_S:  # infinity too
                    raise ConfigError(f"{where} must be at most {MAX_DURATION_S} seconds (68 years), got {text!r}")
                return seconds
    raise ConfigError(f"{where} must look like '2 minutes' or '500 ms', got {text!r}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
