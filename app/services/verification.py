"""Verification: score tables, the scorecard, and the display units of metrics.

Which metrics are in the variable's units, their orientation and the skill arithmetic come from
the one record per metric in :mod:`verification.metrics.registry` and from
:mod:`verification.scorecard`; this module only adds the display units forecasters read
(geopotential in dam, pressure in hPa) and the catalogue queries.

Public API: ``scores_table``, ``score_catalogue``, ``scorecard``, ``spread_skill_table``,
``with_lead_hours``, ``metric_units``, ``units_of``, ``pretty_units``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.components.scales import scale_for
from app.services.store import catalog
from verification.metrics import registry
from verification.scorecard import scorecard as skill_card


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
    # these are differences, so only the factor of the display conversion applies (squared for
    # the MSE): the metric's record says which power of the variable's units it carries.
    for (variable, name), rows in df.groupby(["variable", "metric"]).groups.items():
        factor = registry.metric_display_factor(str(name), _error_scale(str(variable))[0])
        df.loc[rows, "value"] = df.loc[rows, "value"] * factor
    return df


@st.cache_data(ttl="30s", show_spinner=False)
def score_catalogue() -> pd.DataFrame:
    """Which (kind, variable, metric) combinations have scores, with counts."""
    return catalog().score_counts()


def scorecard(df: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Skill of each model relative to a baseline model, per variable, lead time, metric and threshold.

    :func:`verification.scorecard.scorecard` over the models, with lead times in hours; the skill
    follows each metric's orientation (``1 - score / baseline`` for errors, ``score - baseline``
    where higher is better, distance to the target for biases). Pass the scores of one threshold
    and window: the card keeps them apart rather than averaging CSI over thresholds.

    Returns
    -------
    DataFrame
        Columns ``model, variable, lead_hours, metric, [threshold, scale, region,] value, n,
        baseline, skill``.
    """
    return skill_card(df, baseline, by="model", lead="lead_hours")


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


def metric_units(metric: str, variable: str) -> str:
    """Display units of a metric's values (those of :func:`scores_table`): the variable's display
    units for errors and spread (dam for geopotential, hPa for pressure, K for temperature), their
    square for the MSE, "" for dimensionless skill scores."""
    return registry.metric_units(metric, _error_scale(variable)[1])


@st.cache_data(ttl="30s", show_spinner=False)
def spread_skill_table(kind: str, variable: str) -> pd.DataFrame:
    """Spread and RMSE (of the ensemble mean) by lead time of the ensemble runs of one kind."""
    df = scores_table(variable=variable)
    df = df[(df["kind"] == kind) & df["metric"].isin(["spread", "rmse"])]
    ensembles = df.loc[df["metric"] == "spread", "run_id"].unique()
    return df[df["run_id"].isin(ensembles)]
