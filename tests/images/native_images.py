"""The compose file's images rebuilt without Docker, the way their Dockerfiles build them, and its services' commands
run in them.

There is no Docker engine on the project's machines, so a Dockerfile is read and replayed here, instruction by
instruction, onto directories that stand for the image's paths (`/opt/app` -> a temporary folder, ...):

- COPY copies the repository's files, leaving out what the Dockerfile's `.dockerignore` leaves out: the image's
  files are exactly what its COPY lines list, nothing from the checkout besides.
- ENV sets the image's environment (in order, `$PATH` and the like expanded), with its paths made native.
- RUN runs the step's own command line, made native, through `sh`, unless the image's test says how the step is
  reproduced otherwise (a Python environment built once and cached by what it is built from; an `apt-get` the
  machine already stands for; a `chown` to a user that exists only in the image). A RUN step nobody described fails
  the build: a new step needs a decision, not silence.
- FROM, WORKDIR, USER, CMD are recorded; the base image's own environment is given by the test (`base_env`).

Commands then run with the image's environment only (not the developer's .venv, not the checkout on sys.path), with
a `python3`/`python` that fails loudly when the image has none of its own.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".stack" / "images"  # ignored (.stack/); environments are kept here, keyed by what made them
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    text: str     # the arguments, continuation lines joined
    line: int     # where it starts in the Dockerfile

    def __str__(self) -> str:
        return f"line {self.line}: {self.keyword} {self.text}"


def read_dockerfile(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continued lines (a trailing backslash) joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also between continued lines
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if not continued:
            keyword, _, text = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), text.strip(), start))
            pending = []
    assert not pending, f"{path}: the last instruction ends with a backslash"
    return instructions


def dockerignore_patterns(dockerfile: Path) -> list[str]:
    """BuildKit reads `<Dockerfile>.dockerignore` next to the Dockerfile."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], f"{ignore}: exceptions (!) are not reproduced here"
    return [p.lstrip("/") for p in patterns]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's ignore pattern (Go's filepath.Match, plus `**` for any number of folders) as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(relative: str, patterns: Sequence[str]) -> bool:
    """Whether the build context leaves out `relative` (a path in the repository): it or a folder above it matches."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(_pattern_regex(p).fullmatch(c) for p in patterns for c in candidates)


def expand(text: str, env: Mapping[str, str]) -> str:
    """$NAME and ${NAME} from `env` (what Docker does in ENV, WORKDIR, COPY); unknown names become ''."""
    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))",
                  lambda m: env.get(m[1] or m[2], ""), text)


@dataclass
class NativeImage:
    """An image's files and environment on this machine: `paths` maps each of the image's folders to a native one."""

    dockerfile: Path
    paths: dict[str, Path]
    env: dict[str, str]  # the image's environment: its base image's, then its ENV lines, paths made native
    base_env: dict[str, str] = field(default_factory=dict)  # the base image's alone (a service that runs it as is)
    base: str = ""
    workdir: Path | None = None
    user: str = "root"
    cmd: str = ""
    steps: list[str] = field(default_factory=list)  # what each RUN became, for failure messages

    def native(self, text: str) -> str:
        """`text` with every image path replaced by its native folder (in one pass, the longest image path first)."""
        if not self.paths:
            return text
        alternatives = "|".join(re.escape(p) for p in sorted(self.paths, key=len, reverse=True))
        return re.sub(rf"(?<![\w.-])({alternatives})(?![\w.-])", lambda m: str(self.paths[m[1]]), text)

    def path(self, image_path: str) -> Path:
        assert any(image_path == p or image_path.startswith(f"{p}/") for p in self.paths), \
            f"{image_path}: no native folder stands for it"
        return Path(self.native(image_path))

    def environment(self, service_env: Mapping[str, str] = (), **native_only: str) -> dict[str, str]:
        """What a container of this image sees: the image's environment, the service's (compose `environment`, made
        native) and `native_only` (what only this machine needs, e.g. SPARK_LOCAL_IP)."""
        env = dict(self.env)
        env.update({key: self.native(value) for key, value in dict(service_env).items()})
        env.update(native_only)
        return env

    def which(self, program: str, env: Mapping[str, str] | None = None) -> str:
        """`program` as the image's PATH finds it."""
        found = shutil.which(program, path=(env or self.env)["PATH"])
        assert found, f"{program} is not on the image's PATH: {(env or self.env)['PATH']}"
        return found


RunHandler = Callable[[NativeImage, Instruction], str | None]
"""Reproduces one RUN step; returns what was done (for the record), or None to run the step's own command."""


