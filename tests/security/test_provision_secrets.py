"""Secrets stay secret: `superset/provision`, run for real with a MongoDB password, an admin password and a secret key
the test knows, never shows one in its output, in Superset's log, or in the arguments of any process it starts
(every user can read those: `ps`, /proc/<pid>/cmdline). Secrets travel through the environment instead, and the
admin password still works.

Apart from tests/superset on purpose: it watches its own provisioning from the first process on, which the session's
Superset (started once, elsewhere) cannot show.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from stack import StackError, free_port

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "superset" / "provision"
PROVISION_TIMEOUT_S = 900  # a first run installs Superset (~2 min) and initialises its metadata DB (~40 s)


def load_provision():
    loader = SourceFileLoader("superset_provision_secrets", str(PROVISION))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class CommandLines:
    """The command line of every process descended from `root`, sampled from /proc: a process that lives for more
    than a few milliseconds (a `superset` command lives for seconds) is seen."""

    def __init__(self) -> None:
        self.seen: dict[int, str] = {}

    def sample(self, root: int) -> None:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat.parent.name))
        pending = [root]
        while pending:
            pid = pending.pop()
            pending += children.get(pid, [])
            self.read(pid)

    def read(self, pid: int) -> None:
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return
        if text:
            self.seen[pid] = text

    def containing(self, part: str) -> list[str]:
        return [line for line in self.seen.values() if part in line]


def provision(processes, args: list[str], env: dict[str, str], log: Path, watch: CommandLines) -> int:
    """superset/provision as a user runs it, its process tree sampled until it exits."""
    with open(log, "ab") as output:
        process = processes.start([sys.executable, str(PROVISION), *args], env={**os.environ, **env},
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + PROVISION_TIMEOUT_S
    while process.poll() is None:
        watch.sample(process.pid)
        assert time.monotonic() < deadline, f"superset/provision {args[0]} still running after {PROVISION_TIMEOUT_S} s"
        time.sleep(0.02)  # the sampling period, not a wait for a result
    return process.returncode


def log_in(url: str, password: str) -> bool:
    body = json.dumps({"username": "admin", "password": password, "provider": "db", "refresh": False}).encode()
    request = urllib.request.Request(f"{url}/api/v1/security/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return "access_token" in json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return False
        raise


def test_a_failing_step_prints_the_uri_and_passwords_as_stars():
    """A failed step whose command line carries the URI and whose output repeats it and the passwords: a real
    process that prints its secrets, run the way provision runs each step."""
    provision_module = load_provision()
    uri = "mongodb://pipeline:p%40ss-" + secrets.token_hex(6) + "@db.example:27017/analytics?mode=superset"
    password = "admin-" + secrets.token_hex(6)
    printer = ("import os, sys; print('import failed for', os.environ['MONGO_SQLALCHEMY_URI'], "
               "'as', os.environ['ADMIN']); sys.exit(3)")
    with pytest.raises(StackError) as failure:
        provision_module.run([sys.executable, "-c", printer], env={**os.environ, "MONGO_SQLALCHEMY_URI": uri,
                                                                  "ADMIN": password},
                             secrets=[password, *provision_module.uri_secrets(uri)])
    message = str(failure.value)
    assert "import failed for mongodb://pipeline:***@db.example:27017/analytics?mode=superset as ***" in message
    assert password not in message and "p%40ss" not in message and "p@ss" not in message


@pytest.mark.superset
def test_provision_keeps_every_secret_out_of_its_output_its_log_and_process_arguments(mongo_server, tmp_path,
                                                                                      processes):
    mongo_password = f"mongo-{secrets.token_hex(8)}@x"     # "@" travels percent-encoded in the URI
    in_uri = mongo_password.replace("@", "%40")
    admin_password = f"admin-{secrets.token_hex(8)}"
    secret_key = f"key-{secrets.token_hex(24)}"
    host_port = mongo_server.uri.split("//", 1)[1].split("/", 1)[0]
    uri = f"mongodb://pipeline:{in_uri}@{host_port}/?retryWrites=false&authSource=admin"
    data_dir, port = tmp_path / "superset", free_port()
    flags = ["--data-dir", str(data_dir), "--port", str(port), "--secrets-file", str(tmp_path / "secrets.env"),
             "--database", "secrets_test"]
    env = {"SUPERSET_SECRET_KEY": secret_key, "SUPERSET_ADMIN_PASSWORD": admin_password, "PIPELINE_MONGO_URI": uri}
    output, watch = tmp_path / "provision.out", CommandLines()
    try:
        assert provision(processes, ["up", "--no-browser", *flags], env, output, watch) == 0, output.read_text()
        assert log_in(f"http://127.0.0.1:{port}", admin_password)

        # a new admin password is applied to the existing user on the next start
        provision(processes, ["stop", *flags], env, output, watch)
        new_password = f"admin-{secrets.token_hex(8)}"
        env["SUPERSET_ADMIN_PASSWORD"] = new_password
        assert provision(processes, ["start", *flags], env, output, watch) == 0, output.read_text()
        assert log_in(f"http://127.0.0.1:{port}", new_password)
        assert not log_in(f"http://127.0.0.1:{port}", admin_password)
        server = json.loads((data_dir / "superset.pid").read_text())["pid"]
        watch.sample(server)  # gunicorn and its worker, now that provision has exited
    finally:
        provision(processes, ["stop", *flags], env, output, watch)

    # the sampling saw the steps that take secrets, so what follows is not true by accident
    assert watch.containing("fab create-admin") and watch.containing("fab reset-password")
    assert watch.containing("import_bundle.py") and watch.containing("gunicorn")
    texts = {"provision's output": output.read_text(), "superset.log": (data_dir / "superset.log").read_text(),
             **{f"the arguments of pid {pid}": line for pid, line in watch.seen.items()}}
    for secret in (mongo_password, in_uri, admin_password, new_password, secret_key):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"a secret ({secret[:6]}...) appears in {leaks}"
