"""The local stack: start is idempotent, failures are one clear line, stop really stops, the CLI reports it."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import KafkaBroker, MongoServer, StackError, free_ports
from stack.process import PROJECT_ROOT, Service

from processes import run
from waiting import wait_until


def processes_mentioning(path: Path) -> list[int]:
    """Pids whose command line names `path` (each service's command line holds its data directory)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on for the length of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[MongoServer]:
    """A MongoServer of this test only (the session's server must stay up for other tests)."""
    server = MongoServer(tmp_path / "data" / "mongo", port=free_ports(1)[0])
    yield server
    server.stop()


def run_cli(*args: str, data_dir: Path, mongo_port: int = 0) -> subprocess.CompletedProcess:
    kafka_port, controller_port, free_mongo = free_ports(3)
    env = {**os.environ,
           "PIPELINE_STACK_DATA_DIR": str(data_dir),
           "PIPELINE_STACK_KAFKA_PORT": str(kafka_port),
           "PIPELINE_STACK_KAFKA_CONTROLLER_PORT": str(controller_port),
           "PIPELINE_STACK_MONGO_PORT": str(mongo_port or free_mongo)}
    return run([sys.executable, "-m", "stack", *args], cwd=PROJECT_ROOT, env=env,
               capture_output=True, text=True, timeout=180)


# --- start is idempotent -------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_starting_a_running_broker_again_keeps_one_process(kafka_broker: KafkaBroker, capsys) -> None:
    pid = kafka_broker.pid()
    same_dir = KafkaBroker(kafka_broker.data_dir, port=kafka_broker.port,
                           controller_port=kafka_broker.controller_port)  # as another process would see it

    same_dir.start(timeout=30)

    assert "already running" in capsys.readouterr().out
    assert same_dir.pid() == pid == kafka_broker.pid()
    assert processes_mentioning(kafka_broker.config_file) == [pid]


@pytest.mark.integration
def test_starting_a_running_mongo_again_keeps_one_process(own_mongo: MongoServer, capsys) -> None:
    own_mongo.start(timeout=60)
    pid = own_mongo.pid()

    MongoServer(own_mongo.data_dir, port=own_mongo.port).start(timeout=60)

    assert f"already running at {own_mongo.uri}" in capsys.readouterr().out
    assert processes_mentioning(own_mongo.storage_path) == [pid]


@pytest.mark.integration
def test_several_instances_run_side_by_side(mongo_server: MongoServer, own_mongo: MongoServer) -> None:
    own_mongo.start(timeout=60)

    assert mongo_server.is_running() and own_mongo.is_running()
    assert mongo_server.pid() != own_mongo.pid()


def test_a_stale_pid_file_does_not_count_as_running(tmp_path: Path) -> None:
    finished = run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                   timeout=60)
    server = MongoServer(tmp_path, port=free_ports(1)[0])
    server.pid_file.write_text(json.dumps({"pid": int(finished.stdout), "started": 0}))

    assert not server.is_running()
    assert server.stop() is False
    assert not server.pid_file.exists()


# --- failures are one clear line ------------------------------------------------------------------------------------

def test_a_taken_port_is_a_clear_error(tmp_path: Path, taken_port: int) -> None:
    server = MongoServer(tmp_path, port=taken_port)

    with pytest.raises(StackError, match=rf"^cannot start mongo: port 127\.0\.0\.1:{taken_port} is already in use"):
        server.start(timeout=10)

    assert not server.pid_file.exists()
    assert processes_mentioning(tmp_path) == []


@pytest.mark.integration
def test_a_taken_controller_port_is_a_clear_error(tmp_path: Path, taken_port: int) -> None:
    broker = KafkaBroker(tmp_path, port=free_ports(1)[0], controller_port=taken_port)

    with pytest.raises(StackError, match=rf"^cannot start kafka: port 127\.0\.0\.1:{taken_port} is already in use"):
        broker.start(timeout=10)

    assert processes_mentioning(tmp_path) == []


def test_missing_kafka_jars_say_run_bin_install(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "data", lib_dir=tmp_path / "no-jars", port=free_ports(1)[0])

    with pytest.raises(StackError, match="run bin/install"):
        broker.start(timeout=10)


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(StackError, match="^java not found"):
        KafkaBroker(tmp_path / "data", port=free_ports(1)[0]).start(timeout=10)


class ExitsAtOnce(Service):
    """A server that logs an error and exits during startup (like a bad config would make it)."""

    name = "failing"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-c",
                "import sys; print('starting'); print('ERROR storage is locked by another server'); "
                "print('  at some.Frame'); sys.exit(3)"]

    def answers(self) -> bool:
        return False


def test_a_server_dying_during_startup_names_its_log_and_last_error(tmp_path: Path) -> None:
    service = ExitsAtOnce(tmp_path, "127.0.0.1", free_ports(1)[0])

    with pytest.raises(StackError) as raised:
        service.start(timeout=30)

    message = str(raised.value)
    assert "\n" not in message
    assert str(service.log_file) in message
    assert message.endswith("ERROR storage is locked by another server")
    assert not service.pid_file.exists()


