"""Headless Chromium (Debian's `chromium`) driven by Playwright's Python API, for the browser
tests of the site and the listening test. Never downloads a browser (`playwright install` does
not work offline): it uses /usr/bin/chromium, which scripts/setup.sh installs as root."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections are refused here.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A Playwright Browser for one test module (module scope: one Playwright at a time)."""
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip("chromium not installed (run scripts/setup.sh as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")),
            args=FLAGS,
            headless=True,
        )
        try:
            yield browser
        finally:
            browser.close()
