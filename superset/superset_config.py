"""Superset's configuration for this project (read by Superset through SUPERSET_CONFIG_PATH).

`superset/provision` sets the environment this file reads; nothing here is a committed secret:
  SUPERSET_DATA_DIR     folder for the SQLite metadata DB (default <repo>/.stack/superset)
  SUPERSET_SECRET_KEY   Flask secret; otherwise read from the git-ignored secrets file
  SUPERSET_SECRETS_FILE that file (default <repo>/superset/.secrets.env, written by provision on first run)
"""
from __future__ import annotations

import logging
import os
import sqlite3
import sys
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

_HERE = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("SUPERSET_DATA_DIR", _HERE.parent / ".stack" / "superset")).resolve()
SECRETS_FILE = Path(os.environ.get("SUPERSET_SECRETS_FILE", _HERE / ".secrets.env"))


def _secret(name: str) -> str:
    """From the environment first, then the KEY=VALUE secrets file; never a default."""
    if os.environ.get(name):
        return os.environ[name]
    if SECRETS_FILE.exists():
        for line in SECRETS_FILE.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == name:
                return value.strip()
    raise RuntimeError(f"{name} is not set and not in {SECRETS_FILE}: run superset/provision")


SECRET_KEY = _secret("SUPERSET_SECRET_KEY")
SQLALCHEMY_DATABASE_URI = f"sqlite:///{DATA_DIR / 'superset.db'}?check_same_thread=false"


@event.listens_for(Engine, "connect")
def _metadata_db_without_fsync_per_commit(dbapi_connection: object, _record: object) -> None:
    """WAL journal, synced at checkpoints: Superset logs every request to its metadata DB, six commits for one chart
    query (measured: 38 ms of its 180 ms), and the dashboard sends ~30 requests on opening and 14 every 10 s. Its
    contents are re-imported from the bundle on every start, so a crash losing the last commits loses nothing."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list")]
        if str(DATA_DIR / "superset.db") in files:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def FLASK_APP_MUTATOR(app: object) -> None:  # noqa: N802 (Superset's name)
    """A log beacon sent without a session must not set one. The login page sends one as it unloads, in parallel
    with the login form; Superset answers it "Access is Denied" with a new anonymous session cookie, and when that
    answer comes after the login's, the browser keeps it: the user lands on the login page again (seen once in ~20
    logins with 2 gunicorn workers, which answer the two requests at the same time)."""
    from flask import request, session
    from flask_login import current_user

    @app.after_request  # type: ignore[attr-defined]
    def _log_beacons_leave_the_session_alone(response: object) -> object:
        if request.path.startswith("/superset/log/") and not current_user.is_authenticated:
            session.modified = False
        return response


# Chart data is never cached: the dashboard refreshes every 10 s and must show the job's latest writes.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# Login rate limits kept in memory (per gunicorn worker); says so instead of warning at every start.
RATELIMIT_STORAGE_URI = "memory://"
# Relative time ranges end now, not at midnight: "Last day" is the last 24 hours of a live stream.
DEFAULT_RELATIVE_START_TIME = "now"
DEFAULT_RELATIVE_END_TIME = "now"
SUPERSET_WEBSERVER_TIMEOUT = 120  # = gunicorn --timeout in superset/provision
# The bundle's virtual datasets carry a chart's time range into their MongoDB `find` through Jinja (`from_dttm`,
# `to_dttm`): without it every chart would read its whole collection (docs/dashboard.md).
FEATURE_FLAGS = {"ENABLE_TEMPLATE_PROCESSING": True}

# pymongosql logs "Successfully connected to MongoDB at <host>" at INFO, where <host> is the whole URI with its
# password: superset.log (and a container's output) must not carry it. Its warnings and errors still show.
logging.getLogger("pymongosql").setLevel(logging.WARNING)

# Chart queries through pymongosql: empty results show "No data", plans kept per thread, one log line per MongoDB read.
sys.path.insert(0, str(_HERE))
import mongodb_reads  # noqa: E402

mongodb_reads.install()
