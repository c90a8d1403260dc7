"""A tiny W3C WebDriver client for headless Chromium: chromedriver + urllib, no dependency.

Only what the browser tests need: open a page, find elements, click, type, press keys,
read text and attributes, run a script, take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
KEYS = {"ArrowLeft": "\ue012", "ArrowRight": "\ue014", "Home": "\ue011", "End": "\ue010",
        "Enter": "\ue007", "Tab": "\ue004"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1200,900"]


class WebDriverError(RuntimeError):
    """The driver answered with an error."""


def find_browser() -> tuple[str | None, str | None]:
    """Paths of the chromium binary and chromedriver, or None where missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Element:
    """A found element of the current page."""

    def __init__(self, driver: Browser, element_id: str) -> None:
        self.driver, self.id = driver, element_id

    def _path(self, suffix: str) -> str:
        return f"/element/{self.id}/{suffix}"

    def click(self) -> None:
        self.driver.command("POST", self._path("click"), {})

    def send_keys(self, text: str) -> None:
        self.driver.command("POST", self._path("value"), {"text": text})

    def clear(self) -> None:
        self.driver.command("POST", self._path("clear"), {})

    @property
    def text(self) -> str:
        return self.driver.command("GET", self._path("text"))

    def attribute(self, name: str) -> str | None:
        return self.driver.command("GET", self._path(f"attribute/{name}"))

    def is_displayed(self) -> bool:
        return bool(self.driver.command("GET", self._path("displayed")))


class Browser:
    """One chromedriver process and one headless Chromium session."""

    def __init__(self, browser_binary: str, driver_binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
        self.port = _free_port()
        self.process = subprocess.Popen([driver_binary, f"--port={self.port}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = ""
        try:
            self._wait_ready()
            options = {"binary": browser_binary,
                       "args": [*CHROMIUM_ARGS, f"--user-data-dir={self.profile}"]}
            answer = self._request("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})
            self.session = answer["sessionId"]
        except Exception:
            self.quit()
            raise

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/status").get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.1)
        raise WebDriverError(f"chromedriver did not start on port {self.port}")

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            payload = json.loads(error.read() or b"{}")
            raise WebDriverError(f"{method} {path}: {payload.get('value', payload)}") from None
        return payload.get("value", payload)

    def command(self, method: str, path: str, body: dict | None = None) -> Any:
        """A session command, e.g. command('GET', '/title')."""
        return self._request(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    def find(self, css: str) -> Element:
        found = self.command("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, found[ELEMENT_KEY])

    def find_all(self, css: str) -> list[Element]:
        found = self.command("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, item[ELEMENT_KEY]) for item in found]

    def execute(self, script: str, *args: Any) -> Any:
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def execute_async(self, script: str, *args: Any) -> Any:
        """Run a script whose last argument is a callback to call with the result."""
        return self.command("POST", "/execute/async", {"script": script, "args": list(args)})

    def press(self, key: str) -> None:
        """Press and release one key (a name from KEYS) on whatever has focus."""
        value = KEYS.get(key, key)
        actions = [{"type": "key", "id": "keyboard",
                    "actions": [{"type": "keyDown", "value": value},
                                {"type": "keyUp", "value": value}]}]
        self.command("POST", "/actions", {"actions": actions})

    def active_element_id(self) -> str:
        return self.command("GET", "/element/active")[ELEMENT_KEY]

    def screenshot(self, path: Path) -> Path:
        Path(path).write_bytes(base64.b64decode(self.command("GET", "/screenshot")))
        return Path(path)

    def wait_for(self, script: str, timeout: float = 5.0) -> Any:
        """Poll a script until it returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.execute(script)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def quit(self) -> None:
        """End the session and the driver; remove the temporary profile."""
        if self.session:
            try:
                self._request("DELETE", f"/session/{self.session}")
            except (OSError, WebDriverError):
                pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def running_browser() -> Iterator[Browser]:
    """A headless Chromium for one test or fixture: skipped where it is not installed, a
    failure when CI is set (browser tests must run in CI), always quit afterwards."""
    import pytest

    chromium, chromedriver = find_browser()
    if not (chromium and chromedriver):
        missing = "chromium" if not chromium else "chromedriver"
        reason = f"{missing} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}: browser tests must run in CI")
        pytest.skip(reason)
    driver = Browser(chromium, chromedriver)
    try:
        yield driver
    finally:
        driver.quit()
