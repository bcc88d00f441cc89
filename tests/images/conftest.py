"""The compose deployment, run without Docker: each image of docker-compose.yml rebuilt natively the way its
Dockerfile builds it (tests/images/native_images.py), and the services' own commands and environments from the
compose file run in them against this session's services, once per session:

    kafka-init's topic -> generator (its command, plus --count) -> spark-master and spark-worker (their commands)
    -> spark-job (its command and environment) -> MongoDB with the root user compose's mongo service creates

What differs from `docker compose up`, and only that: host names and container ports become free 127.0.0.1 ports;
the image paths (/opt/app, /opt/venv, /opt/spark, /checkpoints, ...) become folders here; Spark's `--packages`
becomes `--jars` with the same artifacts, already resolved from pom.xml into .stack/lib/spark (Ivy would fetch them
again from Maven Central at every run); the MongoDB server is SecantusDB (no `mongod` here), started with
authentication and the root user from the compose file, as the mongo image does with MONGO_INITDB_ROOT_*.

Python environments are built from each image's list alone and kept in .stack/images/, keyed by a hash of what they
are built from (the list, the RUN line, the interpreter): the first build takes about a minute, later sessions none.
"""
from __future__ import annotations

import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from compose_services import (
    BACKLOG_EVENTS,
    COMPOSE_FILE,
    JOB_TIMEOUT_S,
    SERVICE_TIMEOUT_S,
    ComposeRun,
    healthcheck,
    jars_for,
    service_command,
    service_env,
)
from native_images import (
    ROOT,
    Instruction,
    NativeImage,
    base_path,
    build,
    cached_environment,
    compose_command,
    compose_environment,
    interpreters,
    network,
    run_step,
    spark_home,
)

from stack import free_port, free_ports

from processes import Processes, run, started
from waiting import wait_until

yaml = pytest.importorskip("yaml", reason="PyYAML reads docker-compose.yml")

APP_DOCKERFILE = ROOT / "docker" / "Dockerfile"


# --- the compose file and this machine's stand-ins for its network ----------------------------------------------------

@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="session")
def compose_variables() -> dict[str, str]:
    """The user's .env (from .env.example): the required secrets, URL-safe as .env.example asks, and a topic and
    database of this session's own."""
    suffix = uuid.uuid4().hex[:8]
    return {"MONGO_ROOT_PASSWORD": secrets.token_urlsafe(16), "SUPERSET_SECRET_KEY": secrets.token_urlsafe(32),
            "SUPERSET_ADMIN_PASSWORD": secrets.token_urlsafe(12), "KAFKA_TOPIC": f"compose-{suffix}",
            "MONGO_DATABASE": f"compose_{suffix}"}


@dataclass
class ComposeMongo:
    port: int
    username: str
    password: str

    @property
    def admin_uri(self) -> str:
        return (f"mongodb://{self.username}:{self.password}@127.0.0.1:{self.port}/?authSource=admin"
                "&retryWrites=false")


