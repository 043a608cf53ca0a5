"""A page in a real browser for tests: headless Chromium driven over the DevTools protocol on a pipe (no
package beyond the standard library; `make test` installs Debian's chromium).

    seen = open_page(path)   # seen.errors, seen.requests, seen.images, seen.screenshot (PNG bytes)
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

WIDTH, HEIGHT = 412, 900  # a phone's viewport in CSS pixels


@dataclass
class Seen:
    errors: list[str]  # uncaught exceptions, console.error calls and error log entries (failed loads included)
    requests: list[str]  # every URL the page asked for beyond itself and data: URIs
    images: list[bool]  # each <img>: whether it was decoded (natural width > 0)
    screenshot: bytes  # the whole page at the phone's width, PNG


def chromium() -> str:
    """The browser; in CI (where make test installs it) a missing one fails the test, elsewhere skips it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: make test installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (make test installs it)")
    return found


def open_page(path: Path, timeout: float = 60) -> Seen:
    """Load the file at path in headless Chromium at a phone's width, wait for its load event, and report what
    the page did."""
    with _Chromium(timeout) as browser:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.call(f"{domain}.enable", session)
        metrics = {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": True}
        browser.call("Emulation.setDeviceMetricsOverride", session, **metrics)
        url = path.resolve().as_uri()
        browser.call("Page.navigate", session, url=url)
        browser.wait_for("Page.loadEventFired")
        decoded = "Array.from(document.images).map(i => i.naturalWidth > 0)"
        images = browser.call("Runtime.evaluate", session, expression=decoded, returnByValue=True)["result"]["value"]
        shot = browser.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)["data"]
        errors, requests = [], []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(f"console.{params['type']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
            elif method == "Network.requestWillBeSent":
                asked = params["request"]["url"]
                if asked != url and not asked.startswith("data:"):
                    requests.append(asked)
        return Seen(errors, requests, images, base64.b64decode(shot))


class _Chromium:
    """Chromium with --remote-debugging-pipe: commands in on its fd 3, answers and events out on its fd 4, each a
    JSON message ended by a NUL byte."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.events, self.buffer, self.last = timeout, [], b"", 0
        ours_in, theirs_out = os.pipe()
        theirs_in, ours_out = os.pipe()

        def on_fds_3_and_4() -> None:  # in the child: its ends of the pipes where Chromium looks for them
            a, b = os.dup(theirs_in), os.dup(theirs_out)
            os.dup2(a, 3)
            os.dup2(b, 4)

        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        command += ["--remote-debugging-pipe", "about:blank"]
        self.process = subprocess.Popen(
            command, preexec_fn=on_fds_3_and_4, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(theirs_in)
        os.close(theirs_out)
        self.send_fd, self.receive_fd = ours_out, ours_in

    def __enter__(self) -> _Chromium:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.call("Browser.close")
            self.process.wait(timeout=10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self.send_fd)
            os.close(self.receive_fd)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send a command and wait for its answer (events that come first are kept in self.events)."""
        self.last += 1
        message = {"id": self.last, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self.send_fd, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self.last:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str) -> dict:
        """The first event of that name (already seen, or the next to come)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.receive_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.receive_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)
