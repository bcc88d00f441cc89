"""Apache Kafka itself, from the Maven jars bin/install resolves: one combined broker+controller in KRaft mode.

This is what the official distribution's scripts do (`kafka-storage.sh format`, `kafka-server-start.sh`), without
the distribution, which is not downloadable here. Tuned for one node: replication factor 1 everywhere, 4 partitions
per auto-created topic, no initial rebalance delay.
"""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from stack.process import PROJECT_ROOT, Service, StackError

DEFAULT_LIB_DIR = PROJECT_ROOT / ".stack" / "lib" / "kafka"
LOG4J_CONFIG = PROJECT_ROOT / "conf" / "kafka-log4j2.properties"
# The JVM flags of the distribution's kafka-run-class.sh, with a smaller heap floor: several brokers may share a
# 2-core development machine during tests.
JVM_OPTS = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]


class KafkaBroker(Service):
    """A single-node Apache Kafka (broker + controller) on `host:port`, its controller on `host:controller_port`."""

    name = "kafka"

    def __init__(self, data_dir: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 9092,
                 controller_port: int = 9093, lib_dir: str | os.PathLike[str] = DEFAULT_LIB_DIR,
                 partitions: int = 4) -> None:
        super().__init__(data_dir, host, port)
        self.controller_port = int(controller_port)
        lib = Path(lib_dir)
        self.lib_dir = (lib if lib.is_absolute() else PROJECT_ROOT / lib).resolve()
        self.partitions = partitions

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap_servers

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    def ports(self) -> tuple[int, int]:
        return (self.port, self.controller_port)

    def check_prerequisites(self) -> None:
        if shutil.which("java") is None:
            raise StackError("java not found on PATH: install OpenJDK 17 (the Kafka broker runs on it)")
        if not any(self.lib_dir.glob("kafka_2.13-*.jar")):
            raise StackError(f"no Kafka jars in {self.lib_dir}: run bin/install")

    def prepare(self) -> None:
        self.config_file.write_text(self._server_properties())
        if (self.log_dirs / "meta.properties").exists():
            return  # formatted once; formatting again would refuse (or wipe) existing data
        cluster_id = _cluster_id()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "--standalone", "--cluster-id", cluster_id,
                       "--config", str(self.config_file)),
            cwd=self.data_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        with open(self.log_file, "a") as log:
            log.write(f"--- kafka storage format (cluster id {cluster_id}) ---\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
            raise StackError(f"formatting Kafka storage in {self.log_dirs} failed: "
                             f"{lines[-1] if lines else f'exit code {result.returncode}'} (see {self.log_file})")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.config_file))

    def answers(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        if not _port_open(self.host, self.port):
            return False  # cheaper than a client, and keeps librdkafka from logging "connection refused"
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0,
                             "socket.connection.setup.timeout.ms": 1000})
        try:
            metadata = admin.list_topics(timeout=2)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _java(self, main_class: str, *args: str) -> list[str]:
        return ["java", *JVM_OPTS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{self.lib_dir}/*",
                main_class, *args]

    def _server_properties(self) -> str:
        h, p, c = self.host, self.port, self.controller_port
        return f"""\
# Written by stack/kafka.py at every start; edit that file, not this one.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={h}:{c}
listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}
advertised.listeners=PLAINTEXT://{h}:{p}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.log_dirs}

# one node: every internal topic has a single replica
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

num.partitions={self.partitions}
auto.create.topics.enable=true
# record timestamps on the broker's clock (lateness is measured against it): the default of every topic that does
# not set its own, also auto-created ones; the generator sets it explicitly too (contract/topics.py)
log.message.timestamp.type=LogAppendTime
delete.topic.enable=true
group.initial.rebalance.delay.ms=0

# a development machine with 2 cores
num.network.threads=3
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
"""


def _cluster_id() -> str:
    """A Kafka Uuid in its string form (URL-safe base64, no padding), as `kafka-storage random-uuid` prints it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's command-line parsers would read it as a flag
            return text


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
