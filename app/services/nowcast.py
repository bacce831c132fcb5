"""Nowcast & quality: the radar observation beside a nowcast run, and its quality reports.

Public API: ``radar_datasets``, ``observed_for``, ``observed_step``, ``quality_reports``.
"""

from __future__ import annotations

from fnmatch import fnmatch

import pandas as pd
import streamlit as st

from app.services.fields import source_info
from app.services.store import catalog, settings
from app.services.verification import with_lead_hours
from engine import datasets


def radar_datasets() -> list[str]:
    """Names of the radar sample datasets."""
    return [m.name for m in datasets.load_catalogue().values() if m.kind == "radar"]


@st.cache_data(ttl="10m", show_spinner=False)
def observed_for(run_id: str) -> str | None:
    """The radar sample dataset (``"dataset:<name>"``) a nowcast run was made from, if it can be told.

    The run's parameters name its inputs (a dataset name, files or globs); the dataset whose
    files or name they match is the observation to show beside the forecast.
    """
    params = catalog().get_run(run_id).parameters
    inputs = params.get("inputs") or params.get("input") or []
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    root = settings().data_root
    for name in radar_datasets():
        meta = datasets.get(name)
        for item in inputs:
            if str(item).lower() == name or (
                root is not None
                and any(
                    fnmatch(str(item), str(root / pat)) or fnmatch(str(root / pat), str(item)) for pat in meta.files
                )
            ):
                return f"dataset:{name}"
    return None


def observed_step(observed: str, run_id: str) -> int:
    """Step of the observed radar valid at the nowcast's first lead time (0 when not found)."""
    info = source_info(observed)
    run = source_info(f"run:{run_id}")
    first_valid = next((v for v in run.valid_times if v), "")
    return info.valid_times.index(first_valid) if first_valid in info.valid_times else 0


@st.cache_data(ttl="30s", show_spinner=False)
def quality_reports(run_id: str) -> pd.DataFrame:
    """RadarQA-style quality reports of a run (sequence first, then frames by lead time)."""
    return with_lead_hours(catalog().quality_reports(run_id))