@pytest.fixture(scope="session")
def compose_mongo(compose, compose_variables, tmp_path_factory) -> Iterator[ComposeMongo]:
    """The compose file's MongoDB: a root user from MONGO_INITDB_ROOT_USERNAME/PASSWORD (created without
    authentication, as the mongo image's entrypoint does on first start), then authentication required."""
    from pymongo import MongoClient

    env = compose_environment(compose["services"]["mongo"], compose_variables)
    mongo = ComposeMongo(free_port(), env["MONGO_INITDB_ROOT_USERNAME"], env["MONGO_INITDB_ROOT_PASSWORD"])
    server = [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(mongo.port), "--storage-path",
              str(tmp_path_factory.mktemp("compose-mongo") / "db"), "--standalone"]
    with started(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        with MongoClient(f"mongodb://127.0.0.1:{mongo.port}/?retryWrites=false", serverSelectionTimeoutMS=500) as c:
            wait_until(lambda: c.admin.command("ping"), SERVICE_TIMEOUT_S, "MongoDB (first start) does not answer")
            c.admin.command("createUser", mongo.username, pwd=mongo.password, roles=["root"])
    with started([*server, "--auth"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        with MongoClient(mongo.admin_uri, serverSelectionTimeoutMS=500) as client:
            wait_until(lambda: client.admin.command("ping"), SERVICE_TIMEOUT_S, "MongoDB (with --auth) does not answer")
        yield mongo


@pytest.fixture(scope="session")
def addresses(kafka_broker, compose_mongo) -> dict[str, str]:
    """The compose network's names as this machine reaches them (container ports of Spark: free ports here)."""
    master, master_ui, worker_ui, job_ui = free_ports(4)
    return {"kafka:19092": kafka_broker.bootstrap_servers, "mongo:27017": f"127.0.0.1:{compose_mongo.port}",
            "spark-master:7077": f"127.0.0.1:{master}", "spark-master": "127.0.0.1", "spark-job": "127.0.0.1",
            "0.0.0.0": "127.0.0.1", "7077": str(master), "8080": str(master_ui), "8081": str(worker_ui),
            "4040": str(job_ui), "localhost": "127.0.0.1"}


# --- the application image (docker/Dockerfile) ----------------------------------------------------------------------

def _python_environment(image: NativeImage, step: Instruction) -> str:
    """`python3.11 -m venv /opt/venv && /opt/venv/bin/pip install ...`: run as written, once per content of what the
    step can read (the files copied so far: the image's list), of the line and of the interpreter, into .stack/images/.
    One deviation: pip may take wheels it already has in its cache (the image keeps none, --no-cache-dir); the
    packages and versions are the list's either way."""
    assert image.workdir is not None and "/opt/venv" in step.text, f"{step}: expected an environment at /opt/venv"
    copied = sorted(p for p in image.workdir.rglob("*") if p.is_file())
    key = [step.text, sys.version, *(f"{p.relative_to(image.workdir)}\n{p.read_text()}" for p in copied)]
    line = re.sub(r"\s--no-cache-dir\b", "", step.text)

    def build_into(folder: Path) -> None:
        image.paths["/opt/venv"] = folder
        run_step(image, step, line)

    folder = cached_environment(key, build_into, "app-venv")
    image.paths["/opt/venv"] = folder
    return f"Python environment {folder} from {', '.join(str(p.relative_to(image.workdir)) for p in copied)}"


def _checkpoint_owner(image: NativeImage, step: Instruction) -> str:
    assert re.fullmatch(r"mkdir -p /checkpoints && chown spark:spark /checkpoints", step.text), step
    image.path("/checkpoints").mkdir(parents=True, exist_ok=True)
    return "checkpoint folder (its owner, the image's spark user, exists only there)"


def _ubuntu_python(image: NativeImage, step: Instruction) -> str:
    assert "python3.11" in step.text and "python3.11-venv" in step.text, step
    assert sys.version_info[:2] == (3, 11)
    return "apt-get: Python 3.11 with venv is this machine's (bare: no third-party package)"


APP_STEPS = [
    (r"\bapt-get\b", _ubuntu_python),
    (r"-m venv\b", _python_environment),
    (r"\bbin/package-job\b", lambda image, step: None),  # run as written: the image's archive, built in it
    (r"\bchown\b", _checkpoint_owner),
]


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@pytest.fixture(scope="session")
def app_image(tmp_path_factory) -> NativeImage:
    """docker/Dockerfile, rebuilt: its files under a tmp /opt/app, its Python environment from requirements/app.txt
    alone, Spark where the apache/spark base image has it (the installed pyspark's distribution, conf/ empty)."""
    root = tmp_path_factory.mktemp("app-image")
    spark = spark_home(pyspark_home())
    paths = {"/opt/app": root / "opt" / "app", "/opt/venv": root / "opt" / "venv-unset", "/opt/spark": spark,
             "/checkpoints": root / "checkpoints", "/tmp": root / "tmp"}
    paths["/tmp"].mkdir()
    # the base image (apache/spark ... -ubuntu): Spark at /opt/spark, java, Ubuntu's folders; no python3 or python
    shims = interpreters(root / "base-bin", provided=["python3.11"], missing=["python3", "python"])
    base_env = {"PATH": base_path(shims), "SPARK_HOME": str(spark), "HOME": str(root / "home"), "LANG": "C.UTF-8"}
    (root / "home").mkdir()
    return build(APP_DOCKERFILE, paths=paths, base_env=base_env, steps=APP_STEPS)


# --- the compose deployment, run once -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def compose_run(compose, compose_variables, addresses, app_image, kafka_admin, compose_mongo,
                tmp_path_factory) -> Iterator[ComposeRun]:
    from confluent_kafka.admin import NewTopic
    from pymongo import MongoClient

    services, variables = compose["services"], compose_variables
    logs = tmp_path_factory.mktemp("compose-logs")
    processes = Processes()
    clients: list[Any] = []
    try:
        # kafka-init: its topic, partitions and configs (the kafka image's kafka-topics.sh is not here)
        init = compose_command(services["kafka-init"], variables)
        configs = dict(init[i + 1].split("=", 1) for i, part in enumerate(init) if part == "--config")
        topic, partitions = init[init.index("--topic") + 1], int(init[init.index("--partitions") + 1])
        kafka_admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            config=configs)])[topic].result(timeout=60)

        # spark-master: the official image as it is (no Python), its command and environment
        master_env = {**app_image.base_env, "SPARK_LOCAL_IP": "127.0.0.1",
                      **{k: network(v, addresses) for k, v in compose_environment(services["spark-master"],
                                                                                   variables).items()}}
        master_log = logs / "spark-master.log"
        with master_log.open("wb") as out:
            master = processes.start(service_command(app_image, compose, variables, addresses, "spark-master"),
                                     env=master_env, cwd=logs, stdout=out, stderr=subprocess.STDOUT)
        healthcheck(app_image, master_env, services["spark-master"], {"localhost:8080": "127.0.0.1:"
                    + addresses["8080"]}, alive=master, log=master_log)

        # spark-worker: the application image, its command; executors' folders in tmp (the container's own)
        worker_env = service_env(app_image, compose, variables, addresses, "spark-worker", SPARK_LOCAL_IP="127.0.0.1",
                                 SPARK_WORKER_DIR=str(logs / "worker-work"))
        worker_log = logs / "spark-worker.log"
        with worker_log.open("wb") as out:
            worker = processes.start(service_command(app_image, compose, variables, addresses, "spark-worker"),
                                     env=worker_env, cwd=app_image.workdir, stdout=out, stderr=subprocess.STDOUT)

        # generator: its command, plus a count so that it ends (in compose it runs until stopped)
        generator_env = service_env(app_image, compose, variables, addresses, "generator")
        command = service_command(app_image, compose, variables, addresses, "generator")
        command[0] = app_image.which(command[0], generator_env)
        generator = run([*command, "--count", str(BACKLOG_EVENTS)], env=generator_env, cwd=app_image.workdir,
                        capture_output=True, text=True, timeout=120)
        assert generator.returncode == 0, generator.stdout + generator.stderr

        healthcheck(app_image, worker_env, services["spark-worker"], {"localhost:8081": "127.0.0.1:"
                    + addresses["8081"]}, alive=worker, log=worker_log)

        # spark-job: its command (--packages as --jars) and its environment; Spark and the job's metrics on loopback
        job_env = service_env(app_image, compose, variables, addresses, "spark-job", SPARK_LOCAL_IP="127.0.0.1",
                              PIPELINE_HEALTH_PROMETHEUS_PORT=str(free_port()))
        command = service_command(app_image, compose, variables, addresses, "spark-job")
        packages = command.index("--packages")
        command[packages:packages + 2] = ["--jars", jars_for(command[packages + 1])]
        command[0] = app_image.which(command[0], job_env)
        job_log = logs / "spark-job.log"
        with job_log.open("wb") as out:
            job = processes.start(command, env=job_env, cwd=app_image.workdir, stdout=out, stderr=subprocess.STDOUT)
        client = MongoClient(job_env["PIPELINE_MONGO_URI"], serverSelectionTimeoutMS=5000)
        clients.append(client)
        database = client[job_env["PIPELINE_MONGO_DATABASE"]]

        def counted() -> bool:
            if job.poll() is not None:
                pytest.fail(f"spark-job exited ({job.returncode}) before counting the backlog:\n"
                            f"{job_log.read_text()[-6000:]}", pytrace=False)
            totals = database.totals.find_one({"_id": "all"}) or {}
            return totals.get("events", 0) + totals.get("dead_letters", 0) + totals.get("late_events", 0) \
                >= BACKLOG_EVENTS
        wait_until(counted, JOB_TIMEOUT_S, f"the job did not count the {BACKLOG_EVENTS} events", interval=1.0)
        alive, output = job.poll() is None, job_log.read_text()
        processes.end_all()  # `docker compose stop`: SIGTERM, then SIGKILL after a grace period
        yield ComposeRun(generator, output, alive, job_env, database, topic, BACKLOG_EVENTS)
    finally:
        processes.end_all()
        for client in clients:
            client.close()