def build(dockerfile: Path, *, paths: Mapping[str, Path], base_env: Mapping[str, str],
          steps: Sequence[tuple[str, RunHandler]], context: Path = ROOT) -> NativeImage:
    """Replay `dockerfile` natively. `steps`: (regex, handler) for RUN lines; the first whose regex is found in a RUN
    line handles it (a handler returning None has the line run as written, made native). A RUN line none matches
    fails the build, so that every step of the image is accounted for."""
    image = NativeImage(dockerfile, dict(paths), dict(base_env), dict(base_env))
    patterns = dockerignore_patterns(dockerfile)
    for instruction in read_dockerfile(dockerfile):
        keyword, text = instruction.keyword, instruction.text
        if keyword == "FROM":
            image.base = text.split()[0]
        elif keyword == "WORKDIR":
            image.workdir = image.path(text)
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "USER":
            image.user = text
        elif keyword == "ENV":
            for key, value in _env_pairs(text):
                image.env[key] = expand(image.native(value), image.env)  # the env is native already
        elif keyword == "COPY":
            _copy(image, instruction, context, patterns)
        elif keyword == "RUN":
            handler = next((h for regex, h in steps if re.search(regex, text)), None)
            assert handler is not None, (f"{dockerfile.name} {instruction}: a RUN step tests/images does not know how "
                                         "to reproduce; describe it in the image's test")
            done = handler(image, instruction)
            image.steps.append(done if done is not None else run_step(image, instruction))
        elif keyword in ("CMD", "ENTRYPOINT"):
            image.cmd = text
        else:
            raise AssertionError(f"{dockerfile.name} {instruction}: not reproduced by tests/images")
    return image


def _env_pairs(text: str) -> list[tuple[str, str]]:
    words = shlex.split(text, posix=True)
    if words and "=" not in words[0]:  # the legacy form: ENV NAME value with spaces
        return [(words[0], " ".join(words[1:]))]
    return [tuple(word.split("=", 1)) for word in words]  # type: ignore[misc]


def _copy(image: NativeImage, instruction: Instruction, context: Path, patterns: Sequence[str]) -> None:
    words = [w for w in shlex.split(instruction.text) if not w.startswith("--")]
    assert len(words) >= 2, f"{image.dockerfile.name} {instruction}"
    *sources, destination = words
    assert image.workdir is not None or destination.startswith("/"), f"{instruction}: COPY before WORKDIR"
    target = image.path(destination) if destination.startswith("/") else image.workdir / destination
    into_folder = destination.endswith("/") or len(sources) > 1
    for source in sources:
        origin = context / source
        assert origin.exists(), f"{image.dockerfile.name} {instruction}: {source} is not in the repository"
        assert not ignored(source, patterns), f"{instruction}: {source} is left out by the .dockerignore"
        if origin.is_dir():
            _copy_tree(origin, target / origin.name if into_folder else target, context, patterns)
        else:
            file_target = target / origin.name if into_folder else target
            file_target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, file_target)


def _copy_tree(origin: Path, target: Path, context: Path, patterns: Sequence[str]) -> None:
    for path in sorted(origin.rglob("*")):
        relative = path.relative_to(context).as_posix()
        if ignored(relative, patterns) or not (path.is_file() or path.is_dir()):
            continue
        destination = target / path.relative_to(origin)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    target.mkdir(parents=True, exist_ok=True)


