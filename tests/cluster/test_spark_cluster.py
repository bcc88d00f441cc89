"""The Spark standalone cluster of the local stack: start, readiness through the master's JSON, idempotence, stop,
and the `python -m stack up|down spark` command."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stack import StackError
from stack.process import PROJECT_ROOT, free_port
from stack.spark_cluster import SparkCluster

from processes import run


def test_a_worker_memory_that_is_not_a_size_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"^worker memory '2 GB' is not a size like 512m or 2g$"):
        SparkCluster(tmp_path, worker_memory="2 GB")


def test_a_taken_master_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster = SparkCluster.on_free_ports(tmp_path, workers=1)
        cluster.master.port = taken.getsockname()[1]
        with pytest.raises(StackError, match=rf"^cannot start spark-master: port 127\.0\.0\.1:{cluster.master.port} "
                                             "is already in use by another process$"):
            cluster.start(timeout=10)
    assert not cluster.master.pid_file.exists()


@pytest.mark.integration
def test_the_master_lists_every_worker_alive_with_its_cores(spark_cluster: SparkCluster) -> None:
    state = spark_cluster.master.state()

    assert state["status"] == "ALIVE" and state["aliveworkers"] == 2 and state["cores"] == 2
    assert {(w["host"], w["port"]) for w in spark_cluster.master.alive_workers()} == {
        (w.host, w.port) for w in spark_cluster.workers}
    assert all(w["memory"] == 1024 for w in spark_cluster.master.alive_workers())


@pytest.mark.integration
def test_starting_a_running_cluster_again_keeps_its_processes(spark_cluster: SparkCluster, capsys) -> None:
    pids = [spark_cluster.master.pid()] + [w.pid() for w in spark_cluster.workers]
    same = SparkCluster(spark_cluster.data_dir, workers=2, worker_memory="1g", master_port=spark_cluster.master.port,
                        master_webui_port=spark_cluster.master.webui_port,
                        worker_ports=[w.port for w in spark_cluster.workers],
                        worker_webui_ports=[w.webui_port for w in spark_cluster.workers])  # as another process sees it

    same.start(timeout=60)

    assert capsys.readouterr().out.count("already running") == 3
    assert [same.master.pid()] + [w.pid() for w in same.workers] == pids and None not in pids


@pytest.mark.integration
def test_stack_command_starts_and_stops_a_cluster(tmp_path: Path) -> None:
    master_port, ui_port = _free_pair(), _free_pair()  # worker 1 takes the next port of each
    env = {**os.environ, "PIPELINE_STACK_DATA_DIR": str(tmp_path)}
    flags = ["--workers", "1", "--worker-memory", "512m", "--spark-master-port", str(master_port),
             "--spark-ui-port", str(ui_port)]
    cluster = SparkCluster(tmp_path / "data" / "spark", workers=1, master_port=master_port,
                           master_webui_port=ui_port)
    try:
        up = _stack(["up", "spark", *flags], env)
        status = _stack(["status", "spark"], env)
        alive = len(cluster.master.alive_workers())
        pids = [cluster.master.pid(), cluster.workers[0].pid()]
    finally:
        down = _stack(["down", "spark"], env)

    assert up.returncode == 0 and f"spark cluster ready at spark://127.0.0.1:{master_port}: 1 workers" in up.stdout, up
    assert status.stdout.split()[:3] == ["spark", "up", f"spark://127.0.0.1:{master_port}"], status
    assert alive == 1 and None not in pids
    assert down.returncode == 0 and down.stdout.strip() == "spark stopped", down
    assert not cluster.master.is_running() and not cluster.workers[0].is_running()
    assert all(not _alive(pid) for pid in pids)


def _stack(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "stack", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
               text=True, timeout=240)


def _free_pair() -> int:
    """A port p with p and p + 1 free right now."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
