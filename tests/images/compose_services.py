"""docker-compose.yml's services on this machine: their commands and environments from the compose file, in an image
rebuilt by native_images.py, with the compose network's names replaced by local addresses."""
from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from native_images import ROOT, NativeImage, compose_command, compose_environment, network

from processes import run
from waiting import wait_until

COMPOSE_FILE = ROOT / "docker-compose.yml"
BACKLOG_EVENTS = 3000  # the generator's backlog: a few seconds at the compose file's default rate
JOB_TIMEOUT_S = 300    # first batch on a busy 2-core machine: JVMs, executor start, Python workers
SERVICE_TIMEOUT_S = 180


@dataclass
class ComposeRun:
    """What the services did: the generator's and the job's output, the job's environment (for `docker compose exec
    spark-job ...`), the database's name and a client with the compose credentials."""

    generator: subprocess.CompletedProcess
    job_output: str  # up to the moment the backlog was counted (its stop is not part of it)
    job_alive_at_count: bool
    job_env: dict[str, str]
    database: Any
    topic: str
    events: int


def service_env(image: NativeImage, compose, variables: Mapping[str, str], addresses: Mapping[str, str],
                name: str, **native_only: str) -> dict[str, str]:
    """The environment of service `name`'s container: its image's, then its compose `environment`, on this machine."""
    env = {key: network(value, addresses)
           for key, value in compose_environment(compose["services"][name], variables).items()}
    return image.environment(env, **native_only)


def service_command(image: NativeImage, compose, variables: Mapping[str, str], addresses: Mapping[str, str],
                    name: str) -> list[str]:
    return [image.native(network(part, addresses)) for part in compose_command(compose["services"][name], variables)]


def healthcheck(image: NativeImage, env: Mapping[str, str], service: Mapping, addresses: Mapping[str, str],
                timeout: float = SERVICE_TIMEOUT_S, alive: subprocess.Popen | None = None, log: Path | None = None):
    """Poll the service's own compose healthcheck (made native) until it passes."""
    test = service["healthcheck"]["test"]
    kind, *argv = test
    argv = [network(part, addresses) for part in argv]
    command = ["sh", "-c", argv[0]] if kind == "CMD-SHELL" else argv
    if kind == "CMD" and command[0] in ("python", "python3"):
        command[0] = image.which(command[0], env)

    def passes() -> bool:
        if alive is not None and alive.poll() is not None:
            tail = log.read_text()[-4000:] if log else ""
            pytest.fail(f"{' '.join(command)}: the service exited ({alive.returncode}) first:\n{tail}", pytrace=False)
        return subprocess.run(command, env=dict(env), capture_output=True, timeout=30).returncode == 0

    wait_until(passes, timeout, f"healthcheck {test} never passed", interval=1.0)


def jars_for(packages: str) -> str:
    """`--packages` as `--jars`: each coordinate group:artifact:version is a jar of .stack/lib/spark (resolved by
    bin/install from pom.xml: the same artifacts and their dependencies, which Ivy would resolve again)."""
    lib = ROOT / ".stack" / "lib" / "spark"
    jars = sorted(lib.glob("*.jar"))
    for coordinate in packages.split(","):
        _, artifact, version = coordinate.split(":")
        assert (lib / f"{artifact}-{version}.jar").is_file(), f"{coordinate} is not in {lib}: run bin/install"
    return ",".join(str(jar) for jar in jars)


def tool(image: NativeImage, env: Mapping[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """A command in a running container of `image` (`docker compose exec <service> ...`): the container's
    environment, its working directory, `python` as the image's PATH finds it."""
    argv = list(args)
    argv[0] = image.which(argv[0], env)
    return run(argv, env=dict(env), cwd=image.workdir, capture_output=True, text=True, timeout=timeout)

