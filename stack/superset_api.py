"""Superset's REST API as a script or another service uses it: log in for a JWT, then JSON in and JSON out.

The Superset tests (tests/superset) and the dashboard benchmark (bench/dashboard.py) both talk to the Superset they
provisioned through it; urllib only, so neither needs Superset's own environment.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

DASHBOARD = "user-interactions"  # the bundle's dashboard (superset/bundle), by slug
ERROR_DETAIL_CHARS = 1500  # of an error answer's body, in the exception's message


class SupersetApiError(RuntimeError):
    """Superset answered with an HTTP error: the method, path, status and the start of the body."""


class SupersetApi:
    """Superset's REST API with a JWT (no cookies, no CSRF token: the API takes the bearer token alone)."""

    def __init__(self, url: str, timeout: float = 120) -> None:
        self.url = url
        self.timeout = timeout
        self.token: str | None = None

    @classmethod
    def logged_in(cls, url: str, username: str, password: str, timeout: float = 120) -> SupersetApi:
        """A client holding the access token of a database-authenticated user."""
        api = cls(url, timeout)
        api.log_in(username, password)
        return api

    def log_in(self, username: str, password: str) -> None:
        self.token = self.call("POST", "/api/v1/security/login", {"username": username, "password": password,
                                                                  "provider": "db", "refresh": False})["access_token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer to `method path` with `body` as JSON, if any."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:ERROR_DETAIL_CHARS]
            raise SupersetApiError(f"{method} {path} -> {exc.code}: {detail}") from None
