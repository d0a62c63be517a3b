"""
The browser of the browser tests: Debian's Chromium (`apt-get install chromium
chromium-driver`, which `make setup` does as root), driven by Playwright.

We never run `playwright install`: it downloads browsers of its own. Playwright
starts the system's Chromium instead (its `executable_path`), headless, and with
the background traffic of a desktop browser (updates, safe browsing, metrics,
sync) turned off, so that a test talks to 127.0.0.1 and nothing else.
"""
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

INSTALL_HINT = ("apt-get install chromium chromium-driver (as root; `make setup` does it), "
                "and pip install -e '.[dev]' -c constraints.txt for Playwright")
# Looked for in this order; $CHROMIUM names another build (a path or a command).
EXECUTABLES = ("chromium", "chromium-browser")
# A browser that only loads what the test asks for. Chromium's own list of these switches:
# https://github.com/GoogleChrome/chrome-launcher/blob/main/docs/chrome-flags-for-tools.md
QUIET_SWITCHES = [
    "--disable-background-networking",   # no update, component or variations downloads
    "--disable-component-update",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--metrics-recording-only",          # record nothing, send nothing
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
]


VIEWPORT = {"width": 1400, "height": 1000}
LOCAL_SCHEMES = {"file", "data", "blob", "about"}   # a page the test wrote, and what a page makes itself
# What Chromium logs for each request we refuse (page.blocked has them all).
BLOCKED_CONSOLE = "Failed to load resource: net::ERR_BLOCKED_BY_CLIENT"


def find_executable():
    """The path of the system's Chromium, or None when it is not installed."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for found in map(shutil.which, EXECUTABLES) if found), None)


def launch_switches():
    """Chromium's command-line switches: quiet, and without its sandbox when we are root
    (Chromium refuses to start as root with it; the pages it loads are our own)."""
    switches = list(QUIET_SWITCHES)
    if os.geteuid() == 0:
        switches.append("--no-sandbox")
    return switches


def launch(playwright, executable):
    """Start Chromium headless with Playwright; returns Playwright's Browser."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=launch_switches())


def new_page(browser, viewport=VIEWPORT):
    """
    A page in a fresh browser context (no cookies of another test) that loads nothing but
    127.0.0.1 and local files: any other request is refused, so a test never depends on the network.

    The page records what went wrong, for the test to check:
    - page.errors: JavaScript errors the page raised, and errors it logged to the console
    - page.blocked: the URLs of the requests refused (a CDN's script, say)
    Close it with page.context.close().
    """
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.errors, page.blocked = [], []

    def local_only(route):
        url = urlsplit(route.request.url)
        if url.scheme in LOCAL_SCHEMES or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            page.blocked.append(route.request.url)
            route.abort("blockedbyclient")
    context.route("**/*", local_only)
    page.on("pageerror", lambda error: page.errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: message.type == "error" and not message.text.startswith(BLOCKED_CONSOLE)
            and page.errors.append(f"console: {message.text}"))
    return page


def distinct_colors(png_path):
    """How many distinct RGB colours a screenshot has (capped at 4097)."""
    with Image.open(png_path) as image:
        colors = image.convert("RGB").getcolors(maxcolors=4096)
    return 4097 if colors is None else len(colors)   # None: more than maxcolors


def check_not_blank(png_path, at_least=16):
    """Raise AssertionError unless the screenshot shows something: a blank or one-colour page
    has a handful of colours, a page with text (anti-aliased) or a plot has hundreds."""
    count = distinct_colors(png_path)
    assert count >= at_least, f"{png_path} looks blank: {count} distinct colours (expected {at_least} or more)"
    return png_path
