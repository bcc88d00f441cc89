"""Superset's configuration for this project (read by Superset through SUPERSET_CONFIG_PATH).

`superset/provision` sets the environment this file reads; nothing here is a committed secret:
  SUPERSET_DATA_DIR     folder for the SQLite metadata DB (default <repo>/.stack/superset)
  SUPERSET_SECRET_KEY   Flask secret; otherwise read from the git-ignored secrets file
  SUPERSET_SECRETS_FILE that file (default <repo>/superset/.secrets.env, written by provision on first run)
"""
from __future__ import annotations

import os
from pathlib import Path

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

# Chart data is never cached: the dashboard refreshes every 10 s and must show the job's latest writes.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# Login rate limits kept in memory (one worker); says so instead of warning at every start.
RATELIMIT_STORAGE_URI = "memory://"
# Relative time ranges end now, not at midnight: "Last day" is the last 24 hours of a live stream.
DEFAULT_RELATIVE_START_TIME = "now"
DEFAULT_RELATIVE_END_TIME = "now"
SUPERSET_WEBSERVER_TIMEOUT = 120  # = gunicorn --timeout in superset/provision
