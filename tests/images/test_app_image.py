"""The application image (docker/Dockerfile), rebuilt without Docker from its own list of libraries and its own COPY
lines, runs what docker-compose.yml runs in it: every module it ships imports, the job counts a backlog with the
spark-job service's own arguments on a cluster started with the spark-master and spark-worker services' commands,
and the operator tools work in the job's container with the one documented command.

Two failures of the compose deployment were invisible to the structural checks (tests/compose/) and fail here: a
library the job imports missing from the image's list (prometheus-client: spark-job exited 1 at every restart), and
a package Superset's provisioning imports missing from its image's files (tests/images/test_superset_image.py).
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from compose_services import BACKLOG_EVENTS, tool
from native_images import CACHE, ROOT

from processes import run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Imports, in the image's environment, each module the image ships (its folders under /opt/app and the job's archive);
# prints the ones that fail. Spark's own Python (pyspark.zip, py4j) is on the path as spark-submit puts it there for
# the driver and the executors; the job's entry point is a script.
IMPORT_EVERY_MODULE = r"""
import importlib, importlib.util, json, sys, traceback, zipfile
from pathlib import Path
app, archive = Path(sys.argv[1]), Path(sys.argv[2])
names = set()
for package in ("conf", "contract", "generator", "ops"):
    for path in (app / package).rglob("*.py"):
        parts = path.relative_to(app).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in zipfile.ZipFile(archive).namelist():
    parts = Path(name).with_suffix("").parts
    names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
failed = {}
for name in sorted(n for n in names if not n.endswith("__main__")):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=1).strip().splitlines()[-1]
spec = importlib.util.spec_from_file_location("aggregate", app / "jobs" / "aggregate.py")
try:
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
except BaseException:
    failed["jobs/aggregate.py"] = traceback.format_exc(limit=1).strip().splitlines()[-1]
outside = sorted(m.__name__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)
                 and str(m.__file__).startswith(sys.argv[3]) and not str(m.__file__).startswith(sys.argv[4]))
print(json.dumps({"imported": len(names), "failed": failed, "from_the_checkout": outside}))
"""


def test_every_module_the_image_ships_imports_in_its_environment(app_image):
    env = app_image.environment()
    spark_python = sorted((Path(env["SPARK_HOME"]) / "python" / "lib").glob("*.zip"))
    env["PYTHONPATH"] = ":".join([env["PYTHONPATH"], *map(str, spark_python)])
    archive = app_image.path("/opt/app/build/interactions.zip")
    result = run([app_image.which("python", env), "-c", IMPORT_EVERY_MODULE, str(app_image.path("/opt/app")),
                  str(archive), f"{ROOT}/", f"{CACHE}/"],
                 env=env, cwd=app_image.workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failed"], f"modules of the image that do not import in it: {report['failed']}"
    assert report["imported"] >= 50
    assert not report["from_the_checkout"], f"the image's Python imported from the checkout: {report}"


def test_the_archive_is_built_by_the_images_python_and_holds_the_jobs_library(app_image):
    """bin/package-job ran as the Dockerfile runs it, with python3 and python failing (the base image has neither):
    the step names the image's own interpreter."""
    archive = app_image.path("/opt/app/build/interactions.zip")
    names = set(zipfile.ZipFile(archive).namelist())
    layout = app_image.path("/opt/app")
    expected = {p.relative_to(layout / "jobs").as_posix() for p in (layout / "jobs" / "interactions").rglob("*.py")}
    expected |= {p.relative_to(layout).as_posix() for p in (layout / "contract").rglob("*.py")}
    assert names == expected
    assert any("package-job" in step and str(app_image.paths["/opt/venv"]) in step for step in app_image.steps)


def test_the_job_counts_a_backlog_with_the_compose_services_commands(compose_run, compose_variables):
    assert f"valid {BACKLOG_EVENTS:,}," in compose_run.generator.stdout + compose_run.generator.stderr
    assert compose_run.job_alive_at_count, "spark-job had exited when the backlog was counted"
    totals = compose_run.database.totals.find_one({"_id": "all"})
    assert (totals["events"], totals["dead_letters"], totals["late_events"]) == (BACKLOG_EVENTS, 0, 0)
    users = compose_run.database.user_stats.find({}, {"interactions": 1})
    assert sum(user["interactions"] for user in users) == BACKLOG_EVENTS
    assert "Traceback" not in compose_run.job_output
    assert compose_variables["MONGO_ROOT_PASSWORD"] not in compose_run.job_output


def documented_exec(tool_module: str) -> list[str]:
    """The one command the README documents for an operator tool: `docker compose exec <service> python -m <tool>`."""
    found = re.findall(rf"docker compose exec ([\w-]+) (python -m {re.escape(tool_module)})\b",
                       (ROOT / "README.md").read_text())
    assert found, f"README.md documents no `docker compose exec ... python -m {tool_module}`"
    assert len(set(found)) == 1, found
    return [found[0][0], *found[0][1].split()]


def test_verify_runs_in_the_jobs_container_with_the_documented_command_and_agrees(compose_run, app_image):
    service, *command = documented_exec("ops.verify")
    assert service == "spark-job"
    result = tool(app_image, compose_run.job_env, *command, "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK" in result.stdout
    assert f"{BACKLOG_EVENTS} records" in result.stdout


def test_status_runs_in_the_jobs_container_with_the_documented_command(compose_run, app_image):
    service, *command = documented_exec("ops.status")
    assert service == "spark-job"
    result = tool(app_image, compose_run.job_env, *command)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout
    assert f"topic {compose_run.topic}; job lag 0 " in lines, lines
    assert re.search(r"query\s+interactions batch\s+\d+", lines), lines
    assert f"events {BACKLOG_EVENTS} " in lines, lines
