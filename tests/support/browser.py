"""A real browser for the tests of Havel's local pages: Debian's Chromium driven by playwright-core.

``tests/support/browser_runner.mjs`` runs under Node with the npm packages of ``tools/npm`` (playwright-core
pointed at ``/usr/bin/chromium`` by its path, since Playwright's own browser download is impossible on a
closed network, and axe-core). This module starts it and sends it one command at a time::

    with Browser.start() as b:          # pytest.skip()s when Node, Chromium or the npm packages are missing
        b.goto(url)
        b.click("#start")
        b.wait_for("#done")
        assert all(r["url"].startswith(url) for r in b.requests())   # nothing left the machine
        assert b.serious_violations() == []                           # axe-core, serious or critical
        b.screenshot(path)

Every request the page makes is recorded (:meth:`Browser.requests`), as are console errors, uncaught page
errors and Content-Security-Policy violations (:meth:`Browser.problems`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("browser_runner.mjs")
NPM_DIR = REPO / "tools" / "npm"
CHROMIUM = os.environ.get("HAVEL_CHROMIUM", "/usr/bin/chromium")


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (tools/bootstrap.d/browser.sh installs Debian's chromium as root)"
    for pkg in ("playwright-core", "axe-core"):
        if not (NPM_DIR / "node_modules" / pkg).is_dir():
            return f"the npm package {pkg} is missing (tools/bootstrap.sh runs npm install in tools/npm)"
    return None


class BrowserError(AssertionError):
    """A command the browser could not carry out (a selector that never appeared, a timeout...)."""


class Browser:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next = 1
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        first = self._answers.get(timeout=60)
        if first is None or not first.get("ok"):
            self.proc.kill()
            raise BrowserError("the browser did not start: " + "".join(self._stderr)[-2000:])

    @classmethod
    def start(cls) -> Browser:
        why = missing()
        if why is not None:
            pytest.skip(why)
        env = {**os.environ, "HAVEL_NPM_DIR": str(NPM_DIR), "HAVEL_CHROMIUM": CHROMIUM}
        proc = subprocess.Popen(
            ["node", str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        return cls(proc)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._answers.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr.append(line)
        self._answers.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def call(self, op: str, timeout: float = 60.0, **args: Any) -> Any:
        """Run one command; BrowserError when it fails. ``timeout`` bounds the wait for the answer."""
        assert self.proc.stdin is not None
        ident = self._next
        self._next += 1
        self.proc.stdin.write(json.dumps({"id": ident, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            ans = self._answers.get(timeout=timeout)
        except queue.Empty as exc:
            raise BrowserError(f"{op} got no answer in {timeout} s") from exc
        if ans is None:
            raise BrowserError("the browser process ended: " + "".join(self._stderr)[-2000:])
        if ans.get("id") != ident:
            raise BrowserError(f"answer out of order: {ans}")
        if not ans.get("ok"):
            raise BrowserError(f"{op} {args}: {ans.get('error')}")
        return ans.get("result")

    # the commands, with generous timeouts: CI machines are slow and shared
    def goto(self, url: str) -> str:
        return str(self.call("goto", url=url))

    def click(self, selector: str) -> None:
        self.call("click", selector=selector)

    def fill(self, selector: str, value: str) -> None:
        self.call("fill", selector=selector, value=value)

    def check(self, selector: str) -> None:
        self.call("check", selector=selector)

    def press(self, key: str, selector: str | None = None) -> None:
        self.call("press", key=key, selector=selector)

    def focus(self, selector: str) -> None:
        self.call("focus", selector=selector)

    def wait_for(self, selector: str, state: str = "visible", timeout: float = 60.0) -> None:
        self.call("waitFor", timeout=timeout + 10, selector=selector, state=state, ms=int(timeout * 1000))

    def wait_until(self, expression: str, timeout: float = 60.0) -> None:
        """Poll a JavaScript expression in the page until it is true."""
        self.call("waitForFunction", timeout=timeout + 10, expression=expression, ms=int(timeout * 1000))

    def text(self, selector: str) -> str:
        return str(self.call("text", selector=selector) or "")

    def count(self, selector: str) -> int:
        return int(self.call("count", selector=selector))

    def evaluate(self, expression: str) -> Any:
        return self.call("evaluate", expression=expression)

    def screenshot(self, path: Path, *, full_page: bool = True, selector: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", path=str(path), fullPage=full_page, selector=selector)

    def viewport(self, width: int, height: int) -> None:
        self.call("viewport", width=width, height=height)

    def media(self, media: str) -> None:
        """Render as for "print" or "screen"."""
        self.call("media", media=media)

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's violations on the page as it is now (WCAG 2.1 A/AA and best practice)."""
        return list(self.call("axe", timeout=120))

    def serious_violations(self) -> list[dict[str, Any]]:
        return [v for v in self.axe() if v.get("impact") in ("serious", "critical")]

    def requests(self, clear: bool = False) -> list[dict[str, str]]:
        """Every request the page made since the start (or the last clear): url, method, type."""
        return list(self.call("requests", clear=clear))

    def problems(self, clear: bool = False) -> list[str]:
        """Console errors, uncaught errors and CSP violations seen so far."""
        return list(self.call("problems", clear=clear))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError, BrokenPipeError, OSError):
                self.call("close", timeout=20)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
