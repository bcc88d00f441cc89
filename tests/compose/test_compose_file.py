"""docker-compose.yml, checked by its structure: Docker cannot run on the project's machines, so every promise the
file makes (services, pinned versions, loopback ports, health-ordered start, no secrets, paths that exist, commands
the job and the generator accept) is read from the YAML and compared with the repository. What the images hold is
run, not read, by tests/images/ (each image rebuilt natively from its Dockerfile, the services' commands run in it).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import tomllib
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml: pin pyyaml in requirements.txt")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_DIR = "/opt/app"  # where docker/Dockerfile puts the repository's files (WORKDIR)

SERVERS = {"kafka", "mongo", "spark-master", "spark-worker", "superset"}
RUN_ONCE = {"kafka-init"}
CLIENTS = {"spark-job", "generator"}
# (service, dependency): what must be up before a service starts
START_ORDER = {("kafka-init", "kafka"), ("spark-worker", "spark-master"), ("spark-job", "kafka-init"),
               ("spark-job", "mongo"), ("spark-job", "spark-worker"), ("generator", "kafka-init"),
               ("superset", "mongo")}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|PASSWD", re.IGNORECASE)
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def interpolate(value: str) -> str:
    """What compose substitutes when no variable is set: defaults as written, required ones as `<NAME>`."""
    def replace(match: re.Match) -> str:
        name, operator, word = match.groups()
        return word if operator in (":-", "-") else f"<{name}>"
    return VARIABLE.sub(replace, value).replace("$$", "$")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return [interpolate(str(part)) for part in (shlex.split(command) if isinstance(command, str) else command)]


def pyspark_pin() -> str:
    found = re.search(r"^pyspark==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert found, "requirements.txt pins no pyspark"
    return found[1]


def pom_property(name: str) -> str:
    found = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", (ROOT / "pom.xml").read_text())
    assert found, f"pom.xml has no property {name}"
    return found[1]


def dockerfiles(services) -> Iterator[tuple[str, Path]]:
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            yield name, ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def dockerfile_images(path: Path) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines() if line.upper().startswith("FROM ")]


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif node is not None:
        yield str(node)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


# --- services and versions ----------------------------------------------------------------------------------------

def test_every_service_of_the_pipeline_is_defined(services):
    assert set(services) == SERVERS | RUN_ONCE | CLIENTS


def test_every_image_is_pinned_to_a_version(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} names no image (a built one needs a tag too)"
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    for _, dockerfile in dockerfiles(services):
        for base in dockerfile_images(dockerfile):
            tag = base.rpartition(":")[2]
            assert ":" in base and tag != "latest" and re.search(r"\d", tag), f"{dockerfile.name}: FROM {base}"


def test_spark_images_and_the_connector_packages_match_the_pinned_versions(services):
    version, scala = pyspark_pin(), pom_property("scala.binary.version")
    spark_images = [services["spark-master"]["image"]] + [
        base for _, dockerfile in dockerfiles(services) for base in dockerfile_images(dockerfile)
        if base.startswith("apache/spark:")]
    assert len(spark_images) >= 2
    for image in spark_images:
        assert image.startswith("apache/spark:") and re.fullmatch(
            rf"{re.escape(version)}(-scala{re.escape(scala)}-.*)?", image.split(":", 1)[1]), image
    command = command_of(services["spark-job"])
    packages = command[command.index("--packages") + 1].split(",")
    assert f"org.apache.spark:spark-sql-kafka-0-10_{scala}:{version}" in packages
    connector = pom_property("mongo-spark.version")
    assert f"org.mongodb.spark:mongo-spark-connector_{scala}:{connector}" in packages


def test_kafka_is_the_version_of_the_native_stack(services):
    version = pom_property("kafka.version")
    assert services["kafka"]["image"] == f"apache/kafka:{version}"
    assert services["kafka-init"]["image"] == f"apache/kafka:{version}"


def test_the_topic_and_the_broker_use_the_brokers_clock_for_timestamps(services):
    """Lateness is measured against the record's Kafka timestamp: LogAppendTime makes that the broker's clock."""
    from contract.topics import TOPIC_CONFIG

    command = command_of(services["kafka-init"])
    configs = [command[i + 1] for i, part in enumerate(command) if part == "--config"]
    assert [f"{key}={value}" for key, value in TOPIC_CONFIG.items()] == configs
    # the broker's default for every topic (the image maps KAFKA_LOG_X_Y to log.x.y in server.properties)
    env = environment_of(services["kafka"])
    assert env.get("KAFKA_LOG_MESSAGE_TIMESTAMP_TYPE") == TOPIC_CONFIG["message.timestamp.type"]


def test_kafka_runs_in_kraft_mode_with_the_topic_created_by_the_init_service(services):
    env = environment_of(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env).upper()
    command = command_of(services["kafka-init"])
    assert command[0].endswith("kafka-topics.sh") and "--create" in command and "--if-not-exists" in command
    assert services["kafka-init"].get("restart") == "no"


# --- network, start order, storage -------------------------------------------------------------------------------

def test_published_ports_are_bound_to_loopback(services):
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published += 1
    assert published >= 4


def test_servers_have_health_checks(services):
    for name in SERVERS:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"


def test_services_start_after_their_dependencies_are_healthy_or_done(services):
    edges = set()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions only orders container starts"
        for dependency, spec in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = "service_completed_successfully" if dependency in RUN_ONCE else "service_healthy"
            assert spec.get("condition") == wanted, f"{name} -> {dependency}: {spec}"
            edges.add((name, dependency))
    assert START_ORDER <= edges, f"missing: {START_ORDER - edges}"
    started: set[str] = set()  # no cycles: every service can start once its dependencies have
    while len(started) < len(services):
        ready = {n for n in services if n not in started and all(d in started for s, d in edges if s == n)}
        assert ready, f"dependency cycle among {set(services) - started}"
        started |= ready


def test_named_volumes_are_declared_and_servers_keep_their_data(compose, services):
    declared = set(compose.get("volumes") or {})
    used: dict[str, set[str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.setdefault(source, set()).add(name)
    for server in ("kafka", "mongo", "superset"):
        assert any(server in users for users in used.values()), f"{server} keeps its data in no volume"
    # the streaming state is written by executors and read by the driver: one volume for both
    assert any({"spark-job", "spark-worker"} <= users for users in used.values())
    assert declared <= set(used), f"declared but unused: {declared - set(used)}"


# --- secrets ----------------------------------------------------------------------------------------------------

def test_no_secret_has_a_value_in_the_file(compose, services):
    for name, service in services.items():
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_VARIABLE.match(value), f"{name}.{key} must be ${{{key}:?...}} from .env, not {value!r}"
    uris = 0
    for text in walk_strings(compose):
        for match in re.finditer(r"://([^:/@\s]+):([^@\s]+)@", interpolate(text)):
            uris += 1
            assert re.fullmatch(r"<[A-Z0-9_]+>", match[2]), f"a URI carries a password that is not from .env: {text}"
        for match in VARIABLE.finditer(text):
            name, operator, _ = match.groups()
            if SECRET_NAME.search(name):
                assert operator == ":?", f"${{{name}}} must be required (:?), never defaulted"
    assert uris >= 1  # the MongoDB URI with credentials was seen (and checked)


def test_no_secret_is_on_a_command_line(services):
    """Arguments are visible to every user of the host (`ps`) and in Spark's UI: secrets go in the environment."""
    entrypoint = ROOT / "docker" / "superset-entrypoint.sh"
    commands = {name: [str(part) for part in (service.get("command") or [])] for name, service in services.items()}
    commands["superset (entrypoint)"] = [line for line in entrypoint.read_text().splitlines()
                                         if line.strip() and not line.lstrip().startswith("#")]
    for name, parts in commands.items():
        for part in parts:
            assert not re.search(r"://[^/@\s]*:[^@\s]*@", interpolate(part)), f"{name}: a URI with a password: {part}"
            for variable in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", part):
                assert not SECRET_NAME.search(variable) and not variable.endswith("URI"), \
                    f"{name} puts ${variable} on a command line: {part}"


