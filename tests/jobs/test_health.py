"""Pipeline health: each batch's progress becomes figures in `pipeline_metrics` (with a retention limit), one log
line, and the current values on a Prometheus endpoint served by the driver."""
from __future__ import annotations

import datetime as dt
import logging
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conf import load_config
from interactions import QUERY
from interactions.health import PIPELINE_METRICS, PipelineHealth, ensure_retention
from interactions.pipeline import RunMode, start_queries
from interactions.progress import batch_metrics, describe
from ops.verify import read_topic, recompute_for
from stack import free_port

from processes import run
from waiting import wait_until

PROGRESS = {  # the shape of Spark's StreamingQueryProgress JSON for a Kafka source (values made up)
    "id": "q", "runId": "r", "name": "records", "timestamp": "2026-01-01T10:00:05.123Z", "batchId": 7,
    "batchDuration": 1840, "numInputRows": 300, "inputRowsPerSecond": 150.0, "processedRowsPerSecond": 163.0,
    "durationMs": {"triggerExecution": 1840},
    "eventTime": {"watermark": "2026-01-01T09:58:00.000Z"},
    "stateOperators": [{"numRowsTotal": 40, "memoryUsedBytes": 1000, "numRowsDroppedByWatermark": 2,
                        "customMetrics": {"numDroppedDuplicateRows": 3}}],
    "sources": [{"description": "KafkaV2[Subscribe[clicks]]",
                 "startOffset": {"clicks": {"0": 0, "1": 0}}, "endOffset": {"clicks": {"0": 100, "1": 200}},
                 "latestOffset": {"clicks": {"0": 150, "1": 200}}, "numInputRows": 300,
                 "metrics": {"avgOffsetsBehindLatest": "25.0", "maxOffsetsBehindLatest": "50",
                             "minOffsetsBehindLatest": "0"}}],
}


def test_a_batch_progress_becomes_health_figures_and_one_log_line():
    figures = batch_metrics("records", PROGRESS, {"dead_letters": 4, "late_events": 1})
    assert figures["_id"] == "records:7" and figures["recorded_at"] == dt.datetime(
        2026, 1, 1, 10, 0, 5, 123000, tzinfo=dt.UTC)
    assert (figures["input_rows"], figures["batch_duration_ms"], figures["processed_rows_per_second"]) == (
        300, 1840, 163.0)
    assert (figures["dropped_by_watermark"], figures["duplicates"], figures["state_rows"]) == (2, 3, 40)
    assert (figures["dead_letters"], figures["late_events"]) == (4, 1)
    assert figures["kafka_lag"] == {"clicks:0": 50, "clicks:1": 0} and figures["kafka_lag_total"] == 50
    assert figures["kafka_offsets_behind_latest"] == {"min": 0.0, "max": 50.0, "avg": 25.0}
    assert describe(figures) == (
        "300 rows in 1840 ms (163 rows/s processed, 150 rows/s arriving), dropped by watermark 2, duplicates 3, "
        "dead letters 4, late 1, watermark 2026-01-01T09:58:00Z, kafka lag 50 (max partition 50)")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_prometheus_text_has_the_latest_batch_per_query_and_totals_since_start():
    health = PipelineHealth("mongodb://unused", "unused", 3600)  # not started: figures only, no MongoDB
    health.alert_states = lambda: {"traffic_spike": True, "bot_suspected": False}
    health.record(batch_metrics("records", PROGRESS))
    health.record(batch_metrics("records", {**PROGRESS, "batchId": 8, "numInputRows": 100}))
    health.record(batch_metrics("records", {**PROGRESS, "batchId": 8, "numInputRows": 100}))  # reported again
    got = samples(health.exposition().decode())
    assert got["interactions_batch_input_rows", (("query", "records"),)] == 100
    assert got["interactions_input_rows_total", (("query", "records"),)] == 400
    assert got["interactions_batches_total", (("query", "records"),)] == 2
    assert got["interactions_batch_duration_seconds", (("query", "records"),)] == 1.84
    assert got["interactions_kafka_lag_offsets", (("partition", "0"), ("query", "records"), ("topic", "clicks"))] == 50
    assert got["interactions_watermark_timestamp_seconds", (("query", "records"),)] == dt.datetime(
        2026, 1, 1, 9, 58, tzinfo=dt.UTC).timestamp()
    assert got["interactions_alert_firing", (("rule", "traffic_spike"),)] == 1
    assert got["interactions_alert_firing", (("rule", "bot_suspected"),)] == 0


