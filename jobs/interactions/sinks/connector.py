"""Writing a DataFrame of whole documents to MongoDB through the MongoDB Spark connector (org.mongodb.spark,
pinned in pom.xml): each executor task upserts its partition's documents by `_id` from the JVM, in bulks.

A replayed micro-batch or a retried task rewrites the same documents with the same values, so these writes are
idempotent; the connector cannot express an increment or a condition, which is why the job never needs one here.
"""
from __future__ import annotations

from pyspark.sql import DataFrame

FORMAT = "mongodb"


def replace_documents(documents: DataFrame, uri: str, database: str, collection: str, batch_size: int) -> None:
    """Upsert every row as the whole document with its `_id` (ReplaceOne, upsert), unordered bulks."""
    (documents.write.format(FORMAT).mode("append")
     .option("connection.uri", uri).option("database", database).option("collection", collection)
     .option("operationType", "replace").option("upsertDocument", "true").option("idFieldList", "_id")
     .option("ordered", "false").option("maxBatchSize", str(batch_size))
     .save())