def test_the_job_and_superset_read_the_mongodb_uri_from_their_environment(services):
    from conf import load_config

    for name in ("spark-job", "superset"):
        env = {key: interpolate(value) for key, value in environment_of(services[name]).items()
               if key.startswith("PIPELINE_")}
        uri = load_config(env=env).mongo.uri  # an unknown PIPELINE_ name would be refused here
        assert re.fullmatch(r"mongodb://[^:]+:<MONGO_ROOT_PASSWORD>@mongo:27017/\?authSource=admin", uri), (name, uri)


def test_env_example_documents_every_variable_and_holds_no_secret(compose):
    example = ENV_EXAMPLE.read_text()
    documented = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)", example, re.MULTILINE))
    for text in walk_strings(compose):
        for match in VARIABLE.finditer(text):
            assert match[1] in documented, f"${{{match[1]}}} is not in .env.example"
    for name, value in documented.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example must leave {name} empty"


# --- everything referenced exists, and the commands are accepted --------------------------------------------------

def test_build_files_and_what_they_copy_exist(services):
    found = list(dockerfiles(services))
    assert {name for name, _ in found} >= {"spark-worker", "spark-job", "generator", "superset"}
    for _, dockerfile in found:
        assert dockerfile.is_file(), dockerfile
        assert dockerfile.with_name(dockerfile.name + ".dockerignore").is_file(), \
            f"{dockerfile}: without an ignore file the build context carries .venv, .stack and secrets"
        text = re.sub(r"\\\n", " ", dockerfile.read_text())
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                for source in parts[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} (not in the repository)"


