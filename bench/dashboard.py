"""How fast the Superset dashboard answers when MongoDB holds one hour, one day and one month of the job's output.

    .venv/bin/python -m bench.dashboard [--sizes hour,day,month] [--runs 5] [--page-runs 3]
                                        [--month-users 1000000] [--out .stack/bench/dashboard.json]

For each size it seeds a database of its own MongoDB-protocol server (stack.MongoServer, SecantusDB --standalone,
free port, temporary folder) with what the job writes for that span of event time at the demo's shape
(bench/dashboard_data.py: 1000 events/s, 10k users, 2k items, every type x platform; the month holds 907k
`minute_counts` documents, none yet removed by retention, and --month-users `user_stats` documents; the data run a
little past the clock, AHEAD, so that the last hour is still full when it is measured), points a Superset of its own
at it (superset/provision, free port, temporary data folder) and measures:

  charts     each chart's data query through the REST API (GET /api/v1/chart/<id>/data/?force=true, the chart's
             saved query: the filter bar's default ranges), --runs cold and --runs warm: "cold" right after the
             MongoDB server restarted (its cache and connections gone; Superset caches no chart data), "warm" the
             same query again at once. p50 and p95 of each, and the documents MongoDB returned for it (the
             `mongodb_reads` line Superset logs).
  dashboard  the whole page in headless Chromium, from submitting the login form to every chart drawn (or shown
             empty), --page-runs cold (new browser profile, MongoDB just restarted) and --page-runs warm (the same
             browser, logged out and in again).

It prints one table per size and writes everything, with the machine and the date, to --out. Targets:
every chart <= 1 s, the whole dashboard <= 3 s. On 2 cores a month takes ~6 minutes to seed and index and ~15 s
per MongoDB restart (70 of them for the cold chart runs): the whole run takes ~50 minutes, the month ~35.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.dashboard_data import Shape, seed
from bench.report import write_report
from stack import MongoServer, free_port
from stack.browser import BROWSER_WIDTH, CHART_STATES_JS, DASHBOARD_PATH, Browser, all_settled
from stack.superset_api import DASHBOARD, SupersetApi

ROOT = Path(__file__).resolve().parents[1]
PROVISION = ROOT / "superset" / "provision"
SIZES = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "month": dt.timedelta(days=30)}
# Event time written past the seeding's clock, so that the per-minute charts' last hour is still full when the size
# is measured (a month takes ~35 minutes from seeding to its last page load, mostly restarting MongoDB); windows
# ahead of the clock are outside every chart's range.
AHEAD = {"hour": dt.timedelta(minutes=10), "day": dt.timedelta(minutes=10), "month": dt.timedelta(minutes=45)}
CHART_TARGET_S = 1.0
DASHBOARD_TARGET_S = 3.0
MONGO_READ = re.compile(r"mongodb_reads:find (\w+) .*: (\d+) documents from MongoDB")
log = logging.getLogger("bench.dashboard")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 5 runs is their maximum)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, Any]:
    return {"p50_s": round(statistics.median(values), 3), "p95_s": round(percentile(values, 95), 3),
            "runs_s": [round(v, 3) for v in values]}


class Superset:
    """One Superset provisioned the way users run it, re-pointed at each size's database by stop + start."""

    def __init__(self, work: Path, mongo_uri: str) -> None:
        self.data_dir = work / "superset"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        self.env = {**os.environ, "SUPERSET_SECRET_KEY": secrets.token_urlsafe(32),
                    "SUPERSET_ADMIN_PASSWORD": self.password}
        self.workers = 2  # superset/provision's default
        self.flags = ["--data-dir", str(self.data_dir), "--port", str(self.port), "--mongo-uri", mongo_uri,
                      "--secrets-file", str(work / "superset-secrets.env"), "--workers", str(self.workers)]

    @property
    def log_file(self) -> Path:
        return self.data_dir / "superset.log"

    def provision(self, *args: str) -> None:
        result = subprocess.run([sys.executable, str(PROVISION), *args, *self.flags], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"superset/provision {args[0]} failed:\n{result.stdout[-3000:]}")

    def point_at(self, database: str) -> None:
        self.provision("stop")
        self.provision("start", "--database", database)

    def api(self) -> SupersetApi:
        return SupersetApi.logged_in(self.url, "admin", self.password, timeout=300)

    def log_size(self) -> int:
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def mongo_reads_since(self, offset: int) -> list[tuple[str, int]]:
        with open(self.log_file, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode(errors="replace")
        return [(match.group(1), int(match.group(2))) for match in MONGO_READ.finditer(text)]


def restart(mongo: MongoServer) -> None:
    with contextlib.redirect_stdout(None):
        mongo.stop()
        mongo.start(timeout=300)


def time_charts(superset: Superset, mongo: MongoServer, runs: int) -> dict[str, dict]:
    """Each chart's data query: `runs` cold (MongoDB restarted first) and `runs` warm, after one untimed round per
    gunicorn worker (a just started worker spends its first queries importing and connecting)."""
    api = superset.api()
    charts = {c["slice_name"]: c["id"] for c in api.call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]}
    for _ in range(superset.workers):
        for chart_id in charts.values():
            api.call("GET", f"/api/v1/chart/{chart_id}/data/?force=true")
    out: dict[str, dict[str, Any]] = {}
    for name, chart_id in sorted(charts.items()):
        cold: list[float] = []
        warm: list[float] = []
        reads: list[tuple[str, int]] = []
        rows = None
        for run in range(runs * 2):
            if run < runs:
                restart(mongo)
                api = superset.api()  # the login is no part of the query's time
            offset = superset.log_size()
            began = time.perf_counter()
            result = api.call("GET", f"/api/v1/chart/{chart_id}/data/?force=true")["result"][0]
            elapsed = time.perf_counter() - began
            (cold if run < runs else warm).append(elapsed)
            if result.get("status") != "success":
                raise RuntimeError(f"{name}: {result.get('error')}")
            rows = result.get("rowcount")
            reads = superset.mongo_reads_since(offset) or reads
        out[name] = {"cold": summary(cold), "warm": summary(warm), "rows": rows,
                     "mongo_reads": [{"collection": c, "documents": n} for c, n in reads]}
        log.info("%-50s cold p50 %.2f s, warm p50 %.2f s, %s", name, out[name]["cold"]["p50_s"],
                 out[name]["warm"]["p50_s"], reads)
    return out


