"""python -m stack up|down|status [kafka|mongo]: the local services of the pipeline, without Docker.

Addresses come from the [stack] section of the configuration (conf/pipeline.toml, PIPELINE_STACK_* variables);
each service keeps its data, log and pid file under <data_dir>/data/<service>/. A relative data_dir is taken from
the project root, so the command means the same from any working directory.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conf import ConfigError, StackConfig, load_config
from stack.kafka import KafkaBroker
from stack.mongo import MongoServer
from stack.process import PROJECT_ROOT, Service, StackError

SERVICES = ("kafka", "mongo")


def services(config: StackConfig) -> dict[str, Service]:
    """The configured services, by name, in start order."""
    root = Path(config.data_dir)
    root = root if root.is_absolute() else PROJECT_ROOT / root
    return {
        "kafka": KafkaBroker(root / "data" / "kafka", host=config.host, port=config.kafka_port,
                             controller_port=config.kafka_controller_port),
        "mongo": MongoServer(root / "data" / "mongo", host=config.host, port=config.mongo_port),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("service", nargs="?", choices=SERVICES, help="one service (default: all)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a service (default 120)")
    args = parser.parse_args(argv)
    try:
        chosen = [svc for name, svc in services(load_config().stack).items()
                  if args.service in (None, name)]
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
