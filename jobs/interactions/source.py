"""The stream's source: Spark's own `kafka` source (spark-sql-kafka-0-10, on the classpath via spark-defaults.conf)."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

# Consumer settings measured to matter on the local broker: bigger fetches, fewer round trips.
CONSUMER_TUNING = {
    "kafka.fetch.max.bytes": str(64 * 1024 * 1024),
    "kafka.max.partition.fetch.bytes": str(16 * 1024 * 1024),
    "kafka.fetch.min.bytes": "1",
}


def kafka_records(spark: SparkSession, bootstrap_servers: str, topic: str, *, starting_offsets: str,
                  max_offsets_per_trigger: int, starting_timestamp_ms: int | None = None) -> DataFrame:
    """Records of `topic` with the kafka source's columns (key, value, topic, partition, offset, timestamp, ...).

    Offsets live in the query's checkpoint, so a restart resumes exactly where the last committed batch ended.
    """
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", bootstrap_servers)
              .option("subscribe", topic)
              .option("startingOffsets", starting_offsets)
              .option("failOnDataLoss", "true")
              .options(**CONSUMER_TUNING))
    if starting_timestamp_ms is not None:
        # each partition starts at its first record at or after this time (a backfill); partitions with none yet
        # start at their end
        reader = reader.option("startingTimestamp", str(starting_timestamp_ms)) \
            .option("startingOffsetsByTimestampStrategy", "latest")
    if max_offsets_per_trigger > 0:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()
