"""The streaming job's library: record classification, the one-pass dataflow, aggregate transformations and the
MongoDB sinks. Shipped to executors with the job; nothing here reads global configuration."""

QUERY = "interactions"  # the job's one streaming query: its checkpoint folder, its `batches` and metrics label
# a dry run's query: its own checkpoint folder (beside the real checkpoint), its own `batches` and metrics label
DRY_RUN_QUERY = f"{QUERY}-dry-run"
