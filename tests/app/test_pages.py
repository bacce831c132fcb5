"""AppTest runs of every page against the small real store (see conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from engine.config import REPO_ROOT

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
TIMEOUT = 120


def run_page(page: str, **params: str) -> AppTest:
    """Run the app on ``page`` with URL query ``params``; fail on any exception."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def selectbox(at: AppTest, label: str):  # noqa: ANN201 (streamlit's element type)
    matches = [s for s in at.selectbox if s.label == label]
    assert matches, f"no selectbox {label!r}; have {[s.label for s in at.selectbox]}"
    return matches[0]


def test_home(app_env):
    at = run_page("pages/home.py")
    assert at.title[0].value == "meteolens"
    runs, succeeded = (int(m.value) for m in at.metric[:2])
    assert runs >= 3 and succeeded >= 3
    assert not at.error


def test_maps_restores_the_view_from_the_url(app_env):
    at = run_page(
        "pages/maps.py",
        src="dataset:mch-2015-05-15",
        var="precip_rate",
        step="20",
        proj="Orthographic",
        box="6,10,45.5,48",
    )
    assert selectbox(at, "Run or dataset").value == "dataset:mch-2015-05-15"
    assert selectbox(at, "Projection").value == "Orthographic"
    assert at.select_slider[0].value == 20
    assert at.text_input[0].value == "6,10,45.5,48"
    assert not at.error
    # The widgets write their state back: the URL still describes the view.
    assert at.query_params["proj"] == "Orthographic"
    assert at.query_params["step"] == "20"


def test_maps_run_difference_against_analysis(app_env):
    at = run_page(
        "pages/maps.py", src="run:test-regional-msl", var="msl", cmp="dataset:blizzard-1996", proj="LambertConformal"
    )
    assert selectbox(at, "Difference against").value == "dataset:blizzard-1996"
    assert not at.error, [e.value for e in at.error]


def test_maps_bad_extent_is_a_message_not_a_traceback(app_env):
    at = run_page("pages/maps.py", src="dataset:era5-ensemble-2017-01", var="z500", box="10,5,40")
    assert at.error and "extent" in at.error[0].value


def test_maps_unknown_url_values_fall_back(app_env):
    at = run_page("pages/maps.py", src="dataset:no-such-thing", proj="Nonsense", step="999")
    assert selectbox(at, "Projection").value in ("PlateCarree", "Data grid")
    assert not at.error


def test_stations_foehn_and_wind(app_env):
    at = run_page("pages/stations.py", station="ellboegen", svar="wind_speed", start="2016-04-01", end="2016-04-20")
    assert selectbox(at, "Station").value == "ellboegen"
    assert selectbox(at, "Variable").value == "wind_speed"
    assert [t.label for t in at.tabs] == ["Time series", "Wind rose", "Foehn", "Scores"]
    foehn_hours = [m for m in at.metric if m.label.startswith("Hours with Foehn")]
    # 3-5 and 16-17 April 2016 are Foehn days at Ellboegen.
    assert foehn_hours and int(foehn_hours[0].value) > 24
    assert not at.error


def test_stations_empty_period_is_a_message(app_env):
    at = run_page("pages/stations.py", station="ellboegen", start="2016-04-15", end="2016-04-02")
    assert at.error and "period is empty" in at.error[0].value


def test_nowcast_loops_scores_and_quality(app_env):
    at = run_page("pages/nowcast.py", run="test-persistence")
    assert selectbox(at, "Nowcast run").value == "test-persistence"
    assert selectbox(at, "Observed radar").value == "dataset:mch-2015-05-15"
    assert any("Persistence keeps the rain area" in m.value for m in at.markdown)
    assert [m.value for m in at.metric if m.label.startswith("Overall grade")] == ["3.0"]
    assert not at.error


def test_nowcast_loops_are_aligned_frame_for_frame(app_env):
    import json

    at = run_page("pages/nowcast.py", run="test-shifted", anim="1")
    observed, forecast = (json.loads(c.proto.spec) for c in at.get("plotly_chart")[:2])
    # Three lead times (5, 10, 15 min): both loops have a frame for each, at the same valid times.
    assert len(observed["frames"]) == len(forecast["frames"]) == 3
    assert "16:35 UTC" in observed["layout"]["title"]["text"]
    assert "valid 2015-05-15 16:35 UTC" in forecast["layout"]["title"]["text"]


