"""Kafka records -> typed events, or dead letters with the reason. Pure DataFrame -> DataFrame functions.

The input has the columns of Spark's `kafka` source (key, value, topic, partition, offset, timestamp). Every record
comes out exactly once: valid ones with their typed event columns and `error` null, the others with `error` naming
the first rule they break; valid ones that arrived too late carry `late`. Validity depends on the record alone (never on the clock), so a replayed micro-batch
sorts every record the same way.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from interactions.schema import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

_SPARK_TYPES = {"string": StringType(), "double": DoubleType(), "long": LongType()}
EVENT_SCHEMA = StructType([StructField(name, _SPARK_TYPES[kind]) for name, kind in FIELD_TYPES.items()])

# ISO-8601 with a literal Z or an offset, seconds optional fraction; anything else is a dead letter.
EVENT_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
KAFKA_COORDINATES = ("topic", "partition", "offset", "kafka_timestamp")


def parse_records(records: DataFrame, max_future_skew_seconds: float, allowed_lateness_seconds: float) -> DataFrame:
    """Parse and validate; keeps the raw payload and Kafka coordinates beside the typed fields.

    `late` marks valid events that reached the broker more than `allowed_lateness_seconds` after they happened
    (event_time < broker timestamp - lateness). Measured against the record's own broker timestamp, lateness is a
    property of the record, not of micro-batch boundaries: a replay, a backfill and an independent recomputation
    all set aside exactly the same events.
    """
    raw = F.col("value").cast("string")
    with_json = records.select(
        raw.alias("raw"),
        F.col("topic"), F.col("partition"), F.col("offset"), F.col("timestamp").alias("kafka_timestamp"),
        # PERMISSIVE + columnNameOfCorruptRecord would need the corrupt column in the schema; instead parse twice
        # cheaply: from_json gives nulls for a non-object, and a type mismatch nulls the field, which we detect by
        # comparing with the untyped map of the same payload.
        F.from_json(raw, EVENT_SCHEMA, {"mode": "PERMISSIVE"}).alias("event"),
        F.from_json(raw, "map<string,string>").alias("fields"),
    )
    event_time = F.try_to_timestamp(F.col("event.event_time"))
    error = _first_error(event_time, max_future_skew_seconds)
    return with_json.select(
        "raw", *KAFKA_COORDINATES,
        *[F.col(f"event.{name}").alias(name) for name in EVENT_SCHEMA.fieldNames() if name != "event_time"],
        event_time.alias("event_time"),
        F.when(F.col("event.interaction_type") == "purchase",
               F.coalesce(F.col("event.price"), F.lit(0.0)) * F.coalesce(F.col("event.quantity"), F.lit(1)))
         .otherwise(F.lit(0.0)).alias("revenue"),
        error.alias("error"),
        (error.isNull() & (event_time < F.col("kafka_timestamp")
                           - F.make_dt_interval(secs=F.lit(allowed_lateness_seconds)))).alias("late"),
    )


def _first_error(event_time: Column, max_future_skew_seconds: float) -> Column:
    field = lambda name: F.col(f"event.{name}")  # noqa: E731
    present = lambda name: F.col("fields").getItem(name).isNotNull()  # noqa: E731
    rules: list[tuple[Column, Column]] = [
        (F.col("fields").isNull(), F.lit("not a JSON object")),
    ]
    for name in REQUIRED_FIELDS:
        rules.append((~present(name), F.lit(f"missing required field {name}")))
    for struct_field in EVENT_SCHEMA.fields:
        name = struct_field.name
        # present in the payload but null after typing => the JSON value had the wrong type
        wrong_type = present(name) & field(name).isNull()
        if struct_field.dataType == StringType():
            # Spark reads a JSON number into a string field as its text; require a JSON string literally
            wrong_type = wrong_type | (present(name) & ~F.col("raw").rlike(f'"{name}"\\s*:\\s*"'))
        rules.append((wrong_type, F.lit(f"wrong type for field {name}")))
    rules += [
        (F.length(F.trim(field("event_id"))) == 0, F.lit("empty event_id")),
        (F.length(F.trim(field("user_id"))) == 0, F.lit("empty user_id")),
        (~field("interaction_type").isin(*INTERACTION_TYPES),
         F.concat(F.lit("unknown interaction_type "), field("interaction_type"))),
        (~field("platform").isin(*PLATFORMS), F.concat(F.lit("unknown platform "), field("platform"))),
        (field("interaction_type").isin(*ITEM_INTERACTIONS) & field("item_id").isNull(),
         F.lit("missing item_id for an item interaction")),
        (~field("event_time").rlike(EVENT_TIME_PATTERN) | event_time.isNull(),
         F.concat(F.lit("unparseable event_time "), field("event_time"))),
        (event_time > F.col("kafka_timestamp") + F.make_dt_interval(secs=F.lit(max_future_skew_seconds)),
         F.lit("event_time too far in the future")),
        (F.coalesce(field("price"), F.lit(1.0)) < 0, F.lit("negative price")),
        (F.coalesce(field("quantity"), F.lit(1)) < 1, F.lit("quantity below 1")),
    ]
    result = F.lit(None).cast("string")
    for condition, reason in reversed(rules):
        result = F.when(condition, reason).otherwise(result)
    return result
