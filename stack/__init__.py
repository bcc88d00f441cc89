"""The pipeline's local services without Docker: Apache Kafka (KRaft, from Maven jars), a MongoDB-protocol
server (SecantusDB) and a Spark standalone cluster (`stack.spark_cluster`). `python -m stack up|down|status` for
people; the classes for tests and benchmarks, with the clients they drive Superset through (`stack.superset_api`
for its REST API, `stack.browser` for a headless Chromium).
"""
from stack.kafka import KafkaBroker
from stack.mongo import MongoServer
from stack.process import Service, StackError, free_port, free_ports

__all__ = ["KafkaBroker", "MongoServer", "Service", "StackError", "free_port", "free_ports"]