def test_repository_paths_in_commands_exist(services):
    checked = 0
    for name, service in services.items():
        if "build" not in service or "command" not in service:
            continue
        for part in command_of(service):
            if part.startswith(f"{APP_DIR}/") and not part.startswith(f"{APP_DIR}/build/"):
                assert (ROOT / part[len(APP_DIR) + 1:]).exists(), f"{name}: {part} is not in the repository"
                checked += 1
    assert checked >= 1
    app = (ROOT / "docker" / "Dockerfile").read_text()
    command = command_of(services["spark-job"])
    archive = command[command.index("--py-files") + 1]
    assert f"bin/package-job {archive}" in app, f"docker/Dockerfile does not build {archive}"
    superset = (ROOT / "docker" / "superset.Dockerfile").read_text()
    assert "superset/provision" in superset and (ROOT / "superset" / "provision").is_file()


def pipeline_environment(service: dict[str, Any], monkeypatch) -> dict[str, str]:
    """The service's PIPELINE_ settings, interpolated, as the only ones in this process's environment."""
    for name in [name for name in os.environ if name.startswith("PIPELINE_")]:
        monkeypatch.delenv(name)
    env = {key: interpolate(value) for key, value in environment_of(service).items() if key.startswith("PIPELINE_")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_job_command_is_accepted_by_the_job(services, monkeypatch):
    command = command_of(services["spark-job"])
    assert command[:3] == ["spark-submit", "--master", "spark://spark-master:7077"]
    script = next(i for i, part in enumerate(command) if part.endswith("jobs/aggregate.py"))
    spec = importlib.util.spec_from_file_location("compose_aggregate", ROOT / "jobs" / "aggregate.py")
    aggregate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(aggregate)
    flags = aggregate.parse_flags(command[script + 1:])  # argparse exits on an unknown flag
    assert not flags.available_now
    pipeline_environment(services["spark-job"], monkeypatch)
    config = aggregate.load(flags)  # the job's own flags and environment, as it reads them
    assert config.kafka.bootstrap_servers == "kafka:19092" and config.job.checkpoint_dir.startswith("/checkpoints/")
    assert config.job.shuffle_partitions == 8


def test_the_operator_tools_read_the_jobs_settings_in_its_container(services, monkeypatch):
    """`docker compose exec spark-job python -m ops.status` (or ops.verify), the command the README documents, reads
    the broker, topic, database and checkpoint the job uses: they are the job's environment, which the tools read
    too, and no flag of the job's command overrides them."""
    from conf import load_config

    env = pipeline_environment(services["spark-job"], monkeypatch)
    assert {"PIPELINE_KAFKA_BOOTSTRAP_SERVERS", "PIPELINE_KAFKA_TOPIC", "PIPELINE_MONGO_URI", "PIPELINE_MONGO_DATABASE",
            "PIPELINE_JOB_CHECKPOINT_DIR"} <= set(env)
    command = command_of(services["spark-job"])
    job_flags = command[next(i for i, part in enumerate(command) if part.endswith("jobs/aggregate.py")) + 1:]
    overridden = {"--bootstrap-servers", "--topic", "--mongo-uri", "--database", "--checkpoint-dir"} & set(job_flags)
    assert not overridden, f"the job's command overrides what the tools read from the environment: {overridden}"
    config = load_config()
    assert (config.kafka.bootstrap_servers, config.job.checkpoint_dir) == ("kafka:19092", "/checkpoints/aggregate")
    python_path = re.findall(r"PYTHONPATH=(\S+)", (ROOT / "docker" / "Dockerfile").read_text())
    assert python_path and f"{APP_DIR}/build/interactions.zip" in python_path[-1].split(":"), \
        "ops.status imports `interactions`: the image's PYTHONPATH must hold the job's archive"
    readme = (ROOT / "README.md").read_text()
    for tool in ("ops.status", "ops.verify"):
        assert f"docker compose exec spark-job python -m {tool}" in readme


# --- each image's libraries: one list, pinned once ---------------------------------------------------------------

def requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def test_the_app_image_installs_its_own_list_which_the_development_environment_includes():
    dockerfile = re.sub(r"\\\n", " ", (ROOT / "docker" / "Dockerfile").read_text())
    installs = re.findall(r"pip install [^\n]*?-r (\S+)", dockerfile)
    assert installs == ["requirements/app.txt"], installs
    assert "grep" not in dockerfile and "wc -l" not in dockerfile
    assert "-r requirements/app.txt" in requirement_lines(ROOT / "requirements.txt")
    app = requirement_lines(ROOT / "requirements" / "app.txt")
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line) for line in app), app
    assert not any(line.startswith("pyspark") for line in app), "the image's Spark provides pyspark"


