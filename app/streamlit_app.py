"""meteolens dashboard: the Streamlit entry point (``meteolens app`` runs it).

Shared chrome lives here, once: the settings parsed from the script arguments (the store, the
sample data, whether to build the demo store; see :mod:`app.settings`), page configuration, the
store shown in the sidebar, and on first start without a store the demo-store build with its
progress in the page. Then ``st.navigation``
runs the page named by the URL path (``/maps``, ``/stations``, ``/nowcast``, ``/verification``,
``/run``, ``/cases``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import state
from app.services import demo_store, stations, store
from app.settings import AppArgumentError, parse_app_arguments, script_arguments

HERE = Path(__file__).parent

st.set_page_config(page_title="meteolens", page_icon=":material/partly_cloudy_day:", layout="wide")


def _session_settings() -> None:
    """Parse the script arguments into the session's settings, once per session."""
    if state.SETTINGS in st.session_state:
        return
    try:
        st.session_state[state.SETTINGS] = parse_app_arguments(script_arguments(__file__))
    except AppArgumentError as err:
        st.error(str(err))
        st.stop()


_session_settings()


def _first_start_build() -> None:
    """Build the demo store with a progress bar when the app was asked to and the store is empty."""
    if not demo_store.demo_store_wanted() or st.session_state.get("_demo_checked"):
        return
    st.session_state["_demo_checked"] = True
    if store.store_status()["n_runs"] or len(stations.stations()):
        return
    bar = st.progress(0.0, text="Building the demo store from the sample data…")

    def show(f: float, msg: str) -> None:
        bar.progress(min(max(f, 0.0), 1.0), text=msg)

    try:
        report = demo_store.build_demo_store(show)
    except Exception as err:  # the app must still open; the message says what failed
        st.error(f"Building the demo store failed: {store.error_text(err)}")
        return
    bar.empty()
    st.success(f"Demo store ready: {report.summary()}")


_first_start_build()

pages = {
    "": [st.Page(str(HERE / "pages" / "home.py"), title="Home", icon=":material/home:", default=True)],
    "Explore": [
        st.Page(str(HERE / "pages" / "maps.py"), title="Maps", icon=":material/map:", url_path="maps"),
        st.Page(
            str(HERE / "pages" / "stations.py"), title="Stations", icon=":material/location_on:", url_path="stations"
        ),
        st.Page(str(HERE / "pages" / "cases.py"), title="Case studies", icon=":material/menu_book:", url_path="cases"),
    ],
    "Verify": [
        st.Page(
            str(HERE / "pages" / "nowcast.py"), title="Nowcast & quality", icon=":material/rainy:", url_path="nowcast"
        ),
        st.Page(
            str(HERE / "pages" / "verification.py"),
            title="Verification",
            icon=":material/leaderboard:",
            url_path="verification",
        ),
    ],
    "Run": [
        st.Page(str(HERE / "pages" / "run.py"), title="Run a forecast", icon=":material/play_circle:", url_path="run")
    ],
}
page = st.navigation(pages)

with st.sidebar:
    try:
        status = store.store_status()
        st.caption(f"Store: `{status['store']}` · {status['n_succeeded']} of {status['n_runs']} runs succeeded")
        if status["data_root"] is None:
            st.caption("Sample data folder not found: set METEOLENS_DATA.")
    except Exception as err:  # a broken store must not hide the pages
        st.error(f"Cannot read the store: {store.error_text(err)}")

page.run()