class SmallLog(ExitsAtOnce):
    log_max_bytes = 1000


def test_a_log_grown_past_its_size_is_moved_aside_at_a_start_and_three_generations_are_kept(tmp_path: Path) -> None:
    service = SmallLog(tmp_path, "127.0.0.1", free_ports(1)[0])
    service.log_file.write_text("a small log from before\n")
    with pytest.raises(StackError):
        service.start(timeout=30)
    assert service.log_file.read_text().startswith("a small log from before\n")  # appended to, not moved
    assert not service.log_file.with_name("failing.log.1").exists()

    for start in range(5):
        with service.log_file.open("a") as log:
            log.write(f"run {start}\n" + "x" * 1000 + "\n")  # past the size
        with pytest.raises(StackError):
            service.start(timeout=30)

    assert "ERROR storage is locked" in service.log_file.read_text()
    assert "run " not in service.log_file.read_text()  # only the last start's output
    kept = {path.name: path.read_text() for path in tmp_path.glob("failing.log.*")}
    assert sorted(kept) == ["failing.log.1", "failing.log.2", "failing.log.3"]
    assert "run 4" in kept["failing.log.1"] and "run 3" in kept["failing.log.2"] and "run 2" in kept["failing.log.3"]


@pytest.mark.integration
def test_a_broker_refusing_its_storage_quotes_the_broker_log(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    broker = KafkaBroker(tmp_path, port=port, controller_port=controller_port)
    broker.prepare()  # format the storage once, as a first start does
    meta = broker.log_dirs / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))

    with pytest.raises(StackError, match=r"^kafka exited during startup; .*kafka\.log: .*Exception: Stored node id 7"
                       ) as raised:
        broker.start(timeout=120)

    assert "\n" not in str(raised.value)
    assert processes_mentioning(tmp_path) == []


# --- stop and status ------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_stop_ends_the_process_and_removes_the_pid_file(own_mongo: MongoServer) -> None:
    own_mongo.start(timeout=60)
    pid = own_mongo.pid()

    assert own_mongo.stop() is True

    assert not own_mongo.is_running()
    assert not own_mongo.pid_file.exists()
    assert pid not in processes_mentioning(own_mongo.storage_path)


@pytest.mark.integration
def test_cli_status_follows_start_and_stop(tmp_path: Path) -> None:
    mongo_port = free_ports(1)[0]
    server = MongoServer(tmp_path / "data" / "mongo", port=mongo_port)  # where the CLI looks for it
    server.start(timeout=60)
    try:
        up = run_cli("status", "mongo", data_dir=tmp_path, mongo_port=mongo_port)
        down = run_cli("down", "mongo", data_dir=tmp_path, mongo_port=mongo_port)
        after = run_cli("status", "mongo", data_dir=tmp_path, mongo_port=mongo_port)
    finally:
        server.stop()

    assert up.returncode == 0 and up.stdout.split()[:2] == ["mongo", "up"], up
    assert down.returncode == 0 and "mongo stopped" in down.stdout, down
    assert after.returncode == 0 and after.stdout.split()[:2] == ["mongo", "down"], after
    assert not server.is_running()


@pytest.mark.integration
def test_cli_up_on_a_taken_port_exits_nonzero_with_one_line(tmp_path: Path, taken_port: int) -> None:
    result = run_cli("up", "mongo", data_dir=tmp_path, mongo_port=taken_port)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"stack: cannot start mongo: port 127.0.0.1:{taken_port} "
                                          "is already in use by another process"]
    assert "Traceback" not in result.stdout + result.stderr


# --- the fixtures give working services -----------------------------------------------------------------------------

@pytest.mark.integration
def test_kafka_topic_round_trips_a_message(kafka_broker: KafkaBroker, kafka_topic: str) -> None:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(kafka_topic, key=b"u1", value=b'{"event": "click"}')
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers, "group.id": kafka_topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([kafka_topic])
    try:
        message = wait_until(lambda: _value_of(consumer.poll(0.5)), timeout=60,
                             message=f"no message came back from {kafka_topic}")
    finally:
        consumer.close()

    assert message == b'{"event": "click"}'


def _value_of(message) -> bytes | None:
    if message is None or message.error():
        return None
    return message.value()


@pytest.mark.integration
def test_mongo_db_is_a_fresh_writable_database(mongo_db) -> None:
    assert mongo_db.list_collection_names() == []
    mongo_db.events.insert_one({"_id": "e1", "n": 1})
    mongo_db.events.update_one({"_id": "e1"}, {"$inc": {"n": 2}})

    assert mongo_db.events.find_one({"_id": "e1"}) == {"_id": "e1", "n": 3}
