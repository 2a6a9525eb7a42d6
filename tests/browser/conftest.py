"""A real Chromium (Debian's, never a downloaded one) driven by Playwright against the API
served on 127.0.0.1 with the offline sample model.

Every page records console errors and failed requests; a test fails if any screen logged
one. Screenshots of the main screens go to ``$AUTEUR_TEST_ARTIFACTS`` (default
``.test-artifacts/``). ``accessibility`` scans a screen with axe-core, the copy that the pinned
``axe-playwright-python`` wheel ships (the ``test`` extra), injected into the page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_FILE_PATH
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from api.settings import Settings
from tests.api.conftest import serve

CHROMIUM = os.environ.get("AUTEUR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-sync",
    "--no-first-run",
]
# Stages are drafted and rendered for real (offline model, draft renderer): give them time.
expect.set_options(timeout=60_000)
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(os.environ.get("AUTEUR_TEST_ARTIFACTS", ".test-artifacts")) / "screenshots"


@pytest.fixture(scope="module")
def web_settings(database_url: str) -> Settings:
    """The browser tests' server settings: keyless (everyone is the local user, as the CLI
    is), offline, with a data folder of its own that a CLI process can share."""
    return Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="auteur-web-")),
        database_url=database_url,
        openai_api_key=None,
        api_keys={},
    )


@pytest.fixture(scope="module")
def web_url(web_settings: Settings) -> Iterator[str]:
    """The API (and the web client at ``/``) as a local single user with the offline model."""
    with serve(web_settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module: Playwright's sync API holds an event loop of its own while
    it runs, which asyncio tests after it must not find still open."""
    if not shutil.which(CHROMIUM):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's (apt-get install chromium), "
            "or point AUTEUR_CHROMIUM at one. Browser tests never download a browser."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ConsoleProblems(list[str]):
    """Console errors and warnings, uncaught exceptions and failed requests of one page."""

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.append(f"uncaught: {error}"))
        page.on("requestfailed", self._failed)

    def forgive(self, failure: str) -> list[str]:
        """Take out the failed requests a test caused on purpose (a server made unreachable);
        answers them, so that the test can check there were some."""
        taken = [problem for problem in self if failure in problem]
        self[:] = [problem for problem in self if failure not in problem]
        return taken

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.append(f"{message.type}: {message.text} ({message.location.get('url')})")

    def _failed(self, request: Any) -> None:
        # Streams cut off by a reload or navigation are the client's own doing, not an error.
        if request.failure != "net::ERR_ABORTED":
            self.append(f"request failed: {request.url} {request.failure}")


@pytest.fixture
def console() -> ConsoleProblems:
    return ConsoleProblems()


@pytest.fixture
def page(browser: Browser, web_url: str, console: ConsoleProblems) -> Iterator[Page]:
    """A fresh 1280 by 800 page; the test fails if any screen logged a console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=web_url)
    page = context.new_page()
    page.set_default_timeout(60_000)
    console.watch(page)
    yield page
    context.close()
    assert console == [], "console errors:\n" + "\n".join(console)


def screenshot(page: Page, name: str) -> None:
    """Save a screenshot of the current screen as a test artifact.

    JPEG: Chromium captures and encodes a whole page in about 60% of a PNG's time.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.jpg", full_page=True, type="jpeg", quality=80)


def phone(page: Page) -> None:
    """Make the page a phone's: 390 by 844 CSS pixels."""
    page.set_viewport_size(PHONE)


def accessibility(page: Page, name: str) -> None:
    """Fail on any critical or serious axe-core violation on the screen as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE_FILE_PATH)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    grave = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(map(str, node["target"])) for node in v["nodes"][:5])
        for v in results["violations"]
        if v["impact"] in ("critical", "serious")
    ]
    assert not grave, f"axe-core on {name}:\n" + "\n".join(grave)
