"""Screenshots of the whole dashboard as a running pipeline leaves MongoDB after one minute, one hour and one month
(what the job writes at the demo's shape, seeded by bench/dashboard_data.py: no Spark needed), for looking at every
chart in each; the month's also replaces docs/dashboard.png, the one the README shows.

    .venv/bin/python tests/superset/dashboard_screenshots.py [--ages minute,hour,month] [--docs]

It starts its own MongoDB-protocol server and Superset (free ports, a temporary folder), seeds one age after the
other into the database the dashboard reads, and writes .stack/screenshots/dashboard-<age>.png. The month takes
~6 minutes to seed on 2 cores (907k `minute_counts` documents), the minute and the hour seconds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.dashboard_data import Shape, seed  # noqa: E402 (after the path)
from stack import MongoServer, free_port  # noqa: E402
from stack.browser import (  # noqa: E402
    BROWSER_WIDTH,
    CHART_STATES_JS,
    DASHBOARD_PATH,
    RENDER_TIMEOUT_S,
    Browser,
    all_settled,
    fit_window_to_page,
    log_in,
)

SCREENSHOTS = ROOT / ".stack" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
PROVISION = ROOT / "superset" / "provision"
CHART_COUNT = len(list((ROOT / "superset" / "bundle" / "charts").glob("*.yaml")))
AGES = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "month": dt.timedelta(days=30)}
DATABASE = "dashboard_screenshots"
log = logging.getLogger("dashboard_screenshots")


def screenshot(url: str, password: str, profile: Path) -> bytes:
    """The whole dashboard, logged in, every chart settled, the window as high as the page, animations done."""
    profile.mkdir(parents=True)
    with Browser(profile, BROWSER_WIDTH, 1200) as browser:
        log_in(browser, url, "admin", password, then=DASHBOARD_PATH)
        browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "every chart", until=all_settled(CHART_COUNT))
        fit_window_to_page(browser)
        states = browser.wait_for(CHART_STATES_JS, RENDER_TIMEOUT_S, "every chart at full height",
                                  until=all_settled(CHART_COUNT))
        not_drawn = [(state["name"], state["state"]) for state in states if state["state"] != "drawn"]
        if not_drawn:
            log.warning("charts not drawn: %s", not_drawn)
        return browser.wait_until_still(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ages", default=",".join(AGES), help="comma-separated, of: " + ", ".join(AGES))
    parser.add_argument("--docs", action="store_true", help="also replace docs/dashboard.png with the month's")
    args = parser.parse_args(argv)
    ages = [age.strip() for age in args.ages.split(",") if age.strip()]
    if unknown := set(ages) - set(AGES):
        parser.error(f"unknown ages: {sorted(unknown)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from pymongo import MongoClient

    work = Path(tempfile.mkdtemp(prefix="dashboard-screenshots-"))
    mongo = MongoServer(work / "mongo", port=free_port())
    password = secrets.token_urlsafe(12)
    env = {**os.environ, "SUPERSET_SECRET_KEY": secrets.token_urlsafe(32), "SUPERSET_ADMIN_PASSWORD": password}
    port = free_port()
    flags = ["--data-dir", str(work / "superset"), "--port", str(port), "--secrets-file", str(work / "secrets.env")]
    try:
        mongo.start(timeout=180)
        subprocess.run([sys.executable, str(PROVISION), "up", *flags, "--mongo-uri", mongo.uri, "--database",
                        DATABASE], env=env, check=True, timeout=900)
        client = MongoClient(mongo.uri)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for age in ages:
            began = time.monotonic()
            seed(client[DATABASE], Shape(span=AGES[age], end=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                                         user_documents=10_000))
            png = screenshot(f"http://127.0.0.1:{port}", password, work / f"chromium-{age}" / "profile")
            path = SCREENSHOTS / f"dashboard-{age}.png"
            path.write_bytes(png)
            log.info("%s: %s (%.0f s)", age, path.relative_to(ROOT), time.monotonic() - began)
            if age == "month" and args.docs:
                DOCS_SCREENSHOT.write_bytes(png)
                log.info("month: also %s", DOCS_SCREENSHOT.relative_to(ROOT))
        client.close()
    finally:
        subprocess.run([sys.executable, str(PROVISION), "stop", *flags], env=env, timeout=120)
        mongo.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
