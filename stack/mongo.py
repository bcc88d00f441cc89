"""The local MongoDB-protocol server: SecantusDB (PyPI `secantusdb`, WiredTiger inside), since no registry reachable
here serves `mongod`. The compose file's official `mongo` image is a drop-in: clients only see `uri`.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from stack.process import Service, StackError


class MongoServer(Service):
    """A SecantusDB server on `host:port` storing its data under `data_dir/db`."""

    name = "mongo"

    def __init__(self, data_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 27017,
                 python: str = sys.executable) -> None:
        super().__init__(data_dir, host, port)
        self.python = python

    @property
    def uri(self) -> str:
        # retryWrites=false: SecantusDB keeps every retryable-write record and rescans them on each write, so with
        # retryable writes its upserts slow down as the records pile up. The job's writes are idempotent anyway.
        return f"mongodb://{self.host}:{self.port}/?retryWrites=false"

    @property
    def address(self) -> str:
        return self.uri

    @property
    def storage_path(self) -> Path:
        return self.data_dir / "db"

    def check_prerequisites(self) -> None:
        if self.python == sys.executable and importlib.util.find_spec("secantus") is None:
            raise StackError("SecantusDB (package secantusdb) is not installed in this environment: run bin/install")

    def command(self) -> list[str]:
        # --standalone: no change-stream log, which nothing here reads and which every write would append to
        # (measured on these machines: 45-55 % more upserts, 75 % more inserts per second without it).
        return [self.python, "-m", "secantus", "--host", self.host, "--port", str(self.port),
                "--storage-path", str(self.storage_path), "--standalone"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def answers(self) -> bool:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client = MongoClient(self.uri, document_class=dict, directConnection=True, serverSelectionTimeoutMS=500,
                             connectTimeoutMS=500)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()
