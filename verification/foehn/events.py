"""Foehn episodes and statistics from the hourly probabilities of a fit."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from verification.foehn.mixture import FoehnFit
from verification.foehn.pair import FoehnError

# --------------------------------------------------------------------------------------------------
# events and statistics
# --------------------------------------------------------------------------------------------------


def foehn_events(
    hourly: pd.DataFrame | FoehnFit, *, threshold: float = 0.5, freq: str | pd.Timedelta = "1h"
) -> pd.DataFrame:
    """Contiguous Foehn episodes: runs of consecutive time steps with probability ≥ ``threshold``.

    Parameters
    ----------
    hourly : DataFrame or FoehnFit
        The ``hourly`` table of a fit (``probability``, ``t2m`` in K, ``wind_speed`` in m s-1).
    threshold : float
        Probability at or above which an hour counts as Foehn (foehnix uses 0.5).
    freq : str or Timedelta
        The time step; a gap longer than this ends an event (missing hours are not bridged).

    Returns
    -------
    DataFrame
        One row per event: ``start``, ``end`` (first and last Foehn hour), ``duration_h``
        (hours, counting both ends), ``max_probability``, ``mean_wind_speed`` (valley, m s-1),
        ``temperature_rise`` (K: highest valley ``t2m`` during the event minus the valley
        ``t2m`` of the hour before onset; NaN when that hour is missing).
    """
    if isinstance(hourly, FoehnFit):
        hourly = hourly.hourly
    if not 0.0 < threshold <= 1.0:
        raise FoehnError(f"threshold must lie in (0, 1], got {threshold}")
    step = pd.Timedelta(freq)
    columns = ["start", "end", "duration_h", "max_probability", "mean_wind_speed", "temperature_rise"]
    flag = (hourly["probability"] >= threshold).to_numpy()
    if not flag.any():
        return pd.DataFrame(columns=columns)
    times = hourly.index[flag]
    # A new event starts wherever consecutive Foehn hours are more than one step apart.
    new = np.r_[True, np.asarray(times[1:] - times[:-1] > step)]
    group = np.cumsum(new)
    sub = hourly.loc[flag].assign(_event=group)
    rows = []
    for _, g in sub.groupby("_event", sort=True):
        start, end = g.index[0], g.index[-1]
        before = start - step
        rise = np.nan
        if "t2m" in hourly.columns and before in hourly.index:
            rise = float(g["t2m"].max() - hourly.at[before, "t2m"])
        rows.append(
            {
                "start": start,
                "end": end,
                "duration_h": (end - start) / pd.Timedelta("1h") + step / pd.Timedelta("1h"),
                "max_probability": float(g["probability"].max()),
                "mean_wind_speed": float(g["wind_speed"].mean()) if "wind_speed" in g else np.nan,
                "temperature_rise": rise,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def foehn_statistics(hourly: pd.DataFrame | FoehnFit, *, threshold: float = 0.5) -> Mapping[str, pd.DataFrame]:
    """Foehn climatology by month of year and by hour of day.

    Parameters
    ----------
    hourly : DataFrame or FoehnFit
        The ``hourly`` table of a fit.
    threshold : float
        Probability at or above which an hour counts as Foehn.

    Returns
    -------
    dict of DataFrame
        ``"month"`` (index 1-12) and ``"hour"`` (index 0-23, UTC), each with ``n_hours`` (hours
        with a probability), ``foehn_hours`` (p ≥ threshold), ``frequency`` (their ratio) and
        ``mean_probability``.
    """
    if isinstance(hourly, FoehnFit):
        hourly = hourly.hourly
    p = hourly["probability"].dropna()
    idx = pd.DatetimeIndex(p.index)
    out = {}
    for key, by in (("month", idx.month), ("hour", idx.hour)):
        g = p.groupby(by)
        table = pd.DataFrame(
            {
                "n_hours": g.size(),
                "foehn_hours": (p >= threshold).groupby(by).sum().astype(int),
                "mean_probability": g.mean(),
            }
        )
        table["frequency"] = table["foehn_hours"] / table["n_hours"]
        table.index.name = key
        out[key] = table
    return out
