"""A minimal W3C WebDriver client over urllib for Debian's chromedriver + headless Chromium, and how to read a
Superset dashboard page with it (each chart's state, logging in).

Enough to log in, wait for the dashboard and take a screenshot, without adding Selenium to the job's environment. The
Superset browser tests (tests/superset) and the dashboard benchmark (bench/dashboard.py) both drive Chromium with it.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stack.process import free_port
from stack.superset_api import DASHBOARD

# Headless Chromium as root in a container without a GPU or /dev/shm to speak of, quiet on the network; a fresh
# profile per session.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1")


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One chromedriver process and one browser session; use as a context manager."""

    def __init__(self, profile_dir: Path, width: int = 1600, height: int = 1200,
                 chromium: str | None = None, chromedriver: str | None = None) -> None:
        self.chromium = chromium or shutil.which("chromium") or "/usr/bin/chromium"
        self.chromedriver = chromedriver or shutil.which("chromedriver") or "/usr/bin/chromedriver"
        self.profile_dir = profile_dir
        self.size = (width, height)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.session: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Browser:
        log = open(self.profile_dir.parent / "chromedriver.log", "ab")
        self._proc = subprocess.Popen([self.chromedriver, f"--port={self.port}"], stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                if self._call("GET", "/status")["value"].get("ready"):
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.1)
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}", f"--window-size={self.size[0]},{self.size[1]}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "pageLoadStrategy": "normal",
                                                 "goog:chromeOptions": {"binary": self.chromium, "args": args},
                                                 "goog:loggingPrefs": {"performance": "ALL"}}}}
        self.session = self._call("POST", "/session", caps)["value"]["sessionId"]
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.session:
                self._call("DELETE", f"/session/{self.session}")
        except (urllib.error.URLError, OSError, WebDriverError):
            pass
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    # --- commands -------------------------------------------------------------------------------------------------

    def get(self, url: str) -> None:
        self._session_call("POST", "/url", {"url": url})

    def run_js(self, script: str, *args: Any) -> Any:
        return self._session_call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        value = self._session_call("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(value.values()))

    def type_into(self, css: str, text: str) -> None:
        self._session_call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def clear(self, css: str) -> None:
        self._session_call("POST", f"/element/{self.find(css)}/clear", {})

    def click(self, css: str) -> None:
        self._session_call("POST", f"/element/{self.find(css)}/click", {})

    def set_window_size(self, width: int, height: int) -> None:
        self._session_call("POST", "/window/rect", {"width": width, "height": height})

    def point_at(self, css: str, x: int, y: int) -> None:
        """Move the mouse to (x, y) pixels from the centre of the element `css` selects (hovering it, as a user
        reading a chart's tooltip does)."""
        move = {"type": "pointerMove", "duration": 0, "x": x, "y": y,
                "origin": {"element-6066-11e4-a52e-4f735466cecf": self.find(css)}}
        self._session_call("POST", "/actions", {"actions": [
            {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [move]}]})

    def screenshot(self) -> bytes:
        return base64.b64decode(self._session_call("GET", "/screenshot"))

    def posted(self, url_part: str) -> list[dict]:
        """JSON bodies the page POSTed to URLs containing `url_part` since the last call (Chrome's network log)."""
        bodies = []
        for entry in self._session_call("POST", "/se/log", {"type": "performance"}):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            request = message["params"]["request"]
            if request.get("method") == "POST" and url_part in request["url"] and request.get("postData"):
                bodies.append(json.loads(request["postData"]))
        return bodies

    def wait_for(self, script: str, timeout: float, what: str,
                 until: Callable[[Any], bool] = bool, interval: float = 0.25) -> Any:
        """Poll a JS snippet until `until(value)` holds and return the value; fail with the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.run_js(script)
            except WebDriverError as exc:  # e.g. the page is navigating and has no script context yet
                value = exc
            else:
                if until(value):
                    return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last state: {value!r}")
            time.sleep(interval)

    def wait_until_still(self, timeout: float, interval: float = 0.5) -> bytes:
        """Screenshots until two in a row are identical (animations done); returns that PNG."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            current = base64.b64decode(self._session_call("GET", "/screenshot"))
            if current == previous:
                return current
            if time.monotonic() >= deadline:
                raise AssertionError(f"the page kept changing for {timeout:g} s")
            previous = current
            time.sleep(interval)

    # --- transport ------------------------------------------------------------------------------------------------

    def _session_call(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)["value"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["value"].get("message", detail)
            except (ValueError, AttributeError, KeyError):
                pass
            raise WebDriverError(f"{method} {path}: {exc.code} {str(detail)[:500]}") from None


# --- a Superset dashboard page -------------------------------------------------------------------------------------

BROWSER_WIDTH = 1600
RENDER_TIMEOUT_S = 180  # a deadline for a dashboard's charts to settle, not a wait: ~15 s when the machine is quiet
DASHBOARD_PATH = f"/superset/dashboard/{DASHBOARD}/"

# Each chart holder's state: an error alert, still loading, no data (a big number's "No data", other charts' "No
# results were returned"), or drawn (canvas, table or big number).
CHART_STATES_JS = """
return Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(holder => {
  const slice = holder.querySelector('[data-test-chart-name]');
  const error = holder.querySelector('[role=alert], .ant-alert-error');
  const text = holder.innerText || '';
  const bigNumber = holder.querySelector('.header-line');
  let state = 'empty';
  if (error) state = 'error';
  else if (holder.querySelector('[data-test=loading-indicator], .loading')) state = 'loading';
  else if (text.includes('No results') || (bigNumber && bigNumber.innerText.trim() === 'No data')) state = 'no data';
  else if (holder.querySelector('canvas, table, .header-line')) state = 'drawn';
  return {name: slice ? slice.getAttribute('data-test-chart-name') : '?', state: state,
          error: error ? error.innerText.slice(0, 300) : null, text: text.slice(0, 300)};
});
"""


def fit_window_to_page(browser: Browser, attempts: int = 5) -> None:
    """Grow the window until the whole dashboard fits the viewport (the outer size includes the browser's frame)."""
    for _ in range(attempts):
        page, inner, outer = browser.run_js(
            "return [document.documentElement.scrollHeight, window.innerHeight, window.outerHeight]")
        if inner >= page:
            return
        browser.set_window_size(BROWSER_WIDTH, page + outer - inner)
    raise AssertionError(f"the window never fitted the page ({page} px high, viewport {inner} px)")


def all_settled(count: int) -> Callable[[list[dict]], bool]:
    """A condition on CHART_STATES_JS's value: `count` charts, each drawn, failed or without data."""
    return lambda states: len(states) == count and all(s["state"] in ("drawn", "error", "no data") for s in states)


# The page's own view of its session: Superset's API answers 200 for a logged-in user, 401 otherwise.
SESSION_STATUS_JS = """
const request = new XMLHttpRequest();
request.open('GET', '/api/v1/me/', false);
request.send();
return request.status;
"""


def log_in(browser: Browser, url: str, username: str, password: str, *, then: str, timeout: float = 120,
           attempts: int = 3) -> None:
    """The login form, as a user fills it in, going straight on to the page `then` (a path), with a session that
    the page's API requests carry.

    Seen under load, and retried as a user would, up to `attempts` times: a form still showing 30 s after submitting
    (typed into before the page's script had settled, it submitted empty) is cleared, filled in and submitted again;
    a page reached without a session (Superset sends it back to the login form) is logged in again.
    """
    path = then.split("?")[0]
    where = (f"return location.pathname === {json.dumps(path)} ? 'in' : "
             "(document.querySelector('[data-test=username-input]') ? 'form' : 'loading')")
    login_page = f"{url}/login/?next={urllib.parse.quote(then, safe='/?=&')}"
    browser.get(login_page)
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        if browser.wait_for(where, timeout, "the login form", until=lambda state: state != "loading") != "in":
            for field, text in (("username", username), ("password", password)):
                browser.clear(f"[data-test={field}-input]")
                browser.type_into(f"[data-test={field}-input]", text)
            browser.click("[data-test=login-button]")
            try:
                browser.wait_for(where, timeout if last else 30, f"{then} after logging in",
                                 until=lambda state: state == "in")
            except AssertionError:
                if last:
                    raise
                continue
        status = browser.run_js(SESSION_STATUS_JS)
        if status == 200:
            return
        if last:
            raise AssertionError(f"reached {then} after logging in, without a session (GET /api/v1/me/: {status})")
        browser.get(login_page)
