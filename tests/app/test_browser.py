"""End-to-end: ``meteolens app`` in a real browser (Debian chromium driven by Playwright).

The server is started once per module on 127.0.0.1 with a free port, on the small test store,
and every page is loaded by URL (deep links with query parameters, as a shared view would be).
Each test checks a key element, that no exception box is shown, and saves a screenshot to the
test's temporary folder. Skipped, with the reason, where chromium or playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(app_store, tmp_path_factory):
    """``meteolens app`` on the test store; yields the base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ, METEOLENS_DATA=str(app_store.data_root))
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "app",
        "--store",
        str(app_store.store_root),
        "--port",
        str(port),
        "--no-demo",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None:
                pytest.fail(f"meteolens app exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"meteolens app did not answer on {url}: {log.read_text()[-2000:]}")
        yield url
    finally:
        # The server runs in its own session: end the whole group, so nothing outlives the tests.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _load(browser, url: str, expect: str, shot: Path, timeout_ms: int = 90_000) -> str:
    """Open ``url``, wait for the text ``expect`` and for the script to finish; screenshot; return the page text."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.get_by_text(expect, exact=False).first.wait_for(timeout=timeout_ms)
        # The status widget ("Running…") disappears when the script run is over.
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
        page.screenshot(path=str(shot), timeout=timeout_ms)
        assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]
        return page.inner_text("body")
    finally:
        page.close()


PAGES = [
    ("", "Recent runs"),
    ("maps?src=dataset%3Amch-2015-05-15&var=precip_rate&step=20&proj=Data+grid", "Precipitation rate (mm h⁻¹)"),
    ("maps?src=run%3Atest-regional-msl&var=msl&proj=LambertConformal", "contours every 4 hPa"),
    ("stations?station=ellboegen&svar=t2m&start=2016-04-01&end=2016-04-20", "2 m temperature at Ellboegen"),
    ("nowcast?run=test-persistence", "Quality assessment"),
    ("verification?kind=nowcast&metric=csi", "CSI scorecard"),
    ("run", "Runs"),
    ("cases", "South Foehn in the Wipp valley"),
]


@pytest.mark.parametrize(("path", "expect"), PAGES, ids=[p[0].split("?")[0] or "home" for p in PAGES])
def test_page_in_browser(server, browser, tmp_path, path, expect):
    text = _load(browser, f"{server}/{path}", expect, tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 10_000
    # The app's own navigation is shown (not Streamlit's page-folder fallback).
    assert "Nowcast & quality" in text and "Case studies" in text


def test_a_case_opens_its_page_with_its_settings(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/cases")
        page.get_by_text("Open on the stations page").first.click()
        page.get_by_text("2 m temperature at Ellboegen", exact=False).or_(
            page.get_by_text("Wind speed at Ellboegen", exact=False)
        ).first.wait_for(timeout=90_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
        page.screenshot(path=str(tmp_path / "case.png"))
        # The case's settings are the page's state, in the URL: the view can be shared.
        assert "station=ellboegen" in page.url and "start=2016-04-01" in page.url
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()


def test_drawing_a_rectangle_zooms_the_map(server, browser, tmp_path):
    """A box drawn on the map becomes the extent (in the URL) and is re-rendered at full detail."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/maps?src=dataset%3Amch-2015-05-15&var=precip_rate&step=20&proj=Data+grid")
        page.get_by_text("Precipitation rate (mm h", exact=False).first.wait_for(timeout=90_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
        area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0 = area["x"] + 0.4 * area["width"], area["y"] + 0.35 * area["height"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 100, y0 + 60, steps=6)
        page.mouse.move(x0 + 200, y0 + 120, steps=6)
        page.mouse.up()
        page.wait_for_url("**box=**", timeout=90_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
        page.screenshot(path=str(tmp_path / "zoomed.png"))
        west, east, south, north = (
            float(v) for v in page.url.split("box=")[1].split("&")[0].replace("%2C", ",").split(",")
        )
        # Inside the Swiss composite (2.7-12.5 E, 43.6-49.5 N), and smaller than it.
        assert 2.7 < west < east < 12.5 and 43.6 < south < north < 49.5
        assert east - west < 6
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()
