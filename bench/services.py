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
def local_services(prefix: str, mongo: bool = True) -> Iterator[tuple[Path, KafkaBroker, MongoServer | None]]:
    """(work folder, started broker, started database or None); both are stopped on the way out."""
    from stack import KafkaBroker, MongoServer, free_ports

    work = Path(tempfile.mkdtemp(prefix=prefix))
    kafka_port, controller_port, mongo_port = free_ports(3)
    broker = KafkaBroker(work / "kafka", port=kafka_port, controller_port=controller_port)
    server = MongoServer(work / "mongo", port=mongo_port) if mongo else None
    broker.start(timeout=180)
    try:
        if server is not None:
            server.start(timeout=120)
        yield work, broker, server
    finally:
        if server is not None:
            server.stop()
        broker.stop()