# Where a page load's time went, in ms from submitting the login form (the page's own clock, performance.now(),
# starts when the dashboard's document does).
PHASES_JS = """
const api = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'));
const charts = api.filter(e => e.name.includes('/api/v1/chart/data'));
return {dashboard_document: performance.timeOrigin - arguments[0],
        first_chart_request: Math.min(...charts.map(e => e.startTime)),
        last_chart_response: Math.max(...charts.map(e => e.responseEnd)),
        api_requests: api.length, chart_data_requests: charts.length};
"""


def time_dashboard(superset: Superset, mongo: MongoServer, work: Path, runs: int) -> dict[str, Any]:
    """The page from submitting the login form to every chart settled: `runs` cold, `runs` warm."""
    settled = all_settled(len(superset.api().call("GET", f"/api/v1/dashboard/{DASHBOARD}/charts")["result"]))
    cold: list[float] = []
    warm: list[float] = []
    states: list[dict] = []
    phases: list[dict] = []
    for run in range(runs):
        restart(mongo)
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
        with Browser(profile, BROWSER_WIDTH, 1200) as browser:
            for kind in ("cold", "warm"):
                if kind == "warm":
                    browser.get(f"{superset.url}/logout/")
                browser.get(f"{superset.url}/login/?next={DASHBOARD_PATH}")
                browser.wait_for("return document.querySelector('[data-test=username-input]') !== null", 120,
                                 "the login form", interval=0.05)
                browser.type_into("[data-test=username-input]", "admin")
                browser.type_into("[data-test=password-input]", superset.password)
                began, clicked_ms = time.perf_counter(), time.time() * 1000
                browser.click("[data-test=login-button]")
                states = browser.wait_for(CHART_STATES_JS, 180, "every chart drawn", until=settled, interval=0.05)
                (cold if kind == "cold" else warm).append(time.perf_counter() - began)
                page = browser.run_js(PHASES_JS, clicked_ms)
                offset = page.pop("dashboard_document")
                phases.append({"kind": kind, "total_ms": round((time.perf_counter() - began) * 1000),
                               "dashboard_document_ms": round(offset),
                               **{key: round(value + offset) if key.endswith(("request", "response")) else value
                                  for key, value in page.items()}})
        log.info("dashboard run %d: cold %.2f s, warm %.2f s", run + 1, cold[-1], warm[-1])
    return {"cold": summary(cold), "warm": summary(warm), "phases_ms": phases,
            "chart_states": {s["name"]: s["state"] for s in states}}


