"""One Superset per test session, provisioned by `superset/provision` exactly as a user runs it, on a free port with
its own data directory and secrets, reading a database of the session's MongoDB that holds known aggregates.

Superset runs from superset/.venv (installed by the provisioning if missing); the tests talk to it over HTTP only.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stack import free_port
from stack.browser import (
    BROWSER_WIDTH,
    CHART_STATES_JS,
    DASHBOARD_PATH,
    RENDER_TIMEOUT_S,
    Browser,
    WebDriverError,
    all_settled,
    log_in,
)
from stack.superset_api import SupersetApi

from superset_aggregates import KnownAggregates, build, utcnow

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "superset" / "provision"
SCREENSHOTS = ROOT / ".stack" / "screenshots"
CHART_COUNT = len(list((ROOT / "superset" / "bundle" / "charts").glob("*.yaml")))
PROVISION_TIMEOUT_S = 900  # a first run installs Superset (~2 min) and initialises its metadata DB (~40 s)


@dataclass
class SupersetUnderTest:
    url: str
    username: str
    password: str
    data_dir: Path
    aggregates: KnownAggregates
    database: Any  # the pymongo Database the dashboard reads

    def login(self) -> SupersetApi:
        return SupersetApi.logged_in(self.url, self.username, self.password)


@pytest.fixture(scope="session")
def superset(mongo_server, mongo_client, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupersetUnderTest]:
    """A running Superset whose dashboard reads a fresh database of known aggregates.

    It is first provisioned against another (empty) database, then stopped and started against the one with the
    aggregates, as a user re-points it: every start must re-apply the bundle and its connection URI, so the data
    tests fail if a restart kept the old connection.
    """
    data_dir = tmp_path_factory.mktemp("superset")
    database = f"superset_{uuid.uuid4().hex[:8]}"
    aggregates = build(utcnow())
    for name, documents in aggregates.collections().items():
        mongo_client[database][name].insert_many(documents)

    password = secrets.token_urlsafe(12)
    env = {"SUPERSET_SECRET_KEY": secrets.token_urlsafe(32), "SUPERSET_ADMIN_PASSWORD": password}
    port = free_port()
    flags = ["--data-dir", str(data_dir), "--port", str(port), "--secrets-file", str(data_dir / "secrets.env"),
             "--mongo-uri", mongo_server.uri]
    try:
        provision(["up", *flags, "--database", f"{database}_empty"], env)
        provision(["stop", *flags], env)
        provision(["start", *flags, "--database", database], env)
        yield SupersetUnderTest(f"http://127.0.0.1:{port}", "admin", password, data_dir, aggregates,
                                mongo_client[database])
    finally:
        provision(["stop", *flags], env)
        mongo_client.drop_database(database)


def provision(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, str(PROVISION), *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=PROVISION_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"superset/provision {args[0]} failed (exit {result.returncode}):\n{result.stdout[-4000:]}",
                    pytrace=False)


@pytest.fixture(scope="session")
def open_dashboard(superset, tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """A context manager: a logged-in headless Chromium showing the dashboard (with the URL query `query`, if any),
    every chart settled (drawn, empty or failed). On failure a screenshot goes to .stack/screenshots/."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        missing = "chromium/chromedriver not installed (superset/provision install does it as root)"
        if os.environ.get("CI"):  # on CI a browser test that cannot run is a failure, never a silent skip
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)

    @contextlib.contextmanager
    def opened(label: str, query: str = "") -> Iterator[Browser]:
        profile = tmp_path_factory.mktemp(f"chromium-{label}") / "profile"
        profile.mkdir()
        with Browser(profile, BROWSER_WIDTH, 1200) as browser:
            try:
                log_in(browser, superset.url, superset.username, superset.password,
                       then=DASHBOARD_PATH + (f"?{query}" if query else ""))
                browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, f"all {CHART_COUNT} charts to render",
                                 until=all_settled(CHART_COUNT))
            except (AssertionError, WebDriverError):
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                (SCREENSHOTS / f"dashboard-{label}-failed.png").write_bytes(browser.screenshot())
                raise
            yield browser

    return opened
