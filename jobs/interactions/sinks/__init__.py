"""Sinks: the only code of the job that writes to MongoDB. Each takes (batch_df, batch_id) and is idempotent."""
