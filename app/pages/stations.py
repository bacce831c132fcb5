"""Stations: where they are, observed and forecast series, wind roses, the Foehn timeline, scores."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from app import state
from app.components import charts
from app.services import foehn, maps, store
from app.services import stations as station_data
from engine.lexicon import lookup

st.title("Stations")
stations = station_data.stations()
if stations.empty:
    st.info(
        "No stations in the catalogue yet. `meteolens demo build` adds the Wipp-valley Foehn pair and the "
        "Colorado ASOS stations with their observations."
    )
    st.stop()

ids = stations["station_id"].tolist()
names = dict(zip(ids, stations["name"].fillna(stations["station_id"]), strict=True))
with st.sidebar:
    state.bind_choice(state.STATION, ids)
    station = st.selectbox("Station", ids, format_func=lambda s: f"{names[s]} ({s})", key=state.STATION)
    variables = station_data.station_variables(station)
    state.bind_choice(state.STATION_VAR, variables, "t2m")
    variable = st.selectbox("Variable", variables, key=state.STATION_VAR) if variables else None
    period = station_data.station_period(station)
    if period is not None:
        first, last = period[0].date(), period[1].date()
        state.bind(state.START, max(first, last - dt.timedelta(days=14)), dt.date.fromisoformat)
        state.bind(state.END, last, dt.date.fromisoformat)
        start = st.date_input("From", min_value=first, max_value=last, key=state.START)
        end = st.date_input("To", min_value=first, max_value=last, key=state.END)
state.to_url([state.STATION, state.STATION_VAR, state.START, state.END])

st.plotly_chart(charts.station_map(stations, maps.boundaries("50m"), selected=station), width="stretch")
if period is None or variable is None:
    st.info(f"{names[station]} has no observations in the catalogue.")
    st.stop()
if start > end:
    st.error(f"The period is empty: 'From' ({start}) is after 'To' ({end}).")
    st.stop()
t0, t1 = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(hours=23, minutes=59)

tab_series, tab_wind, tab_foehn, tab_scores = st.tabs(["Time series", "Wind rose", "Foehn", "Scores"])
with tab_series:
    obs = station_data.station_series(station, variable, t0, t1)
    fc = station_data.point_series(station, variable, t0, t1)
    st.plotly_chart(charts.time_series(obs, fc, variable, lookup(variable).units, names[station]), width="stretch")
    st.download_button(
        "Observations (CSV)", obs.to_csv(index=False), file_name=f"{station}_{variable}.csv", mime="text/csv"
    )
    if fc.empty:
        st.caption("No forecasts matched to this station in this period.")
with tab_wind:
    wind = station_data.wind_observations(station, t0, t1)
    if wind.empty:
        st.info(f"{names[station]} reports no wind direction and speed in this period.")
    else:
        st.plotly_chart(charts.wind_rose(wind, names[station]), width="stretch")
with tab_foehn:
    pairs = foehn.foehn_pairs()
    if not pairs:
        st.info("No valley/crest station pair is catalogued (the demo store adds Ellboegen and Sattelberg).")
    else:
        state.bind_choice(state.FOEHN_PAIR, pairs)
        pair = st.selectbox("Station pair", pairs, key=state.FOEHN_PAIR)
        state.to_url([state.FOEHN_PAIR])
        try:
            hourly, notes = foehn.foehn_timeline(pair, t0, t1)
        except Exception as err:
            st.error(f"Foehn diagnosis failed: {store.error_text(err)}")
        else:
            share = float((hourly["probability"] >= 0.5).mean()) if len(hourly) else 0.0
            st.metric(
                "Hours with Foehn (probability ≥ 0.5)",
                f"{int((hourly['probability'] >= 0.5).sum())}",
                help=f"{100 * share:.1f} % of the hours in the period",
            )
            st.plotly_chart(charts.foehn_timeline(hourly, f"Foehn diagnosis, {pair}"), width="stretch")
            for note in notes:
                st.caption(f"Note: {note}")
            st.download_button("Foehn series (CSV)", hourly.to_csv(), file_name="foehn.csv", mime="text/csv")
with tab_scores:
    scores = station_data.station_scores(station)
    if scores.empty:
        st.info("No station scores for this station in the catalogue.")
    else:
        metric = st.selectbox("Metric", sorted(scores["metric"].unique()))
        st.plotly_chart(charts.skill_by_lead(scores[scores["metric"] == metric], metric), width="stretch")
        st.dataframe(scores, hide_index=True)
