"""The job's classification and aggregation written as Spark SQL stages: the measured alternative to its
Python-over-Arrow ones.

bench.dataflow runs them side by side with interactions.parsing and interactions.facets on the same records:
classification with from_json, a map and a flat CASE WHEN of every rule; and every aggregate as one Spark
aggregation over a five-way explode of each event (users, items, minutes, hours, the global row), with
HyperLogLog++ distinct counts. Same rules, same results on valid input; not used by the job.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from contract.events import FIELD_TYPES, INTERACTION_TYPES, ITEM_INTERACTIONS, PLATFORMS, REQUIRED_FIELDS

_SPARK_TYPES = {"string": StringType(), "double": DoubleType(), "long": LongType()}
EVENT_SCHEMA = StructType([StructField(name, _SPARK_TYPES[kind]) for name, kind in FIELD_TYPES.items()])

# ISO-8601 with a literal Z or an offset, seconds optional fraction; anything else is a dead letter.
EVENT_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
KAFKA_COORDINATES = ("topic", "partition", "offset", "kafka_timestamp")
# Spark reads a JSON number, boolean, object or array into a string field as its text. A record where no string
# field's key is followed by anything but a quote (or null) cannot have that fault: one regex over the payload spares
# the valid majority a regex per string field.
STRING_FIELDS = tuple(name for name, kind in FIELD_TYPES.items() if kind == "string")
NON_STRING_VALUE = '"(?:' + "|".join(STRING_FIELDS) + r')"\s*:\s*[^"n\s]'


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
        raw.rlike(NON_STRING_VALUE).alias("non_string_value"),
    )
    event_time = F.try_to_timestamp(F.col("event.event_time"))
    typed = with_json.select(
        "raw", *KAFKA_COORDINATES,
        *[F.col(f"event.{name}").alias(name) for name in EVENT_SCHEMA.fieldNames() if name != "event_time"],
        event_time.alias("event_time"),
        F.when(F.col("event.interaction_type") == "purchase",
               F.coalesce(F.col("event.price"), F.lit(0.0)) * F.coalesce(F.col("event.quantity"), F.lit(1)))
         .otherwise(F.lit(0.0)).alias("revenue"),
        _first_error(event_time, max_future_skew_seconds).alias("error"),
    )
    # a separate projection, so the long rule chain is evaluated once per record, not again inside `late`
    return typed.withColumn("late", F.col("error").isNull() & (
        F.col("event_time") < F.col("kafka_timestamp") - F.make_dt_interval(secs=F.lit(allowed_lateness_seconds))))


def _first_error(event_time: Column, max_future_skew_seconds: float) -> Column:
    field = lambda name: F.col(f"event.{name}")  # noqa: E731
    present = lambda name: F.col("fields").getItem(name).isNotNull()  # noqa: E731
    rules: list[tuple[Column, Column]] = [
        (F.col("fields").isNull(), F.lit("not a JSON object")),
    ]
    # A typed field that is not null was present with the right type, so the untyped map is only consulted for the
    # null ones (the cheap test first: `&` short-circuits).
    for name in REQUIRED_FIELDS:
        rules.append((field(name).isNull() & ~present(name), F.lit(f"missing required field {name}")))
    for struct_field in EVENT_SCHEMA.fields:
        name = struct_field.name
        # present in the payload but null after typing => the JSON value had the wrong type
        wrong_type = field(name).isNull() & present(name)
        if struct_field.dataType == StringType():
            # Spark reads a JSON number into a string field as its text; require a JSON string literally
            wrong_type = wrong_type | (F.col("non_string_value") & field(name).isNotNull()
                                       & ~F.col("raw").rlike(f'"{name}"\\s*:\\s*"'))
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
    # one flat CASE WHEN (the first rule that holds names the error) rather than ~30 nested ones
    result = F.when(*rules[0])
    for condition, reason in rules[1:]:
        result = result.when(condition, reason)
    return result


EVENT_COLUMNS = ("event_id", "user_id", "item_id", "interaction_type", "platform", "session_id", "event_time",
                 "price", "quantity", "country", "revenue")

USER, ITEM, MINUTE, HOUR, GLOBAL = "user", "item", "minute", "hour", "global"
FACETS = (USER, ITEM, MINUTE, HOUR, GLOBAL)


def valid_events(parsed: DataFrame) -> DataFrame:
    """The records that passed validation and arrived in time, as typed events."""
    return parsed.where(F.col("error").isNull() & ~F.col("late")).select(*EVENT_COLUMNS)


def deduplicated(events: DataFrame, watermark_delay: str) -> DataFrame:
    """Drop redelivered events (same event_id), remembering each id until the watermark passes it.

    The watermark (newest event time seen - delay) bounds the state of every stateful operator. Late events are
    already set aside by parsing (broker-time lateness), so the job gives Spark a delay of the allowed lateness plus
    the allowed future skew: then Spark's watermark never drops an event the lateness rule accepted (anything it
    still drops is reported as dropped_by_watermark in `batches`).
    """
    return events.withWatermark("event_time", watermark_delay).dropDuplicatesWithinWatermark(["event_id"])


def facet_rows(events: DataFrame) -> DataFrame:
    """One row per (event, facet it feeds); the facet key is (facet, key, interaction_type, platform, bucket)."""
    null_str = F.lit(None).cast("string")
    null_ts = F.lit(None).cast("timestamp")

    def facet(name: str, key: Column, with_type: bool, bucket: Column) -> Column:
        return F.struct(
            F.lit(name).alias("facet"), key.alias("key"),
            (F.col("interaction_type") if with_type else null_str).alias("facet_type"),
            (F.col("platform") if with_type else null_str).alias("facet_platform"),
            bucket.alias("bucket"))

    facets = F.array(
        facet(USER, F.col("user_id"), False, null_ts),
        facet(ITEM, F.col("item_id"), False, null_ts),
        facet(MINUTE, null_str, True, F.date_trunc("minute", "event_time")),
        facet(HOUR, null_str, True, F.date_trunc("hour", "event_time")),
        facet(GLOBAL, F.lit("all"), False, null_ts),
    )
    exploded = events.select("*", F.explode(facets).alias("f")).select("f.*", *EVENT_COLUMNS)
    return exploded.where((F.col("facet") != ITEM) | F.col("key").isNotNull())


def facet_totals(rows: DataFrame) -> DataFrame:
    """Running totals per facet key. Stateful when `rows` is a stream."""
    by_type = [F.count_if(F.col("interaction_type") == t).alias(t) for t in INTERACTION_TYPES]
    latest = F.struct("event_time", "event_id")
    return rows.groupBy("facet", "key", "facet_type", "facet_platform", "bucket").agg(
        F.count(F.lit(1)).alias("interactions"),
        *by_type,
        F.sum("revenue").alias("revenue"),
        F.approx_count_distinct("item_id").alias("distinct_items"),
        F.approx_count_distinct("user_id").alias("distinct_users"),
        F.min("event_time").alias("first_event_time"),
        F.max("event_time").alias("last_event_time"),
        F.max_by("platform", latest).alias("last_platform"),
    )
