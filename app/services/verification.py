"""Verification: score tables, the scorecard, and the display units of metrics.

The scorecard arithmetic, the rescaling of scores to display units and the metric units live
together here until verification/ offers one record of metadata per metric (issue 11, item 3).

Public API: ``scores_table``, ``score_catalogue``, ``scorecard``, ``spread_skill_table``,
``with_lead_hours``, ``metric_units``, ``units_of``, ``pretty_units``,
``METRICS_IN_VARIABLE_UNITS``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.components.scales import scale_for
from app.services.store import catalog


def with_lead_hours(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a table with a ``lead_time`` column, with ``lead_hours`` (float hours) added."""
    df = df.copy()
    df["lead_hours"] = pd.to_timedelta(df["lead_time"]).dt.total_seconds() / 3600.0
    return df


@st.cache_data(ttl="30s", show_spinner=False)
def scores_table(run_ids: tuple[str, ...] = (), variable: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Scores joined with each run's model and kind, with ``lead_hours``.

    Parameters
    ----------
    run_ids : tuple of str
        Only these runs (all when empty).
    variable, metric : str, optional
        Filters.
    """
    filters: dict[str, Any] = {}
    if variable:
        filters["variable"] = variable
    if metric:
        filters["metric"] = metric
    df = catalog().scores(list(run_ids) if run_ids else None, **filters)
    runs = catalog().list_runs()[["run_id", "model", "kind", "init_time"]]
    df = with_lead_hours(df.merge(runs, on="run_id", how="left"))
    # Errors and spreads in the units forecasters read (geopotential in dam, pressure in hPa);
    # these are differences, so only the factor of the display conversion applies.
    for variable in df["variable"].unique():
        factor = _error_scale(variable)[0]
        rows = (df["variable"] == variable) & df["metric"].str.lower().isin(METRICS_IN_VARIABLE_UNITS)
        df.loc[rows, "value"] = df.loc[rows, "value"] * factor
    return df


@st.cache_data(ttl="30s", show_spinner=False)
def score_catalogue() -> pd.DataFrame:
    """Which (kind, variable, metric) combinations have scores, with counts."""
    return catalog().score_counts()


def scorecard(df: pd.DataFrame, baseline: str, lower_is_better: bool) -> pd.DataFrame:
    """Skill of each model relative to a baseline model, per variable and lead time.

    ``skill = 1 - score / score_baseline`` for errors (lower is better), ``score - baseline``
    for scores where higher is better (CSI, ACC, FSS). Averaged over runs, thresholds and scales.

    Returns
    -------
    DataFrame
        Columns ``model, variable, lead_hours, value, baseline, skill``.
    """
    keys = ["model", "variable", "lead_hours"]
    mean = df.groupby(keys, dropna=False)["value"].mean().reset_index()
    base = mean[mean["model"] == baseline].rename(columns={"value": "baseline"}).drop(columns="model")
    out = mean.merge(base, on=["variable", "lead_hours"], how="left")
    if lower_is_better:
        out["skill"] = 1.0 - out["value"] / out["baseline"].where(out["baseline"] != 0)
    else:
        out["skill"] = out["value"] - out["baseline"]
    return out


def pretty_units(units: str) -> str:
    """UDUNITS spelling → typographic (``m2 s-2`` → ``m² s⁻²``, ``mm h-1`` → ``mm h⁻¹``)."""
    return units.replace("m2", "m²").replace("-1", "⁻¹").replace("-2", "⁻²")


def units_of(variable: str) -> str:
    """Canonical units of a variable, typeset (as in score thresholds)."""
    from engine.errors import UnknownNameError
    from engine.lexicon import lookup

    try:
        return pretty_units(lookup(variable).units)
    except UnknownNameError:
        return ""


def _error_scale(variable: str) -> tuple[float, str]:
    """Factor and units that turn an error of ``variable`` (canonical units) into display units."""
    from engine.errors import UnknownNameError
    from engine.lexicon import lookup

    try:
        units = lookup(variable).units
    except UnknownNameError:
        return 1.0, ""
    scale = scale_for(variable, units, difference=True)
    return scale.factor, pretty_units(scale.units)


#: Metrics in the units of the verified variable (the others are dimensionless).
METRICS_IN_VARIABLE_UNITS: frozenset[str] = frozenset({"rmse", "mae", "bias", "spread"})


def metric_units(metric: str, variable: str) -> str:
    """Display units of a metric's values (those of :func:`scores_table`): the variable's display
    units for errors and spread (dam for geopotential, hPa for pressure, K for temperature), ""
    for dimensionless skill scores."""
    return _error_scale(variable)[1] if metric.lower() in METRICS_IN_VARIABLE_UNITS else ""


@st.cache_data(ttl="30s", show_spinner=False)
def spread_skill_table(kind: str, variable: str) -> pd.DataFrame:
    """Spread and RMSE (of the ensemble mean) by lead time of the ensemble runs of one kind."""
    df = scores_table(variable=variable)
    df = df[(df["kind"] == kind) & df["metric"].isin(["spread", "rmse"])]
    ensembles = df.loc[df["metric"] == "spread", "run_id"].unique()
    return df[df["run_id"].isin(ensembles)]