def run_step(image: NativeImage, instruction: Instruction, text: str | None = None) -> str:
    """A RUN line as written (or `text` instead), made native, through `sh -c` in the working directory with the
    image's environment so far; returns the command and the end of its output."""
    command = image.native(text if text is not None else instruction.text)
    result = subprocess.run(["sh", "-c", command], cwd=image.workdir, env=image.env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (f"{image.dockerfile.name} {instruction} failed (exit {result.returncode}) as\n"
                                    f"  {command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return f"ran: {command}\n{(result.stdout + result.stderr).strip()[-2000:]}"


# --- interpreters the images have, and the ones they do not --------------------------------------------------------

def bare_python() -> Path:
    """A Python 3.11 without any third-party package: what `python3.11` is in the job's image (Ubuntu's, from apt) and
    `python` in Superset's (python:3.11-slim). A virtual environment of this interpreter's base, without pip."""
    assert sys.version_info[:2] == (3, 11), "the images run Python 3.11: run the tests with a 3.11 interpreter"
    folder = CACHE / f"python-{sys.version_info.major}.{sys.version_info.minor}-bare"
    with _locked(folder):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
            (folder / ".built").write_text(sys.version + "\n")
    return folder / "bin" / "python"


def interpreters(folder: Path, provided: Sequence[str], missing: Sequence[str]) -> Path:
    """A folder for the front of the base image's PATH: each of `provided` is the bare Python; each of `missing` (an
    interpreter the image does not have) fails with a line saying so, so a step that relies on it fails here too."""
    folder.mkdir(parents=True, exist_ok=True)
    python = bare_python()
    scripts = {name: f'exec "{python}" "$@"' for name in provided}  # exec, not a symlink: Python would take a
    # symlink's own folder for its home and miss the environment's pyvenv.cfg, seeing the base's site-packages
    scripts.update({name: f'echo "{name}: not in this image (tests/images)" >&2; exit 127' for name in missing})
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return folder


def base_path(interpreter_folder: Path) -> str:
    """The base image's PATH, natively: the interpreters above, java, the system's folders."""
    java = shutil.which("java")
    assert java, "java is not on PATH (Spark needs it)"
    return os.pathsep.join([str(interpreter_folder), str(Path(java).resolve().parent), SYSTEM_PATH])


# --- environments built once, cached by what they are built from ---------------------------------------------------

def cached_environment(key_parts: Sequence[str | bytes], build_into: Callable[[Path], None], name: str,
                       usable: Callable[[Path], bool] = lambda folder: (folder / "bin" / "python").exists()) -> Path:
    """CACHE/<name>-<hash of key_parts>, built by `build_into(folder)` the first time (under a lock, so that sessions
    side by side build it once) and reused while nothing it was built from changes and it is `usable` (its Python
    still runs). A build that did not finish is thrown away. Folders of older keys are removed (an environment is
    hundreds of MB)."""
    digest = hashlib.sha256()
    for part in key_parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    folder = CACHE / f"{name}-{digest.hexdigest()[:16]}"
    with _locked(folder):
        if not (folder / ".built").exists() or not usable(folder):
            shutil.rmtree(folder, ignore_errors=True)
            build_into(folder)
            (folder / ".built").write_text("\n".join(p if isinstance(p, str) else p.decode() for p in key_parts))
        for old in CACHE.glob(f"{name}-*"):
            if old.is_dir() and old != folder and not old.name.endswith(".lock"):
                with _locked(old, wait=False) as free:
                    if free:
                        shutil.rmtree(old, ignore_errors=True)
    return folder


@contextmanager
def _locked(folder: Path, wait: bool = True) -> Iterator[bool]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def spark_home(pyspark_home: Path) -> Path:
    """What the apache/spark image has at /opt/spark, from the installed pyspark (the same Spark distribution at the
    same version: bin/, jars/, python/lib/pyspark.zip and py4j, which spark-submit puts on the driver's and the
    executors' path), with the image's empty conf/: none of bin/install's spark-defaults.conf or spark-env.sh."""
    folder = CACHE / f"spark-home-{hashlib.sha256(str(pyspark_home.resolve()).encode()).hexdigest()[:12]}"
    with _locked(folder):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for part in ("bin", "jars", "python", "sbin"):
                (folder / part).symlink_to(pyspark_home / part)
            (folder / "conf").mkdir()
            (folder / ".built").write_text(str(pyspark_home) + "\n")
    assert (folder / "python" / "lib" / "pyspark.zip").is_file(), f"{pyspark_home} has no python/lib/pyspark.zip"
    return folder


# --- docker-compose.yml -------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose_value(text: str, variables: Mapping[str, str]) -> str:
    """What compose substitutes in `text` with `variables` set (the user's .env): ${X:-default}, ${X:?error}, ${X}."""
    def replace(match: re.Match[str]) -> str:
        name, operator, word = match.groups()
        value = variables.get(name)
        if operator in (":-", "-"):
            return value if value else word
        assert value or operator is None, f"${{{name}}} is required ({word}) and the test did not set it"
        return value or ""
    return _VARIABLE.sub(replace, text).replace("$$", "$")


def compose_command(service: Mapping, variables: Mapping[str, str]) -> list[str]:
    command = service["command"]
    parts = shlex.split(command) if isinstance(command, str) else command
    return [compose_value(str(part), variables) for part in parts]


def compose_environment(service: Mapping, variables: Mapping[str, str]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: compose_value(str(value), variables) for key, value in env.items()}


def network(text: str, addresses: Mapping[str, str]) -> str:
    """`text` with the compose network's names (service host names, container ports, 0.0.0.0) replaced by this
    machine's: `addresses` maps e.g. "kafka:19092" -> "127.0.0.1:40123", "spark-master" -> "127.0.0.1". Longest first,
    whole names only."""
    for name in sorted(addresses, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\d)", addresses[name], text)
    return text
