"""python -m stack up|down|status [kafka|mongo|spark]: the local services of the pipeline, without Docker.

Addresses come from the [stack] section of the configuration (conf/pipeline.toml, PIPELINE_STACK_* variables);
each service keeps its data, log and pid file under <data_dir>/data/<service>/. A relative data_dir is taken from
the project root, so the command means the same from any working directory.
The Spark standalone cluster (master + workers, for `spark-submit --master spark://...`) is started only when named:
`up spark [--workers N --worker-cores C --worker-memory 2g]`; `down` and `status` include it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conf import ConfigError, StackConfig, load_config
from stack.kafka import KafkaBroker
from stack.mongo import MongoServer
from stack.process import PROJECT_ROOT, Service, StackError
from stack.spark_cluster import SparkCluster

SERVICES = ("kafka", "mongo", "spark")
STARTED_BY_DEFAULT = ("kafka", "mongo")  # the job runs in local mode unless a cluster is asked for


def services(config: StackConfig, spark: dict | None = None) -> dict[str, Service | SparkCluster]:
    """The configured services, by name, in start order."""
    root = Path(config.data_dir)
    root = root if root.is_absolute() else PROJECT_ROOT / root
    return {
        "kafka": KafkaBroker(root / "data" / "kafka", host=config.host, port=config.kafka_port,
                             controller_port=config.kafka_controller_port),
        "mongo": MongoServer(root / "data" / "mongo", host=config.host, port=config.mongo_port),
        "spark": SparkCluster(root / "data" / "spark", host=config.host, **(spark or {})),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("service", nargs="?", choices=SERVICES, help="one service (default: all)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a service (default 120)")
    spark = parser.add_argument_group("spark (up spark)")
    spark.add_argument("--workers", type=int, default=2, help="worker JVMs (default 2)")
    spark.add_argument("--worker-cores", type=int, default=1, help="cores each worker offers (default 1)")
    spark.add_argument("--worker-memory", default="2g", help="memory each worker offers executors (default 2g)")
    spark.add_argument("--spark-master-port", type=int, default=7077,
                       help="master port (default 7077); worker i listens on this + i")
    spark.add_argument("--spark-ui-port", type=int, default=8080,
                       help="master web UI and JSON port (default 8080); worker i's UI on this + i")
    args = parser.parse_args(argv)
    try:
        spark_options = {"workers": args.workers, "worker_cores": args.worker_cores,
                         "worker_memory": args.worker_memory, "master_port": args.spark_master_port,
                         "master_webui_port": args.spark_ui_port}
        default = STARTED_BY_DEFAULT if args.action == "up" else SERVICES
        chosen = [svc for name, svc in services(load_config().stack, spark_options).items()
                  if name == args.service or (args.service is None and name in default)]
        if args.action == "up":
            for svc in chosen:
                svc.start(timeout=args.timeout)
        elif args.action == "down":
            for svc in reversed(chosen):
                print(f"{svc.name} stopped" if svc.stop(timeout=args.timeout) else f"{svc.name} was not running",
                      flush=True)
        else:
            for svc in chosen:
                pid = svc.pid()
                state = f"up    {svc.address} (pid {pid})" if pid else f"down  (would listen at {svc.address})"
                print(f"{svc.name:<6} {state}  data {svc.data_dir}", flush=True)
    except (StackError, ConfigError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
