"""A real Spark standalone cluster (master + 2 workers, separate JVMs on loopback), the job's shipped archive and a
Python for executors that does not see the project's editable install; once per session (the JVMs take 10-30 s to
start on a busy 2-core machine)."""
from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.process import PROJECT_ROOT
from stack.spark_cluster import SparkCluster

from processes import run

CLUSTER_START_TIMEOUT_S = 180.0


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Master + 2 workers of 1 core and 1 GiB each, on free ports, with their logs and work dirs in a tmp dir."""
    cluster = SparkCluster.on_free_ports(tmp_path_factory.mktemp("spark"), workers=2, worker_cores=1,
                                         worker_memory="1g")
    try:
        cluster.start(timeout=CLUSTER_START_TIMEOUT_S)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def job_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive bin/package-job builds for --py-files (into a tmp dir, not the developer's .stack/build)."""
    out = tmp_path_factory.mktemp("build") / "interactions.zip"
    run([str(PROJECT_ROOT / "bin" / "package-job"), str(out)], check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="session")
def executor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter for executors (spark.pyspark.python) like a real cluster's: this environment's libraries
    (pyspark, pymongo, ...) but not the project's editable install, so only --py-files can provide `interactions`.

    `-S` skips site processing, hence the .pth file of the editable install; the libraries come back through
    PYTHONPATH, after the entries Spark puts there.
    """
    wrapper = tmp_path_factory.mktemp("executor-python") / "python"
    libraries = sysconfig.get_paths()["purelib"]
    wrapper.write_text("#!/bin/sh\n"
                       f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{libraries}" exec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    probe = run([str(wrapper), "-c", "import pymongo, pyspark; import interactions"], cwd=wrapper.parent,
                capture_output=True, text=True, timeout=60)
    assert "No module named 'interactions'" in probe.stderr, f"the wrapper still sees the project: {probe.stderr}"
    return wrapper
