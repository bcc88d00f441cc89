"""The Superset image (docker/superset.Dockerfile), rebuilt without Docker from its own COPY lines and its Python,
provisions Superset with the compose service's environment, passes the service's own healthcheck and serves every
chart of the dashboard from the database the job wrote in the compose run (tests/images/conftest.py).

The image's files are only what its COPY lines list: `superset/provision install`, its build step, imported
conf/loader.py, which imports the event contract the image did not copy, and the image did not build.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from compose_services import BACKLOG_EVENTS, healthcheck, service_env
from native_images import (
    ROOT,
    SYSTEM_PATH,
    Instruction,
    NativeImage,
    build,
    interpreters,
    network,
    run_step,
)

from stack import free_port
from stack.superset_api import DASHBOARD, SupersetApi

from processes import Processes, run
from waiting import wait_until

pytestmark = [pytest.mark.superset, pytest.mark.e2e]

DOCKERFILE = ROOT / "docker" / "superset.Dockerfile"
START_TIMEOUT_S = 420  # the compose healthcheck's start period (300 s) and then some: metadata DB, bundle, gunicorn
CHECKOUT_VENV = ROOT / "superset" / ".venv"


def _superset_install(image: NativeImage, step: Instruction) -> str:
    """`python superset/provision install --no-browser`, run as written in the image's files with the image's bare
    Python. The environment it builds is the one the same command builds in the checkout from the same list
    (superset/requirements.txt, ~800 MB, ~90 s): that one is brought up to date and linked in, so that provision's own
    check of the list's hash finds it current instead of installing it a second time."""
    assert re.fullmatch(r"python superset/provision install --no-browser", step.text), step
    run([sys.executable, str(ROOT / "superset" / "provision"), "install", "--no-browser"], check=True,
        capture_output=True, timeout=900)
    assert image.workdir is not None
    (image.workdir / "superset" / ".venv").symlink_to(CHECKOUT_VENV)
    done = run_step(image, step)
    assert "is up to date" in done, done
    return done


STEPS = [
    (r"^useradd\b", lambda image, step: "user superset (its home: /var/lib/superset)"),
    (r"superset/provision install", _superset_install),
]


@pytest.fixture(scope="module")
def superset_image(tmp_path_factory) -> NativeImage:
    root = tmp_path_factory.mktemp("superset-image")
    paths = {"/opt/app": root / "opt" / "app", "/usr/local/bin": root / "usr" / "local" / "bin",
             "/var/lib/superset": root / "var" / "lib" / "superset"}
    for folder in paths.values():
        folder.mkdir(parents=True)
    # the base image (python:3.11-slim): its Python (no third-party package) first on PATH, then Debian's folders
    shims = interpreters(root / "base-bin", provided=["python", "python3", "python3.11"], missing=[])
    base_env = {"PATH": f"{shims}:{paths['/usr/local/bin']}:{SYSTEM_PATH}", "LANG": "C.UTF-8",
                "HOME": str(paths["/var/lib/superset"])}
    return build(DOCKERFILE, paths=paths, base_env=base_env, steps=STEPS)