@pytest.mark.integration
def test_metrics_older_than_the_retention_expire(mongo_db):
    collection = mongo_db[PIPELINE_METRICS]
    ensure_retention(collection, 7 * 86400)
    ensure_retention(collection, 3600)  # a changed retention updates the index in place
    ttl = {i["name"]: i.get("expireAfterSeconds") for i in collection.list_indexes()}
    assert ttl["retention"] == 3600
    now = dt.datetime.now(dt.UTC)
    collection.insert_many([{"_id": "old", "recorded_at": now - dt.timedelta(hours=2)},
                            {"_id": "new", "recorded_at": now}])

    def expired() -> bool:
        try:  # SecantusDB runs its TTL sweep on demand; a real mongod sweeps every 60 s
            mongo_db.client.admin.command("secantusAdmin.pruneTtl")
        except Exception:  # noqa: BLE001 (not SecantusDB: wait for the server's own sweep)
            pass
        return [d["_id"] for d in collection.find()] == ["new"]

    wait_until(expired, 90, "the document older than the retention expired")


@pytest.mark.integration
def test_the_job_records_each_batch_and_serves_current_values_to_prometheus(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path, caplog):
    produced = 600
    run([sys.executable, "-m", "generator", "--bootstrap-servers", kafka_broker.bootstrap_servers,
         "--topic", kafka_topic, "--rate", "max", "--count", str(produced), "--seed", "5",
         "--users", "50", "--items", "20", "--malformed-ratio", "0.05", "--progress-interval", "0"],
        check=True, timeout=120, capture_output=True)
    port = free_port()
    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic},
        "mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
        "job": {"checkpoint_dir": str(tmp_path / "checkpoint"), "shuffle_partitions": 2,
                "max_offsets_per_trigger": 250},  # three batches, so the first ones see a lag
        "alerts": {"rules_file": ""}, "health": {"prometheus_port": port, "metrics_retention": "6 hours"}})

    def scrape() -> dict[tuple[str, tuple], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return samples(response.read().decode())

    with caplog.at_level(logging.INFO, logger="interactions.listener"):
        pipeline = start_queries(spark_session, config, RunMode(available_now=True))
        try:
            read = wait_until(lambda: scrape().get(("interactions_input_rows_total", (("query", QUERY),))
                                                   ) == produced and scrape(), 240,
                              "the Prometheus endpoint counting every record read")
            pipeline.await_termination()
        finally:
            pipeline.stop()
    assert read["interactions_batch_id", (("query", QUERY),)] >= 2
    assert ("interactions_kafka_lag_offsets", (("partition", "3"), ("query", QUERY), ("topic", kafka_topic))
            ) in read

    # the batches that read records (a batch that only moves the watermark may follow them)
    batches = sorted(mongo_db[PIPELINE_METRICS].find({"query": QUERY, "input_rows": {"$gt": 0}}),
                     key=lambda d: d["batch_id"])
    read_through = [sum(d["input_rows"] for d in batches[:i + 1]) for i in range(len(batches))]
    assert len(batches) == 3 and read_through[-1] == produced  # ~250 a batch (split over partitions)
    assert [d["kafka_lag_total"] for d in batches] == [produced - n for n in read_through]  # what was left
    expected = recompute_for(config, read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    assert sum(d["dead_letters"] for d in batches) == sum(expected.dead_letters.values()) > 10
    assert {d["query"] for d in mongo_db[PIPELINE_METRICS].find()} == {QUERY}  # one query reads everything
    ttl = {i["name"]: i.get("expireAfterSeconds") for i in mongo_db[PIPELINE_METRICS].list_indexes()}
    assert ttl["retention"] == 6 * 3600
    data_batches = {f"{QUERY} batch {d['batch_id']}:" for d in batches}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().split(" rows in ")[0].rsplit(" ", 1)[0]
             in data_batches]
    assert len(lines) == 3 and f"kafka lag {produced - read_through[0]} (max partition" in lines[0]
    assert f"dead letters {batches[0]['dead_letters']}" in lines[0]
    with pytest.raises(OSError):  # the endpoint closed with the pipeline
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
