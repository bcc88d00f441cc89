"""What every local service shares: a detached process with a pid file, a log file and a readiness probe.

A service is identified by its data directory: the pid file there says whether it runs, so `start` is idempotent
across processes (the CLI, a test session, a benchmark) and many instances can run side by side on different ports
and directories. Readiness is a real request to the service with a deadline, never a fixed sleep. Each start appends
to the service's log, after moving it to `<name>.log.1` once it has grown past LOG_MAX_BYTES (three generations).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POLL_INTERVAL_S = 0.1
LOG_MAX_BYTES = 20 * 1024 * 1024  # a log past this size at a start is moved aside
LOG_GENERATIONS = 3  # <name>.log.1 (newest) ... <name>.log.3 kept

# Lines of a log that explain a failure better than the last line does (a Java stack trace ends with "at ..." lines).
_RELEVANT = re.compile(r"\b(ERROR|FATAL|CRITICAL|Exception|Error|error:|Traceback|Address already in use)")
# The header line of a Java or Python exception: "java.lang.RuntimeException: ...", "Caused by: ...", "OSError: ...".
_EXCEPTION = re.compile(r"^(Caused by: )?[A-Za-z_][\w.$]*(Exception|Error)\b(: .*)?$")


class StackError(RuntimeError):
    """A failure a user can act on; its message is one line."""


class Service(ABC):
    """One detached server process owned through `<data_dir>/<name>.pid`."""

    name: str = "service"
    log_max_bytes: int = LOG_MAX_BYTES

    def __init__(self, data_dir: str | os.PathLike[str], host: str, port: int) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = int(port)
        self._proc: subprocess.Popen[bytes] | None = None

    # --- what a concrete service provides -------------------------------------------------------------------------

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients connect (bootstrap servers, URI)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line."""

    @abstractmethod
    def answers(self) -> bool:
        """One real request to the service (short timeout): True if it answered."""

    def ports(self) -> Sequence[int]:
        return (self.port,)

    def check_prerequisites(self) -> None:  # noqa: B027 (a hook: most services need none)
        """Raise StackError if something the server needs is missing (a binary, jars)."""

    def prepare(self) -> None:  # noqa: B027 (a hook)
        """Write configuration, initialise storage: whatever must exist before the first start."""

    # --- files ----------------------------------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this service's live process, or None (a stale pid file is ignored)."""
        record = self._read_pid_file()
        if record is None:
            return None
        pid = record.get("pid")
        if not isinstance(pid, int) or not _alive(pid):
            return None
        if record.get("started") != _process_start_time(pid):
            return None  # the pid was reused by an unrelated process
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server detached and return once it answers; a no-op if this service already runs."""
        deadline = time.monotonic() + timeout
        pid = self.pid()
        if pid is not None:
            print(f"{self.name} already running at {self.address} (pid {pid})", flush=True)
            self._wait_until_answers(deadline, pid)
            return
        self.pid_file.unlink(missing_ok=True)
        self.check_prerequisites()
        for port in self.ports():
            _require_free_port(self.host, port, self.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        rotate_log(self.log_file, self.log_max_bytes)
        began = time.monotonic()
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {self.name} starting at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command(), cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=self.environment())
        pid = self._proc.pid
        self._write_pid_file(pid)
        try:
            self._wait_until_answers(deadline, pid)
        except BaseException:
            self._terminate(pid, timeout=10.0)
            self.pid_file.unlink(missing_ok=True)
            raise
        print(f"{self.name} listening at {self.address} (pid {pid}, ready in {time.monotonic() - began:.1f} s, "
              f"log {self.log_file})", flush=True)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL. True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self._reap()
            return False
        self._terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        return True

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    # --- internals ------------------------------------------------------------------------------------------------

    def _wait_until_answers(self, deadline: float, pid: int) -> None:
        while True:
            if not self._still_alive(pid):
                raise StackError(f"{self.name} exited during startup; {self.log_file}: {self._last_relevant_line()}")
            if self.answers():
                return
            if time.monotonic() >= deadline:
                raise StackError(f"{self.name} (pid {pid}) did not answer at {self.address} in time; "
                                 f"{self.log_file}: {self._last_relevant_line()}")
            time.sleep(POLL_INTERVAL_S)

    def _still_alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return _alive(pid)

    def _terminate(self, pid: int, timeout: float) -> None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._still_alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)
        if self._still_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
            while self._still_alive(pid) and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL_S)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def _write_pid_file(self, pid: int) -> None:
        record = {"pid": pid, "started": _process_start_time(pid), "address": self.address}
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        tmp.replace(self.pid_file)

    def _read_pid_file(self) -> dict | None:
        try:
            record = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _last_relevant_line(self) -> str:
        try:
            with open(self.log_file, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 64 * 1024))
                tail = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        lines = [line.strip() for line in tail.split(f"--- {self.name} starting at")[-1].splitlines() if line.strip()]
        lines = lines[1:]  # the rest of the marker line
        relevant = [i for i, line in enumerate(lines) if _RELEVANT.search(line) and not line.startswith("at ")]
        # A logged error is often followed by its exception: the (root) cause says more than "fatal exception".
        causes = [line for line in lines[relevant[-1] if relevant else 0:] if _EXCEPTION.match(line)]
        if causes:
            chosen = causes[-1]
        else:
            chosen = lines[relevant[-1]] if relevant else (lines[-1] if lines else "(empty log)")
        return chosen if len(chosen) <= 400 else chosen[:397] + "..."


def rotate_log(path: str | os.PathLike[str], max_bytes: int = LOG_MAX_BYTES,
               generations: int = LOG_GENERATIONS) -> bool:
    """Before a process starts appending to `path`: if it has grown past `max_bytes`, move it to `<path>.1` (and
    `.1` to `.2` ..., dropping the oldest beyond `generations`), so logs stay bounded across restarts. True if moved."""
    log = Path(path)
    try:
        if log.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for generation in range(generations - 1, 0, -1):  # the oldest is overwritten
        older = log.with_name(f"{log.name}.{generation}")
        if older.exists():
            older.replace(log.with_name(f"{log.name}.{generation + 1}"))
    log.replace(log.with_name(f"{log.name}.1"))
    return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports nothing listens on right now (for tests and benchmarks; another process may still
    take one before the service binds it)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:  # all bound at once, so the kernel cannot hand out the same port twice
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def _require_free_port(host: str, port: int, service: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free for a server
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "already in use by another process" if exc.errno == 98 else exc.strerror
            raise StackError(f"cannot start {service}: port {host}:{port} is {reason}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _process_start_time(pid: int) -> int | None:
    """Clock ticks since boot at which `pid` started: tells a live service from a reused pid."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the service's process group (it leads its own session), falling back to the process alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
