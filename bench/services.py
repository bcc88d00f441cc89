"""The broker and database a benchmark runs against: its own Apache Kafka and MongoDB-protocol server, on free
loopback ports, in a temporary folder that is left behind for its logs."""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack import KafkaBroker, MongoServer


@contextlib.contextmanager
def local_broker(prefix: str) -> Iterator[tuple[Path, KafkaBroker]]:
    """(work folder, started broker); the broker is stopped on the way out."""
    from stack import free_ports

    work = Path(tempfile.mkdtemp(prefix=prefix))
    kafka_port, controller_port = free_ports(2)
    with _broker(work, kafka_port, controller_port) as broker:
        yield work, broker


@contextlib.contextmanager
def local_services(prefix: str) -> Iterator[tuple[Path, KafkaBroker, MongoServer]]:
    """(work folder, started broker, started database); both are stopped on the way out."""
    from stack import MongoServer, free_ports

    work = Path(tempfile.mkdtemp(prefix=prefix))
    kafka_port, controller_port, mongo_port = free_ports(3)
    server = MongoServer(work / "mongo", port=mongo_port)
    with _broker(work, kafka_port, controller_port) as broker:
        try:
            server.start(timeout=120)
            yield work, broker, server
        finally:
            server.stop()


@contextlib.contextmanager
def _broker(work: Path, port: int, controller_port: int) -> Iterator[KafkaBroker]:
    from stack import KafkaBroker

    broker = KafkaBroker(work / "kafka", port=port, controller_port=controller_port)
    broker.start(timeout=180)
    try:
        yield broker
    finally:
        broker.stop()