def test_verification_scorecard(app_env):
    at = run_page("pages/verification.py", kind="nowcast", metric="fss")
    assert selectbox(at, "Metric").value == "fss"
    assert selectbox(at, "Baseline").value == "nowcast/persistence"
    # FSS has a threshold and a window: the card shows one of each, chosen in the sidebar
    threshold, window = selectbox(at, "Threshold"), selectbox(at, "Window")
    assert threshold.value is not None and window.value is not None
    assert any(s.value == "Scorecard" for s in at.subheader)
    assert not at.info
    last = len(threshold.options) - 1
    threshold.select_index(last).run()
    assert selectbox(at, "Threshold").index == last
    assert not at.exception and not at.info


def _fill_downscale(at: AppTest, source: str) -> None:
    fields = {t.label: t for t in at.text_input}
    fields["input *"].input(source)
    fields["variable *"].input("msl")
    fields["domain"].input("30, 40, -105, -95")
    fields["method"].input("bilinear")
    {n.label: n for n in at.number_input}["resolution *"].set_value(1.0)
    at.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_run_page_reports_bad_input_then_runs_a_job(app_env):
    at = run_page("pages/run.py", job="downscale")
    assert selectbox(at, "Job kind").value == "downscale"
    assert selectbox(at, "device").value == "auto"
    assert at.dataframe, "the runs table is shown"
    _fill_downscale(at, "no-such-dataset")
    assert at.error and "downscale job was not started" in at.error[0].value and "no-such-dataset" in at.error[0].value
    _fill_downscale(at, "blizzard-1996")
    assert not at.error, [e.value for e in at.error]
    assert at.success and "succeeded" in at.success[0].value
    assert any("100.0 %" in c.value for c in at.code), "the job's progress log is shown"


def test_cases_open_links(app_env):
    at = run_page("pages/cases.py")
    titles = [s.value for s in at.subheader]
    assert "South Foehn in the Wipp valley" in titles
    # one section per case file in assets/cases
    assert len(titles) == len(list((REPO_ROOT / "assets" / "cases").glob("*.toml")))
    assert not at.error


@pytest.mark.parametrize(
    "page",
    [
        "pages/home.py",
        "pages/maps.py",
        "pages/stations.py",
        "pages/nowcast.py",
        "pages/verification.py",
        "pages/run.py",
        "pages/cases.py",
    ],
)
def test_every_page_opens_on_an_empty_store(page, tmp_path, monkeypatch, app_store):
    import streamlit as st

    monkeypatch.setenv("METEOLENS_STORE", str(tmp_path / "empty"))
    monkeypatch.setenv("METEOLENS_DATA", str(app_store.data_root))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = run_page(page)
    assert not at.error, [e.value for e in at.error]
    st.cache_data.clear()
    st.cache_resource.clear()


def test_first_start_builds_the_demo_store_in_the_page(tmp_path, monkeypatch, app_store):
    import streamlit as st

    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[[stations]]\ndataset = "foehn-ellboegen"\nstation_id = "ellboegen"\nstart = "2016-04-01"\nend = "2016-04-02"\n'
    )
    # What `streamlit run app/streamlit_app.py -- ...` gives the script (see app.settings).
    args = ["--store", str(tmp_path / "fresh"), "--data", str(app_store.data_root), "--build-demo"]
    monkeypatch.setattr(sys, "argv", [APP, *args, "--demo-plan", str(plan)])
    # The environment points elsewhere: only the arguments lead to the store and the data.
    monkeypatch.setenv("METEOLENS_STORE", str(tmp_path / "not-this-store"))
    monkeypatch.setenv("METEOLENS_DATA", str(tmp_path / "no-data-here"))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()  # the home page, as on a first visit
    assert not at.exception, [e.value for e in at.exception]
    assert at.success and at.success[0].value.startswith("Demo store ready: 1 built")
    assert [m.value for m in at.metric if m.label == "Stations"] == ["1"]
    assert (tmp_path / "fresh" / "catalog.duckdb").is_file() and not (tmp_path / "not-this-store").exists()
    st.cache_data.clear()
    st.cache_resource.clear()


