"""A Spark standalone cluster on loopback, from the pyspark installation: one master and N workers, each its own JVM.

The pyspark 4.2.0 wheel ships `bin/spark-class` but not `sbin/start-master.sh` / `start-worker.sh` (its sbin holds only
spark-daemon.sh and the history-server scripts). Those scripts only wrap
`spark-class org.apache.spark.deploy.master.Master` and `... deploy.worker.Worker`; running these in the foreground of a
`stack.process.Service` gives the master and every worker the same pid file, log, readiness probe and clean stop as
the other local services. Readiness is the master's JSON API (`http://<host>:<ui port>/json/`): the master is ready
when it reports ALIVE, a worker when the master lists it as ALIVE, the cluster when all of its workers are.

Layout under the cluster's data directory (tests: a tmp dir; the CLI: .stack/data/spark/):
    master/   spark-master.pid, spark-master.log
    worker-<i>/  spark-worker-<i>.pid, .log, work/ (SPARK_WORKER_DIR: executors' stdout/stderr, fetched jars and
                 --py-files), local/ (SPARK_LOCAL_DIRS: shuffle and spill files)
"""
from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stack.process import POLL_INTERVAL_S, Service, StackError, free_ports

# Heap of the master and worker daemons themselves (Spark's default is 1g each); executors get spark.executor.memory.
DAEMON_MEMORY = "512m"
_MEMORY = re.compile(r"^[1-9][0-9]*[mMgG]$")


def spark_home() -> Path:
    """The pyspark package directory: a complete SPARK_HOME (bin/, jars/, conf/spark-defaults.conf from bin/install)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise StackError("pyspark is not installed in this environment: run bin/install")
    return Path(spec.origin).resolve().parent


class _SparkDaemon(Service):
    """A master or worker JVM started through `spark-class` (which execs java, so the pid is the JVM's)."""

    main_class = ""

    def __init__(self, data_dir: str | os.PathLike[str], host: str, port: int, webui_port: int) -> None:
        super().__init__(data_dir, host, port)
        self.webui_port = int(webui_port)

    @property
    def webui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    def ports(self) -> tuple[int, int]:
        return (self.port, self.webui_port)

    def check_prerequisites(self) -> None:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise StackError("java not found on PATH: install OpenJDK 17 (Spark runs on it)")
        if not (spark_home() / "bin" / "spark-class").exists():
            raise StackError(f"{spark_home()}/bin/spark-class not found: the pyspark installation is incomplete")

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": self.host,  # binds the RPC endpoints and the web UIs to loopback
            "SPARK_LOG_DIR": str(self.data_dir),  # spark-class runs in the foreground: its output is <name>.log
            "SPARK_PID_DIR": str(self.data_dir),
            "SPARK_IDENT_STRING": self.name,
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
            "SPARK_NO_DAEMONIZE": "1",
        })
        return env

    def _spark_class(self, *args: str) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), self.main_class, *args]


class SparkMaster(_SparkDaemon):
    """The standalone master: `spark://host:port` for applications and workers, its web UI and JSON on `webui_port`."""

    name = "spark-master"
    main_class = "org.apache.spark.deploy.master.Master"

    def __init__(self, data_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 7077,
                 webui_port: int = 8080) -> None:
        super().__init__(data_dir, host, port, webui_port)

    @property
    def url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.url

    def command(self) -> list[str]:
        return self._spark_class("--host", self.host, "--port", str(self.port), "--webui-port", str(self.webui_port))

    def environment(self) -> dict[str, str]:
        # The REST submission server (port 6066 by default) only serves cluster-mode JVM drivers; turned off so that
        # several masters (a developer's, a test session's) can share a host.
        return {**super().environment(), "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}

    def state(self) -> dict[str, Any] | None:
        """The master's JSON status (workers, applications, status), or None if it does not answer."""
        return _get_json(f"{self.webui_url}/json/")

    def answers(self) -> bool:
        state = self.state()
        return state is not None and state.get("status") == "ALIVE"  # STANDBY until it has recovered (a second or so)

    def alive_workers(self) -> list[dict[str, Any]]:
        state = self.state() or {}
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


class SparkWorker(_SparkDaemon):
    """One worker offering `cores` cores and `memory` to executors; registered with `master`."""

    main_class = "org.apache.spark.deploy.worker.Worker"

    def __init__(self, data_dir: str | os.PathLike[str], master: SparkMaster, index: int, *, port: int,
                 webui_port: int, cores: int = 1, memory: str = "1g") -> None:
        super().__init__(data_dir, master.host, port, webui_port)
        self.name = f"spark-worker-{index}"
        self.master = master
        self.index = index
        self.cores = int(cores)
        self.memory = memory

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port} ({self.cores} cores, {self.memory}, ui {self.webui_url})"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "local").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return self._spark_class("--host", self.host, "--port", str(self.port), "--webui-port", str(self.webui_port),
                                 "--cores", str(self.cores), "--memory", self.memory,
                                 "--work-dir", str(self.work_dir), self.master.url)

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "SPARK_WORKER_DIR": str(self.work_dir),
                "SPARK_LOCAL_DIRS": str(self.data_dir / "local")}

    def answers(self) -> bool:
        """Registered: the master lists this worker's id (from the worker's own JSON) as ALIVE. An id, not the port,
        because a worker restarted on the same port leaves its predecessor's entry behind (DEAD)."""
        own = _get_json(f"{self.webui_url}/json/")
        if not own or not own.get("id"):
            return False
        return any(w.get("id") == own["id"] for w in self.master.alive_workers())


