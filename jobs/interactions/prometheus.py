"""The health figures in Prometheus' terms: metric families built from the latest figures at each scrape."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

if TYPE_CHECKING:
    from interactions.health import PipelineHealth

Figures = Mapping[str, Mapping[str, Any]]  # query -> its latest figures

# (metric name after "interactions_", help, figure key, scale): one gauge per query from its last batch
BATCH_GAUGES = (
    ("batch_id", "Id of the query's last finished micro-batch", "batch_id", 1.0),
    ("batch_input_rows", "Rows read by the last micro-batch", "input_rows", 1.0),
    ("batch_input_rows_per_second", "Arrival rate seen by the last micro-batch", "input_rows_per_second", 1.0),
    ("batch_processed_rows_per_second", "Processing rate of the last micro-batch", "processed_rows_per_second", 1.0),
    ("batch_duration_seconds", "Duration of the last micro-batch", "batch_duration_ms", 0.001),
    ("batch_dropped_by_watermark_rows", "Rows the last micro-batch dropped behind the watermark",
     "dropped_by_watermark", 1.0),
    ("batch_duplicate_rows", "Redelivered events the last micro-batch dropped", "duplicates", 1.0),
    ("batch_dead_letters", "Malformed records in the last micro-batch", "dead_letters", 1.0),
    ("batch_late_events", "Late records set aside in the last micro-batch", "late_events", 1.0),
    ("state_rows", "Rows in the query's state store", "state_rows", 1.0),
    ("kafka_lag_offsets_all_partitions", "Offsets behind the latest, summed over partitions", "kafka_lag_total", 1.0),
)
# (figure key, help): counters since the job started
TOTALS = (
    ("input_rows", "Rows read since the job started"),
    ("batches", "Micro-batches finished since the job started"),
    ("dead_letters", "Malformed records since the job started"),
    ("late_events", "Late records set aside since the job started"),
    ("dropped_by_watermark", "Rows dropped behind the watermark since the job started"),
    ("duplicates", "Redelivered events dropped since the job started"),
)


def registry(health: PipelineHealth) -> CollectorRegistry:
    out = CollectorRegistry(auto_describe=False)
    out.register(HealthCollector(health))
    return out


class HealthCollector:
    """What a scrape reads: the health's latest figures, its totals and the alert rules' states."""

    def __init__(self, health: PipelineHealth):
        self.health = health

    def collect(self) -> Iterator[Any]:
        latest, totals = self.health.snapshot()
        yield from batch_gauges(latest)
        yield from timestamps(latest)
        yield from kafka_offsets(latest)
        yield from counters(totals)
        states = self.health.alert_states() if self.health.alert_states is not None else {}
        yield alerts_firing(states)


def batch_gauges(latest: Figures) -> Iterator[GaugeMetricFamily]:
    for name, doc, key, scale in BATCH_GAUGES:
        family = GaugeMetricFamily(f"interactions_{name}", doc, labels=["query"])
        for query, figures in sorted(latest.items()):
            if figures.get(key) is not None:
                family.add_metric([query], float(figures[key]) * scale)
        yield family


def timestamps(latest: Figures) -> Iterator[GaugeMetricFamily]:
    batch_time = GaugeMetricFamily("interactions_batch_timestamp_seconds",
                                   "When the query's last micro-batch was triggered (epoch s)", labels=["query"])
    watermark = GaugeMetricFamily("interactions_watermark_timestamp_seconds",
                                  "The query's event-time watermark (epoch s)", labels=["query"])
    for query, figures in sorted(latest.items()):
        batch_time.add_metric([query], figures["recorded_at"].timestamp())
        if figures.get("watermark") is not None:
            watermark.add_metric([query], figures["watermark"].timestamp())
    yield batch_time
    yield watermark


def kafka_offsets(latest: Figures) -> Iterator[GaugeMetricFamily]:
    lag = GaugeMetricFamily("interactions_kafka_lag_offsets", "Offsets behind the latest, per partition",
                            labels=["query", "topic", "partition"])
    behind = GaugeMetricFamily("interactions_kafka_offsets_behind_latest",
                               "Spark's min / max / avg offsets behind the latest over partitions",
                               labels=["query", "stat"])
    for query, figures in sorted(latest.items()):
        for key, value in sorted((figures.get("kafka_lag") or {}).items()):
            topic, _, partition = key.rpartition(":")
            lag.add_metric([query, topic, partition], float(value))
        for stat, value in sorted((figures.get("kafka_offsets_behind_latest") or {}).items()):
            behind.add_metric([query, stat], float(value))
    yield lag
    yield behind


def counters(totals: Mapping[str, Mapping[str, int]]) -> Iterator[CounterMetricFamily]:
    for key, doc in TOTALS:
        family = CounterMetricFamily(f"interactions_{key}", doc, labels=["query"])
        for query, counts in sorted(totals.items()):
            family.add_metric([query], float(counts.get(key, 0)))
        yield family


def alerts_firing(states: Mapping[str, bool]) -> GaugeMetricFamily:
    firing = GaugeMetricFamily("interactions_alert_firing", "1 while the alert rule is firing", labels=["rule"])
    for rule, on in sorted(states.items()):
        firing.add_metric([rule], 1.0 if on else 0.0)
    return firing
