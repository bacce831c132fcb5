"""Home: what meteolens holds and where to go."""

from __future__ import annotations

import streamlit as st

from app.services import stations, store

st.title("meteolens")
st.markdown(
    "Forecast exploration and verification: browse forecast and radar **maps**, compare models with "
    "**stations**, read the **quality** of precipitation nowcasts, compare models in **scorecards**, "
    "**run** a forecast on demand, or open a curated **case study**."
)
status = store.store_status()
c1, c2, c3 = st.columns(3)
c1.metric("Runs in the store", status["n_runs"])
c2.metric("Succeeded", status["n_succeeded"])
c3.metric("Stations", len(stations.stations()))
cols = st.columns(3)
cols[0].page_link("pages/maps.py", label="Maps", icon=":material/map:")
cols[0].page_link("pages/stations.py", label="Stations", icon=":material/location_on:")
cols[1].page_link("pages/nowcast.py", label="Nowcast & quality", icon=":material/rainy:")
cols[1].page_link("pages/verification.py", label="Verification", icon=":material/leaderboard:")
cols[2].page_link("pages/run.py", label="Run a forecast", icon=":material/play_circle:")
cols[2].page_link("pages/cases.py", label="Case studies", icon=":material/menu_book:")
st.subheader("Recent runs")
runs = store.runs_table().head(10)
if runs.empty:
    st.info("No runs yet. Build the demo store with `meteolens demo build`, or launch one on the Run page.")
else:
    st.dataframe(runs, hide_index=True, width="stretch")
