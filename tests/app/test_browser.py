"""End-to-end: ``meteolens app`` in a real browser (Debian chromium driven by Playwright).

The server is started once per module on 127.0.0.1 with a free port, on a copy of the small
test store (the job launched here must not change the store other tests read), and every page is
loaded by URL (deep links with query parameters, as a shared view would be). Beyond loading every
page, the tests drive the app as a user does: the lead-time slider moved with the keyboard, a
nowcast launched from the Run page and followed to the end, a case study opened, a zoom drawn.

Each test checks a key element and that no exception box is shown, and saves screenshots to a
folder that outlives the run: ``$METEOLENS_TEST_ARTIFACTS`` when set, else
``test-artifacts/screenshots`` in the repository (its location is printed). Skipped, with the
reason, where chromium or playwright is missing.
"""

from __future__ import annotations

import os
import re
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
REPO = Path(__file__).resolve().parents[2]
#: The MeteoSwiss radar frames of 2015-05-15, relative to the sample-data folder (as a user types them).
MCH = "pysteps-data/radar/mch/20150515"
#: Long waits: the first render of a page imports and reads on a shared 2-core machine.
WAIT_MS = 90_000
#: The script run is over when Streamlit's status widget ("Running…") is gone.
IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
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
def shots(request: pytest.FixtureRequest) -> Path:
    """The screenshot folder (kept after the run); its location is printed at the start and the end."""
    folder = Path(os.environ.get("METEOLENS_TEST_ARTIFACTS") or REPO / "test-artifacts" / "screenshots").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(text: str) -> None:
        # Past pytest's output capture, so the location shows even when the tests pass.
        if capture is None:
            print(text)
            return
        with capture.global_and_fixture_disabled():
            print(f"\n{text}")

    say(f"browser screenshots: {folder}")
    yield folder
    say(f"browser screenshots: {len(list(folder.glob('*.png')))} PNG files in {folder}")


@pytest.fixture(scope="module")
def server(app_store, tmp_path_factory):
    """``meteolens app`` on a copy of the test store; yields the base URL."""
    port = _free_port()
    work = tmp_path_factory.mktemp("server")
    log = work / "server.log"
    store = shutil.copytree(app_store.store_root, work / "store")
    env = dict(os.environ, METEOLENS_DATA=str(app_store.data_root))
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "app",
        "--store",
        str(store),
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


def _ready(page, timeout_ms: int = WAIT_MS) -> None:
    """Wait until the script run is over, then check that no exception box is shown."""
    page.wait_for_function(IDLE, timeout=timeout_ms)
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")[:2000]


def _load(browser, url: str, expect: str, shot: Path, timeout_ms: int = WAIT_MS) -> str:
    """Open ``url``, wait for the text ``expect`` and for the script to finish; screenshot; return the page text."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.get_by_text(expect, exact=False).first.wait_for(timeout=timeout_ms)
        _ready(page, timeout_ms)
        page.screenshot(path=str(shot), timeout=timeout_ms)
        return page.inner_text("body")
    finally:
        page.close()


def _heatmaps(page, timeout_ms: int = WAIT_MS) -> list[str]:
    """The images plotly drew for the map's heatmaps (PNG data URLs): they change when the field does.

    Plotly draws the figure after the script run is over, so this waits for the images first.
    """
    images = page.locator(".js-plotly-plot .heatmaplayer image")
    images.first.wait_for(state="attached", timeout=timeout_ms)
    return images.evaluate_all(
        "els => els.map(e => e.getAttributeNS('http://www.w3.org/1999/xlink', 'href') || e.getAttribute('href'))"
    )


def _query(url: str, key: str) -> str | None:
    found = re.search(rf"[?&]{key}=([^&]*)", url)
    return found.group(1) if found else None


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
def test_page_in_browser(server, browser, shots, path, expect):
    name = re.sub(r"[^A-Za-z0-9]+", "-", path.split("?")[0]) or "home"
    shot = shots / f"page-{name}-{PAGES.index((path, expect))}.png"
    text = _load(browser, f"{server}/{path}", expect, shot)
    assert shot.stat().st_size > 10_000
    # The app's own navigation is shown (not Streamlit's page-folder fallback).
    assert "Nowcast & quality" in text and "Case studies" in text


def test_a_case_opens_its_page_with_its_settings(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/cases")
        page.get_by_text("South Foehn in the Wipp valley").first.wait_for(timeout=WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "case-list.png"))
        page.get_by_text("Open on the stations page").first.click()
        page.get_by_text("2 m temperature at Ellboegen", exact=False).or_(
            page.get_by_text("Wind speed at Ellboegen", exact=False)
        ).first.wait_for(timeout=WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "case-opened.png"))
        # The case's settings are the page's state, in the URL: the view can be shared.
        assert "station=ellboegen" in page.url and "start=2016-04-01" in page.url
    finally:
        page.close()


def test_drawing_a_rectangle_zooms_the_map(server, browser, shots):
    """A box drawn on the map becomes the extent (in the URL) and is re-rendered at full detail."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/maps?src=dataset%3Amch-2015-05-15&var=precip_rate&step=20&proj=Data+grid")
        page.get_by_text("Precipitation rate (mm h", exact=False).first.wait_for(timeout=WAIT_MS)
        _ready(page)
        area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        x0, y0 = area["x"] + 0.4 * area["width"], area["y"] + 0.35 * area["height"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 100, y0 + 60, steps=6)
        page.mouse.move(x0 + 200, y0 + 120, steps=6)
        page.mouse.up()
        page.wait_for_url("**box=**", timeout=WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "maps-zoomed.png"))
        west, east, south, north = (
            float(v) for v in page.url.split("box=")[1].split("&")[0].replace("%2C", ",").split(",")
        )
        # Inside the Swiss composite (2.7-12.5 E, 43.6-49.5 N), and smaller than it.
        assert 2.7 < west < east < 12.5 and 43.6 < south < north < 49.5
        assert east - west < 6
    finally:
        page.close()