# ------------------------------------------------------------------ bad input in the Run form

MCH = "pysteps-data/radar/mch/20150515"


@pytest.fixture()
def own_store(app_env, tmp_path, monkeypatch):  # noqa: ANN001, ANN201 (pytest fixtures)
    """A copy of the test store, for tests that launch (or try to launch) jobs into it."""
    import shutil

    import streamlit as st

    copy = tmp_path / "store"
    shutil.copytree(app_env.store_root, copy)
    monkeypatch.setenv("METEOLENS_STORE", str(copy))
    st.cache_data.clear()
    st.cache_resource.clear()
    return copy


def _submit_nowcast(at: AppTest, inputs: str, method: str = "extrapolation", lead_steps: int = 3) -> AppTest:
    """Fill the nowcast form (CPU) and press Run; fail on any exception."""
    selectbox(at, "device").set_value("cpu")
    {t.label: t for t in at.text_input}["inputs"].input(inputs)
    {t.label: t for t in at.text_input}["method"].input(method)
    {n.label: n for n in at.number_input}["lead steps"].set_value(lead_steps)
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _n_runs(store: Path) -> int:
    from engine.storage.catalog import Catalog

    return len(Catalog(store / "catalog.duckdb").list_runs())


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ("/etc/passwd", "outside the folders this app reads"),
        ("../../../../../etc/*", "outside the folders this app reads"),
        (f"{MCH}/*/../../../../../../etc/hostname", "outside the folders this app reads"),
        (f"{MCH}/no-such-frame.gif", "no such file, folder or sample dataset"),
        (f"{MCH}/AQC1999*.gif", "glob matches no files"),
    ],
    ids=["absolute", "relative-up", "glob-up", "unknown-file", "empty-glob"],
)
def test_run_form_refuses_paths_outside_the_folders_and_unknown_files(own_store, inputs, expected):
    """What cannot be read, or must not be, is a message in the page; no job is started."""
    before = _n_runs(own_store)
    at = _submit_nowcast(run_page("pages/run.py", job="nowcast"), inputs)
    assert at.error, "a message is shown"
    assert expected in at.error[0].value and at.error[0].value.startswith("The nowcast job was not started")
    assert not at.success
    assert _n_runs(own_store) == before, "nothing was launched"


def test_run_form_refuses_a_downscale_input_outside_the_folders(own_store):
    at = run_page("pages/run.py", job="downscale")
    _fill_downscale(at, "/etc/hostname")
    assert at.error and "outside the folders this app reads" in at.error[0].value
    assert "/etc/hostname" in at.error[0].value


@pytest.mark.parametrize("lead_steps", [0, 500])
def test_run_form_out_of_range_lead_time_is_a_message(own_store, lead_steps):
    before = _n_runs(own_store)
    at = _submit_nowcast(run_page("pages/run.py", job="nowcast"), "mch-2015-05-15", lead_steps=lead_steps)
    assert at.error and f"lead steps = {lead_steps} is out of range: 1 to 72" in at.error[0].value
    assert _n_runs(own_store) == before


def test_a_failed_job_is_reported_and_the_app_stays_usable(own_store):
    """A job that fails while running: the page says why, the run is listed as failed, the next job runs."""
    at = run_page("pages/run.py", job="nowcast")
    # Extrapolation needs two frames to estimate motion: one frame passes the form, fails in the job.
    _submit_nowcast(at, f"{MCH}/AQC151351600F_00005.801.gif")
    assert at.error and "needs at least 2 frames" in at.error[0].value
    runs = at.dataframe[0].value
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and "needs at least 2 frames" in failed["error"].iloc[0]
    # Same session, same form: a valid job now succeeds and is listed.
    _submit_nowcast(at, f"{MCH}/AQC1513516[01]*.gif", method="persistence")
    assert not at.error, [e.value for e in at.error]
    assert at.success and "succeeded" in at.success[0].value
    runs = at.dataframe[0].value
    assert sorted(runs.loc[runs["model"].str.startswith("nowcast/"), "status"].value_counts().items()) == [
        ("failed", 1),
        ("succeeded", 3),
    ]