class SparkCluster:
    """A master and `workers` workers, started and stopped together; behaves like a Service for `python -m stack`.

    Every port is explicit so that clusters can run side by side: the CLI derives the workers' ports from the
    master's (worker i: port + i, web UI + i); tests and benchmarks take free ports with `on_free_ports`.
    """

    name = "spark"

    def __init__(self, data_dir: str | os.PathLike[str], *, host: str = "127.0.0.1", workers: int = 2,
                 worker_cores: int = 1, worker_memory: str = "1g", master_port: int = 7077,
                 master_webui_port: int = 8080, worker_ports: Sequence[int] | None = None,
                 worker_webui_ports: Sequence[int] | None = None) -> None:
        if workers < 1:
            raise StackError(f"a Spark cluster needs at least one worker (got {workers})")
        if worker_cores < 1:
            raise StackError(f"worker cores must be at least 1 (got {worker_cores})")
        if not _MEMORY.match(worker_memory):
            raise StackError(f"worker memory {worker_memory!r} is not a size like 512m or 2g")
        worker_ports = list(worker_ports or [master_port + i for i in range(1, workers + 1)])
        worker_webui_ports = list(worker_webui_ports or [master_webui_port + i for i in range(1, workers + 1)])
        if len(worker_ports) != workers or len(worker_webui_ports) != workers:
            raise StackError(f"{workers} workers need {workers} ports and {workers} web UI ports")
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.master = SparkMaster(self.data_dir / "master", host, master_port, master_webui_port)
        self.workers = [
            SparkWorker(self.data_dir / f"worker-{i}", self.master, i, port=port, webui_port=ui, cores=worker_cores,
                        memory=worker_memory)
            for i, (port, ui) in enumerate(zip(worker_ports, worker_webui_ports, strict=True), start=1)]

    @classmethod
    def on_free_ports(cls, data_dir: str | os.PathLike[str], workers: int = 2, worker_cores: int = 1,
                      worker_memory: str = "1g", host: str = "127.0.0.1") -> SparkCluster:
        """A cluster whose every port is free right now (tests, benchmarks)."""
        ports = free_ports(2 + 2 * workers, host)
        return cls(data_dir, host=host, workers=workers, worker_cores=worker_cores, worker_memory=worker_memory,
                   master_port=ports[0],
                   master_webui_port=ports[1], worker_ports=ports[2:2 + workers],
                   worker_webui_ports=ports[2 + workers:])

    # --- what python -m stack and the tests use -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """What spark-submit's --master takes."""
        return self.master.url

    @property
    def address(self) -> str:
        """The running master's URL as recorded at its start (it may have been started on other ports)."""
        record = self.master._read_pid_file() if self.master.is_running() else None
        return str(record.get("address")) if record and record.get("address") else self.master.url

    @property
    def webui_url(self) -> str:
        return self.master.webui_url

    def pid(self) -> int | None:
        return self.master.pid()

    def is_running(self) -> bool:
        return self.master.is_running()

    def start(self, timeout: float = 120.0) -> None:
        """Start the master, then every worker (in parallel), and return once the master lists them all as ALIVE.
        Idempotent: running daemons are kept."""
        deadline = time.monotonic() + timeout
        self.master.start(timeout=timeout)
        remaining = max(1.0, deadline - time.monotonic())
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.workers)) as pool:
            futures = [pool.submit(worker.start, remaining) for worker in self.workers]
            errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]
        self.wait_for_workers(deadline)
        state = self.master.state() or {}
        print(f"spark cluster ready at {self.url}: {state.get('aliveworkers')} workers, {state.get('cores')} cores, "
              f"{state.get('memory')} MiB for executors (web UI {self.webui_url})", flush=True)

    def wait_for_workers(self, deadline: float) -> None:
        """Until the master's JSON lists this cluster's workers (by port) as ALIVE, or StackError at `deadline`."""
        wanted = {(w.host, w.port) for w in self.workers}
        while True:
            alive = {(w.get("host"), w.get("port")) for w in self.master.alive_workers()}
            if wanted <= alive:
                return
            if time.monotonic() >= deadline:
                raise StackError(f"only {len(wanted & alive)} of {len(wanted)} workers are ALIVE at the Spark master "
                                 f"{self.webui_url} in time; see the logs under {self.data_dir}")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every worker this data directory holds (also those of an earlier, larger `up`), then the master.
        Workers first, so that none is left retrying a master that is gone. True if anything was stopped."""
        workers = {w.pid_file: w for w in self.workers}
        for pid_file in self.data_dir.glob("worker-*/spark-worker-*.pid"):
            found = re.fullmatch(r"spark-worker-(\d+)\.pid", pid_file.name)
            if found and pid_file.resolve() not in workers:  # ports do not matter for stopping: the pid file does
                workers[pid_file.resolve()] = SparkWorker(pid_file.parent, self.master, int(found[1]), port=0,
                                                          webui_port=0)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
            stopped = list(pool.map(lambda w: w.stop(timeout), workers.values()))
        return self.master.stop(timeout) or any(stopped)


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            value = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
