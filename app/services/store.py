"""The store the app shows: its settings, catalogue handle, status and runs table.

The settings are those of the app session, which ``app/streamlit_app.py`` parses from its
script arguments (:mod:`app.settings`) on the session's first run and keeps in
``st.session_state``. Code that uses the services outside a session (a benchmark, a notebook)
gets the settings of the environment instead.

Public API: ``app_settings``, ``settings``, ``catalog``, ``store_status``, ``runs_table``,
``error_text``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import state
from app.settings import AppSettings, parse_app_arguments
from engine.config import Settings
from engine.errors import WxError
from engine.storage.catalog import Catalog


def app_settings() -> AppSettings:
    """The settings of this app session (see the module docstring)."""
    found = st.session_state.get(state.SETTINGS)
    return found if isinstance(found, AppSettings) else _environment_settings()


@st.cache_resource(show_spinner=False)
def _environment_settings() -> AppSettings:
    return parse_app_arguments([])


def settings() -> Settings:
    """The store and sample-data folders of this app session."""
    return app_settings().settings


def catalog() -> Catalog:
    """The run catalogue of the store (created empty if missing)."""
    return _catalog(settings().catalog_path)


@st.cache_resource(show_spinner=False)
def _catalog(path: Path) -> Catalog:
    return Catalog(path)


def store_status() -> dict[str, Any]:
    """Where the store is and how many runs it has (not cached: cheap, and must be current)."""
    s = settings()
    runs = catalog().list_runs()
    return {
        "store": str(s.store_root),
        "data_root": str(s.data_root) if s.data_root else None,
        "n_runs": len(runs),
        "n_succeeded": int((runs["status"] == "succeeded").sum()) if len(runs) else 0,
    }


@st.cache_data(ttl="5s", show_spinner=False)
def runs_table() -> pd.DataFrame:
    """The runs table, newest first (parameters left out)."""
    df = catalog().list_runs()
    return df.drop(columns=["parameters"])


def error_text(err: BaseException) -> str:
    """One line for the page from a user error."""
    return str(err) if isinstance(err, WxError) else f"{type(err).__name__}: {err}"
