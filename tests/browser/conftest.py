"""
Fixtures of the browser tests: the system's Chromium driven by Playwright
(chromium.py), a fresh page per test, and screenshots under build/browser/.

Without Chromium or Playwright these tests are skipped with a message saying
what to install; in CI (the environment variable CI set) they fail instead,
as the data and jail tests do: CI must never pass by skipping them.
"""
import os
import re

import pytest

from chromium import INSTALL, check_not_blank, find_executable, launch, new_page
from grader.release import REPO_ROOT

SCREENSHOTS = REPO_ROOT / "build" / "browser"   # git-ignored, like all of build/


def _missing(what):
    message = f"The browser tests need {what}: {INSTALL[what]}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    """Playwright's Browser: the system's Chromium, headless, started once per test process."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright")
    executable = find_executable()
    if executable is None:
        _missing("Chromium")
    with sync_playwright() as playwright:
        chromium = launch(playwright, executable)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context that loads only 127.0.0.1; `page.errors` lists its JavaScript
    errors and `page.blocked` the requests it made elsewhere (see chromium.new_page)."""
    page = new_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def screenshot(request):
    """
    screenshot(target, name) saves a PNG of a page or of one element (a Playwright Locator)
    as build/browser/<test>/<name>.png, checks that it is not blank, and returns its path.
    """
    folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):   # a run's pictures only, never a stale one from an earlier run
        old.unlink()

    def shoot(target, name, **options):
        path = folder / f"{name}.png"
        target.screenshot(path=str(path), **options)
        return check_not_blank(path)

    return shoot
