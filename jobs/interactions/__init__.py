"""The streaming job's library: event schema, parsing, aggregate transformations and MongoDB sinks.

Shipped to executors with the job; nothing here reads global configuration.
"""