def test_every_pin_of_the_development_environment_is_written_once():
    names: dict[str, list[str]] = {}
    for path in [ROOT / "requirements.txt", *sorted((ROOT / "requirements").glob("*.txt"))]:
        for line in requirement_lines(path):
            if not line.startswith("-"):
                names.setdefault(re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].lower(), []).append(path.name)
    assert {name: files for name, files in names.items() if len(files) > 1} == {}


def test_the_connector_packages_are_exactly_pom_xmls_spark_connectors(services):
    pom = ElementTree.parse(ROOT / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    properties = {child.tag.split("}")[1]: child.text or "" for child in pom.find("m:properties", ns)}

    def resolved(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: properties[m[1]], text)

    profile = next(p for p in pom.iter(f"{{{ns['m']}}}profile") if p.findtext("m:id", namespaces=ns)
                   == "spark-connectors")
    expected = {":".join(resolved(dep.findtext(f"m:{part}", namespaces=ns)) for part in
                         ("groupId", "artifactId", "version")) for dep in profile.iter(f"{{{ns['m']}}}dependency")}
    command = command_of(services["spark-job"])
    assert set(command[command.index("--packages") + 1].split(",")) == expected


def test_built_images_are_tagged_with_the_projects_version(services):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = {service["image"] for service in services.values() if "build" in service}
    assert built and all(image.endswith(f":{version}") for image in built), built


def test_generator_command_is_accepted_by_the_generator(services):
    from generator.cli import build_parser

    command = command_of(services["generator"])
    assert command[:3] == ["python", "-m", "generator"]
    flags = build_parser().parse_args(command[3:])
    assert flags.bootstrap_servers == "kafka:19092"


def test_superset_is_started_by_the_provision_command_with_flags_it_has(services):
    entrypoint = ROOT / "docker" / "superset-entrypoint.sh"
    assert "superset-entrypoint" in (ROOT / "docker" / "superset.Dockerfile").read_text()
    provision = (ROOT / "superset" / "provision").read_text()
    script = re.sub(r"\\\n", " ", entrypoint.read_text())
    calls = [line.split("superset/provision", 1)[1] for line in script.splitlines() if "superset/provision " in line]
    assert any(call.split()[0] == "start" for call in calls)
    used = {flag for call in calls for flag in re.findall(r"(--[a-z][a-z-]+)", call)}
    assert used and all(f'"{flag}"' in provision for flag in used), used
    env = environment_of(services["superset"])
    assert {"SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD", "PIPELINE_MONGO_URI",
            "PIPELINE_MONGO_DATABASE"} <= set(env)
