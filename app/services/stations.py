"""Stations: the catalogued stations, their observations, forecasts at them and their scores.

Public API: ``stations``, ``station_variables``, ``station_period``, ``station_series``,
``point_series``, ``wind_observations``, ``station_scores``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.services.store import catalog
from app.services.verification import with_lead_hours


@st.cache_data(ttl="1m", show_spinner=False)
def stations() -> pd.DataFrame:
    """Catalogued stations: ``station_id, name, lat, lon, elevation, source``."""
    return catalog().stations()


@st.cache_data(ttl="1m", show_spinner=False)
def station_variables(station_id: str) -> list[str]:
    """Variables observed at a station."""
    return catalog().observed_variables(station_id)


@st.cache_data(ttl="1m", show_spinner=False)
def station_period(station_id: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last observation time of a station (``None`` when it has none)."""
    return catalog().observation_period(station_id)


@st.cache_data(ttl="1m", show_spinner=False)
def station_series(station_id: str, variable: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Observations of one variable at a station: ``time, value`` (canonical units)."""
    return catalog().observations(station_id, variable, start, end)[["time", "value"]]


@st.cache_data(ttl="1m", show_spinner=False)
def point_series(station_id: str, variable: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Forecasts of every run at a station in a period: ``run_id, valid_time, lead_time, member, value``."""
    return catalog().station_forecasts(station_id, variable, start, end)


@st.cache_data(ttl="1m", show_spinner=False)
def wind_observations(station_id: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Wind direction (degree, from) and speed (m s-1) at a station, paired by time."""
    table = catalog().observation_table(station_id, start, end, variables=("wind_dir", "wind_speed"))
    if table.empty:
        return pd.DataFrame(columns=["time", "wind_dir", "wind_speed"])
    return table.reset_index().dropna()


@st.cache_data(ttl="1m", show_spinner=False)
def station_scores(station_id: str | None = None) -> pd.DataFrame:
    """Station scores from the catalogue (region ``station:<id>``), one row per run, variable, metric, lead."""
    df = catalog().scores()
    df = df[df["region"].fillna("").str.startswith("station:")]
    if station_id is not None:
        df = df[df["region"] == f"station:{station_id}"]
    return with_lead_hours(df)