def test_every_module_the_image_ships_imports_with_the_python_that_runs_it(superset_image):
    """conf, contract and stack with the image's own Python (superset/provision runs on it); Superset's
    configuration and its MongoDB read modules with Superset's environment."""
    app = superset_image.path("/opt/app")
    env = superset_image.environment(SUPERSET_SECRET_KEY="import-test", SUPERSET_DATA_DIR=str(app / "data"))
    packages = [p.relative_to(app).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
                for package in ("conf", "contract", "stack") for p in (app / package).rglob("*.py")]
    modules = [m for m in packages if not m.endswith("__main__")]
    script = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    result = run([superset_image.which("python", env), "-c", script, *modules], env=env, cwd=app,
                 capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    superset_venv_python = str(app / "superset" / ".venv" / "bin" / "python")
    script = ("import sys; sys.path.insert(0, 'superset'); import superset_config, import_bundle, mongodb_reads, "
              "mongodb_sql")
    result = run([superset_venv_python, "-c", script], env=env, cwd=app, capture_output=True, text=True,
                 timeout=300)
    assert result.returncode == 0, result.stderr


@dataclass
class SupersetRun:
    charts: dict[str, dict]  # chart name -> its data query's result
    chart_files: int         # charts in the image's bundle
    exit_code: int | None    # the entrypoint's, after SIGTERM
    gunicorn_outlived: bool
    output: str              # the container's output: the entrypoint's and Superset's log


@pytest.fixture(scope="module")
def superset_run(superset_image, compose, compose_variables, addresses, compose_run,
                 tmp_path_factory) -> Iterator[SupersetRun]:
    """The superset service started as compose starts it (its image's CMD, its environment; the compose run's
    database, which the job wrote), its own healthcheck passed, every chart of the dashboard asked for its data, then
    stopped as `docker compose stop` does (SIGTERM to the entrypoint)."""
    folder = tmp_path_factory.mktemp("superset-run")
    port = free_port()
    net = {**addresses, "8088": str(port)}
    env = service_env(superset_image, compose, compose_variables, net, "superset")
    command = json.loads(superset_image.cmd)
    entrypoint = Path(superset_image.which(command[0], env))
    native = folder / entrypoint.name  # the script names the image's paths and ports: made native, as a copy
    native.write_text(superset_image.native(network(entrypoint.read_text(), net)))
    output = folder / "entrypoint.out"
    processes = Processes()
    try:
        with output.open("wb") as out:
            server = processes.start(["sh", str(native), *command[1:]], env=env, cwd=superset_image.workdir,
                                     stdout=out, stderr=subprocess.STDOUT)
        healthcheck(superset_image, env, compose["services"]["superset"], net, timeout=START_TIMEOUT_S,
                    alive=server, log=output)
        api = SupersetApi.logged_in(f"http://127.0.0.1:{port}", "admin", compose_variables["SUPERSET_ADMIN_PASSWORD"])
        charts = {chart["slice_name"]: api.call("GET", f"/api/v1/chart/{chart['id']}/data/")["result"][0]
                  for chart in api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]}
        chart_files = len(list(superset_image.path("/opt/app/superset/bundle/charts").glob("*.yaml")))

        gunicorn = json.loads((superset_image.path("/var/lib/superset") / "superset.pid").read_text())["pid"]
        os.kill(server.pid, signal.SIGTERM)
        wait_until(lambda: server.poll() is not None, 60, "the entrypoint did not exit on SIGTERM")
        deadline = time.monotonic() + 30
        while Path(f"/proc/{gunicorn}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # the stop's own grace period, then the verdict
        yield SupersetRun(charts, chart_files, server.returncode, Path(f"/proc/{gunicorn}").exists(),
                          output.read_text())
    finally:
        processes.end_all()
        run(["sh", "-c", superset_image.native("python superset/provision stop --data-dir /var/lib/superset")],
            env=env, cwd=superset_image.workdir, capture_output=True, timeout=120)


def test_superset_serves_every_chart_of_the_dashboard_from_the_jobs_database(superset_run):
    assert len(superset_run.charts) == superset_run.chart_files >= 14
    failed = {name: result.get("error") for name, result in superset_run.charts.items()
              if result["status"] != "success"}
    assert not failed
    values = [value for result in superset_run.charts.values() for row in result["data"] for value in row.values()]
    assert BACKLOG_EVENTS in values, f"no chart shows the job's {BACKLOG_EVENTS} events: {values[:40]}"


def test_the_container_stops_superset_on_sigterm(superset_run):
    assert superset_run.exit_code is not None and not superset_run.gunicorn_outlived


@pytest.mark.parametrize("secret", ["SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY"])
def test_the_containers_output_shows_no_superset_secret(superset_run, compose_variables, secret):
    assert compose_variables[secret] not in superset_run.output


def test_the_containers_output_shows_no_mongodb_password(superset_run, compose_variables):
    assert compose_variables["MONGO_ROOT_PASSWORD"] not in superset_run.output
