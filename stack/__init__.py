"""The pipeline's local services without Docker: Apache Kafka (KRaft, from Maven jars) and a MongoDB-protocol
server (SecantusDB). `python -m stack up|down|status` for people; the classes for tests and benchmarks.
"""
from stack.kafka import KafkaBroker
from stack.mongo import MongoServer
from stack.process import Service, StackError, free_port, free_ports

__all__ = ["KafkaBroker", "MongoServer", "Service", "StackError", "free_port", "free_ports"]
