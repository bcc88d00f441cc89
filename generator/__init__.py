"""Synthetic user-interaction events into Kafka: the first stage of the pipeline.

Layout, pure parts first:
    settings.py   StreamSettings: what the stream looks like (population, funnel, faults, times)
    catalog.py    users/items with Zipf popularity, prices, countries (precomputed with Faker)
    sessions.py   the session state machine: login -> browse -> add_to_cart -> purchase -> logout
    faults.py     malformed messages, one labelled defect each
    encoding.py   JSON by string formatting (validity is the contract's: contract.validation.invalid_reason)
    stream.py     MessageStream / generate_messages: all of the above, deterministic per seed, no Kafka
    pacing.py     Schedule: rate + bursts -> events due at time t
    producer.py   the Kafka edge: topic creation, tuned producer, delivery counting, manifest
    topics.py     what a pipeline topic must be (the broker's clock for timestamps), and the check for it
    manifest.py   reading a manifest back (the oracle of tests and benchmarks)
    cli.py        python -m generator
"""
from generator.manifest import ManifestRecord, read_manifest
from generator.pacing import Burst, Schedule, parse_burst
from generator.settings import StreamSettings
from generator.stream import KINDS, Message, MessageStream, generate_events, generate_messages

__all__ = [
    "KINDS",
    "Burst",
    "ManifestRecord",
    "Message",
    "MessageStream",
    "Schedule",
    "StreamSettings",
    "generate_events",
    "generate_messages",
    "parse_burst",
    "read_manifest",
]
