"""
The browser of the browser tests: Debian's Chromium (`apt-get install chromium
chromium-driver`, which `make setup` does as root), driven by Playwright.

We never run `playwright install`: it downloads browsers of its own. Playwright
starts the system's Chromium instead (its `executable_path`), headless, with the
background traffic of a desktop browser (updates, safe browsing, metrics, sync)
turned off, and with no way out: every request but those to 127.0.0.1 goes to a
proxy that refuses it, so a test never depends on the network and never uses it.
"""
import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

# What to install, for the message of a skipped test.
INSTALL = {"Chromium": "as root, apt-get install chromium chromium-driver (`make setup` does it)",
           "Playwright": "pip install -e '.[dev]' -c constraints.txt (never `playwright install`: we use the "
                         "system's Chromium)"}
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
# Chromium's error for a request the dead proxy refused (see launch); the console logs one per request.
REFUSED = "net::ERR_PROXY_CONNECTION_FAILED"


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
    """
    Start Chromium headless with Playwright; returns Playwright's Browser.

    Its proxy is a port of 127.0.0.1 that we hold but never listen on: connecting to it is
    refused at once. 127.0.0.1 and localhost bypass it (named: Playwright sends loopback through
    a proxy unless told), so our servers are reached and everything else fails, DNS included
    (the proxy would resolve names). This is done in the browser, not with page.route: a route's handler
    runs in this Python process, only while it is inside a Playwright call, so a request
    would wait for as long as the test sleeps.
    """
    dead_end = socket.socket()
    dead_end.bind(("127.0.0.1", 0))   # bound, never listening: connections are refused
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=launch_switches(),
                                         proxy={"server": f"http://127.0.0.1:{dead_end.getsockname()[1]}",
                                                "bypass": "127.0.0.1,localhost"})
    browser.dead_end = dead_end   # held open while the browser runs
    return browser


def is_local(url):
    """Whether a URL is one of ours: a server on 127.0.0.1, a file the test wrote, or what a page makes."""
    parts = urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost")


def new_page(browser, viewport=VIEWPORT):
    """
    A page in a fresh browser context (no cookies of another test).

    The page records what went wrong, for the test to check:
    - page.errors: JavaScript errors the page raised, and errors it logged to the console
      (but the "Failed to load resource" of a refused request, which page.blocked has)
    - page.blocked: the URLs it asked for outside 127.0.0.1 (a CDN's script, say), all refused
    Close it with page.context.close().
    """
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.errors, page.blocked = [], []
    page.on("requestfailed", lambda request: is_local(request.url) or page.blocked.append(request.url))
    page.on("pageerror", lambda error: page.errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: message.type == "error" and REFUSED not in message.text
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