def test_lead_time_slider_moves_with_the_keyboard(server, browser, shots):
    """The time-step slider, moved with the arrow keys, changes the URL's ``step`` and the drawn field."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server}/maps?src=dataset%3Amch-2015-05-15&var=precip_rate&step=20&proj=Data+grid")
        page.get_by_text("2015-05-15 17:25 UTC", exact=False).first.wait_for(timeout=WAIT_MS)
        _ready(page)
        before = _heatmaps(page)
        assert before, "the map is drawn as a heatmap image"
        page.screenshot(path=str(shots / "maps-slider-step20.png"))
        # The slider's keyboard handle: a range input labelled with the widget's label.
        slider = page.locator("input[type=range][aria-label='Time step']")
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_url(re.compile(r"[?&]step=21(&|$)"), timeout=WAIT_MS)
        # 5-minute frames from 15:45: step 21 is 17:30, named in the slider and the map's title.
        page.locator(".js-plotly-plot .gtitle", has_text="17:30 UTC").wait_for(timeout=WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "maps-slider-step21.png"))
        assert _query(page.url, "step") == "21"
        after = _heatmaps(page)
        assert after and after != before, "the field drawn for the new step differs"
        # And back: ArrowLeft returns to step 20 and its image.
        slider.focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(r"[?&]step=20(&|$)"), timeout=WAIT_MS)
        page.locator(".js-plotly-plot .gtitle", has_text="17:25 UTC").wait_for(timeout=WAIT_MS)
        _ready(page)
        assert _heatmaps(page) == before
    finally:
        page.close()


def test_a_nowcast_launched_from_the_run_page_succeeds(server, browser, shots):
    """An extrapolation nowcast of four MeteoSwiss frames, 3 lead steps: progress, success, the runs table."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        page.goto(f"{server}/run?job=nowcast")
        page.get_by_text("Runs", exact=True).first.wait_for(timeout=WAIT_MS)
        _ready(page)
        # Relative paths are read from the sample-data folder; [01] picks 16:00 to 16:15.
        page.get_by_label("inputs", exact=True).fill(f"{MCH}/AQC1513516[01]*.gif")
        page.get_by_label("method", exact=True).fill("extrapolation")
        page.get_by_label("lead steps", exact=True).fill("3")
        page.get_by_label("domain", exact=True).fill("browser-test")
        page.screenshot(path=str(shots / "run-form.png"))
        page.locator("[data-testid='stFormSubmitButton'] button").click()
        done = page.get_by_text(re.compile(r"Run nowcast-\S+ succeeded in"))
        failed = page.get_by_text(re.compile(r"The nowcast job (failed|was not started)"))
        done.or_(failed).first.wait_for(timeout=3 * WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "run-done.png"))
        assert failed.count() == 0, page.inner_text("body")[:2000]
        run_id = re.search(r"Run (nowcast-\S+) succeeded", done.first.inner_text()).group(1)
        # The progress log reached the end, and the runs table lists the run as succeeded.
        assert "100.0 %" in page.locator("[data-testid='stCode']").first.inner_text()
        # st.dataframe paints on a canvas; its accessible grid (hidden cells) carries the text.
        table = page.locator("[data-testid='stDataFrame']").first
        row = table.locator("tr[role='row']", has=page.locator("td", has_text=run_id)).first
        row.wait_for(state="attached", timeout=WAIT_MS)
        cells = row.locator("td").all_text_contents()
        assert "succeeded" in cells and "browser-test" in cells, cells
        # The app scrolls inside its own container (a full-page shot would miss the table).
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "run-table.png"))
        # The run opens on the map.
        page.get_by_text("Open it on the map").click()
        page.wait_for_url(re.compile(rf"src=run%3A{re.escape(run_id)}"), timeout=WAIT_MS)
        page.get_by_text("Precipitation rate (mm h", exact=False).first.wait_for(timeout=WAIT_MS)
        _ready(page)
        page.screenshot(path=str(shots / "run-on-the-map.png"))
    finally:
        page.close()