def print_table(size: str, documents: dict[str, int], result: dict) -> None:
    print(f"\n== {size}: {documents['minute_counts']:,} minute_counts, {documents['hourly_counts']:,} hourly, "
          f"{documents['daily_counts']:,} daily, {documents['batches']:,} batches, "
          f"{documents['user_stats']:,} user_stats documents; load average {result['load_average_before'][0]:.1f} "
          f"before, {result['load_average_after'][0]:.1f} after ({os.cpu_count()} cores)")
    print(f"{'chart':<50} {'cold p50':>8} {'p95':>6} {'warm p50':>8} {'p95':>6} {'docs read':>10}  target")
    for name, chart in result["charts"].items():
        worst = max(chart["cold"]["p95_s"], chart["warm"]["p95_s"])
        docs = sum(read["documents"] for read in chart["mongo_reads"])
        print(f"{name[:50]:<50} {chart['cold']['p50_s']:>8.2f} {chart['cold']['p95_s']:>6.2f} "
              f"{chart['warm']['p50_s']:>8.2f} {chart['warm']['p95_s']:>6.2f} {docs:>10,}  "
              f"{'ok' if worst <= CHART_TARGET_S else 'OVER'}")
    page = result["dashboard"]
    worst = max(page["cold"]["p95_s"], page["warm"]["p95_s"])
    print(f"{'whole dashboard (login to every chart drawn)':<50} {page['cold']['p50_s']:>8.2f} "
          f"{page['cold']['p95_s']:>6.2f} {page['warm']['p50_s']:>8.2f} {page['warm']['p95_s']:>6.2f} "
          f"{'':>10}  {'ok' if worst <= DASHBOARD_TARGET_S else 'OVER'}")
    for kind in ("cold", "warm"):
        runs = [p for p in page["phases_ms"] if p["kind"] == kind]
        print(f"  {kind} page, medians from the login click: dashboard document "
              f"{statistics.median(p['dashboard_document_ms'] for p in runs) / 1000:.2f} s, first chart request "
              f"{statistics.median(p['first_chart_request'] for p in runs) / 1000:.2f} s, last chart data "
              f"{statistics.median(p['last_chart_response'] for p in runs) / 1000:.2f} s, every chart drawn "
              f"{statistics.median(p['total_ms'] for p in runs) / 1000:.2f} s; "
              f"{runs[0]['api_requests']} API requests", flush=True)


def machine() -> dict[str, Any]:
    return {"host": platform.node(), "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(), "date": dt.datetime.now(dt.UTC).isoformat()}


@contextlib.contextmanager
def services(work: Path) -> Iterator[tuple[MongoServer, Superset]]:
    mongo = MongoServer(work / "mongo", port=free_port())
    mongo.start(timeout=120)
    superset = Superset(work, mongo.uri)
    try:
        yield mongo, superset
    finally:
        with contextlib.suppress(Exception):
            superset.provision("stop")
        mongo.stop()
        # The logs stay in `work`; the data (~2.6 GB after a month: SecantusDB keeps the space of dropped
        # databases) and the browser profiles go.
        shutil.rmtree(mongo.storage_path, ignore_errors=True)
        for profile in work.glob("profile-*"):
            shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="hour,day,month", help="comma-separated: hour, day, month")
    parser.add_argument("--runs", type=int, default=5, help="cold and warm runs per chart query (default 5 each)")
    parser.add_argument("--page-runs", type=int, default=3, help="cold and warm page loads (default 3 each)")
    parser.add_argument("--month-users", type=int, default=1_000_000, help="user_stats documents in the month")
    parser.add_argument("--out", type=Path, default=ROOT / ".stack" / "bench" / "dashboard.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown or args.runs < 1 or args.page_runs < 1:
        print(f"dashboard: unknown size {unknown} (hour, day, month) or runs < 1", file=sys.stderr)
        return 2

    from pymongo import MongoClient

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    report: dict[str, Any] = {"machine": machine(), "work": str(work), "targets_s": {
        "chart": CHART_TARGET_S, "dashboard": DASHBOARD_TARGET_S}, "sizes": {}}
    with services(work) as (mongo, superset):
        for size in sizes:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            shape = Shape(span=SIZES[size] + AHEAD[size], end=now + AHEAD[size],
                          user_documents=args.month_users if size == "month" else 10_000)
            database = f"dashboard_{size}"
            with MongoClient(mongo.uri, document_class=dict) as client:
                documents = seed(client[database], shape)
            superset.point_at(database)
            result = {"documents": documents, "seeded_until": shape.end.isoformat() + "Z",
                      "load_average_before": os.getloadavg()}
            result["charts"] = time_charts(superset, mongo, args.runs)
            result["dashboard"] = time_dashboard(superset, mongo, work, args.page_runs)
            result["load_average_after"] = os.getloadavg()
            report["sizes"][size] = result
            print_table(size, documents, result)
            with MongoClient(mongo.uri, document_class=dict) as client:
                client.drop_database(database)  # the next size's seeding gets the disk and cache
    print()
    write_report(args.out, **report)
    print(f"logs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
