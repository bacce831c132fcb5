"""Scoring aligned fields one lead time at a time, chosen from the metric records; the climatology of the ACC."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import DimensionError, WxError
from engine.types import XarrayLike
from verification.metrics import (
    acc,
    bias,
    contingency_table,
    crps_ensemble,
    fss,
    mae,
    mse,
    rmse,
    scores_from_table,
    spread_skill,
)
from verification.metrics.registry import METRIC_INFO, Case, default_metrics
from verification.pipeline.grids import _same_grid, regrid_latlon
from verification.pipeline.options import (
    DEFAULT_CLIMATOLOGY,
    DEFAULT_FSS_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOWS,
    VerificationError,
    VerifyOptions,
)

# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _rows_of(metric: str, value: XarrayLike, lead: Any) -> list[dict[str, Any]]:
    """Flatten a score over its ``threshold`` / ``window`` dims into rows."""
    # The metrics return the type of their inputs; the fields scored here are DataArrays.
    if not isinstance(value, xr.DataArray):
        raise TypeError(f"{metric}: expected a DataArray score, got {type(value).__name__}")
    rows = []
    thr = value["threshold"].values if "threshold" in value.dims else [None]
    win = value["window"].values if "window" in value.dims else [None]
    for t in thr:
        for w in win:
            sel = {}
            if t is not None:
                sel["threshold"] = t
            if w is not None:
                sel["window"] = w
            v = float(value.sel(sel)) if sel else float(value)
            rows.append(
                {
                    "lead_time": lead,
                    "metric": metric,
                    "threshold": np.nan if t is None else float(t),
                    "scale": np.nan if w is None else float(w),
                    "value": v if math.isfinite(v) else np.nan,
                }
            )
    return rows


def score_fields(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    metrics: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    fss_thresholds: Sequence[float] = DEFAULT_FSS_THRESHOLDS,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    climatology: xr.DataArray | None = None,
    weights: xr.DataArray | None = None,
    member_dim: Hashable = "member",
) -> pd.DataFrame:
    """Scores of aligned forecast and reference fields, one lead time at a time.

    Each lead time is loaded (computed, for dask inputs) on its own and scored over the whole
    grid, so memory holds one lead's fields whatever the length of the sequence, and chunked
    and in-memory inputs give identical numbers. Deterministic scores of an ensemble use the
    ensemble mean; ensemble metrics are skipped for deterministic forecasts.

    Parameters
    ----------
    fcst : xarray.DataArray
        Forecast on ``(lead_time, [member,] <grid>)``, units of the variable.
    obs : xarray.DataArray
        Reference on ``(lead_time, <grid>)`` with the same coordinates.
    metrics : sequence of str
        Names from :data:`~verification.metrics.registry.METRIC_INFO`.
    thresholds : sequence of float
        Thresholds of the categorical scores (units of the variable).
    fss_thresholds : sequence of float
        Thresholds of the FSS.
    windows : sequence of int
        FSS windows in grid points.
    climatology : xarray.DataArray, optional
        For ``acc``: on ``(lead_time, <grid>)`` or ``<grid>``.
    weights : xarray.DataArray, optional
        Grid weights (e.g. :func:`verification.latitude_weights`) for every score.
    member_dim : str
        The ensemble dim.

    Returns
    -------
    DataFrame
        Columns ``lead_time, metric, threshold, scale, value`` (NaN threshold / scale where the
        metric has none).

    Raises
    ------
    DimensionError
        If the inputs lack ``lead_time`` or their lead times differ.
    VerificationError
        If ``acc`` is asked for without a climatology.
    """
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if "lead_time" not in arr.dims:
            raise DimensionError(f"{name} has no lead_time dim (dims {arr.dims})")
    if fcst.sizes["lead_time"] != obs.sizes["lead_time"]:
        raise DimensionError(f"fcst has {fcst.sizes['lead_time']} lead times, obs {obs.sizes['lead_time']}")
    ensemble = member_dim in fcst.dims and fcst.sizes[member_dim] > 1
    if member_dim in fcst.dims and not ensemble:
        fcst = fcst.isel({member_dim: 0}, drop=True)
    if "acc" in metrics and climatology is None:
        raise VerificationError("acc needs a climatology (--climatology DATASET|FILE)")
    kw: dict[str, Any] = {"weights": weights} if weights is not None else {}
    rows: list[dict[str, Any]] = []
    for k in range(fcst.sizes["lead_time"]):
        lead = pd.Timedelta(fcst["lead_time"].values[k]) if "lead_time" in fcst.coords else pd.Timedelta(k, "s")
        f_k = fcst.isel(lead_time=k, drop=True).load()
        o_k = obs.isel(lead_time=k, drop=True).load()
        det = f_k.mean([member_dim]) if ensemble else f_k
        categorical = [m for m in metrics if METRIC_INFO[m].family == "categorical"]
        if categorical and thresholds:
            table = contingency_table(det, o_k, threshold=list(thresholds), **kw)
            scores = scores_from_table(table, categorical)
            for m in categorical:
                rows += _rows_of(m, scores[m], lead)
        if "fss" in metrics and fss_thresholds and windows:
            rows += _rows_of("fss", fss(det, o_k, threshold=list(fss_thresholds), window=list(windows), **kw), lead)
        for name, func in (("bias", bias), ("mae", mae), ("mse", mse), ("rmse", rmse)):
            if name in metrics:
                rows += _rows_of(name, func(det, o_k, **kw), lead)
        if "acc" in metrics and climatology is not None:
            clim = climatology.isel(lead_time=k, drop=True) if "lead_time" in climatology.dims else climatology
            rows += _rows_of("acc", acc(det, o_k, climatology=clim.load(), centred=False, **kw), lead)
        if ensemble:
            if "crps" in metrics:
                rows += _rows_of("crps", crps_ensemble(f_k, o_k, member_dim=member_dim, **kw), lead)
            wanted = [m for m in ("spread", "rmse_ensemble_mean", "spread_skill") if m in metrics]
            if wanted:
                ss = spread_skill(f_k, o_k, member_dim=member_dim, **kw)
                parts = {"spread": ss["spread"], "rmse_ensemble_mean": ss["rmse"], "spread_skill": ss["ratio"]}
                for m in wanted:
                    rows += _rows_of(m, parts[m], lead)
    return pd.DataFrame(rows, columns=["lead_time", "metric", "threshold", "scale", "value"])


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def _metrics_for(case: Case, options: VerifyOptions, ensemble: bool) -> list[str]:
    """The metrics to compute: those named, or the case's defaults from the metric records."""
    if options.metrics is None:
        return list(default_metrics(case, ensemble=ensemble))
    names = list(options.metrics)
    if not ensemble:
        asked = [m for m in names if METRIC_INFO[m].needs_ensemble]
        if asked:
            raise VerificationError(f"metrics {', '.join(asked)} need an ensemble; the run is deterministic")
    return names


def _climatology(
    spec: str | None, variable: str, valid: Sequence[np.datetime64], target: xr.DataArray, data_root: Path | None
) -> tuple[xr.DataArray | None, str | None]:
    """The climatology at the run's valid times on the run grid, or ``None`` and why not."""
    from engine import datasets
    from engine.readers import open_any

    name = spec or DEFAULT_CLIMATOLOGY
    try:
        if Path(name).expanduser().is_file():
            ds = open_any(Path(name).expanduser())
        else:
            ds = datasets.open_dataset(name, data_root)
    except WxError as err:
        if spec is not None:
            raise
        return None, f"no ACC: default climatology {name} unavailable ({err})"
    if variable not in ds.data_vars:
        if spec is not None:
            raise VerificationError(
                f"climatology {name}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})"
            )
        return None, f"no ACC: climatology {name} has no {variable}"
    clim = ds[variable]
    months = xr.DataArray([pd.Timestamp(t).month for t in valid], dims=["lead_time"])
    if "month" in clim.dims:
        have = set(int(m) for m in clim["month"].values)
        lacking = sorted(set(int(m) for m in months.values) - have)
        if lacking:
            raise VerificationError(f"climatology {name}: no month {lacking} (has {sorted(have)})")
        clim = clim.sel(month=months)
    elif "dayofyear" in clim.dims:
        clim = clim.sel(dayofyear=xr.DataArray([pd.Timestamp(t).dayofyear for t in valid], dims=["lead_time"]))
    elif any(d not in ("lat", "lon") for d in clim.dims):
        raise VerificationError(f"climatology {name}: expected dims (month|dayofyear, lat, lon), got {clim.dims}")
    clim = clim.drop_vars([c for c in clim.coords if c not in ("lat", "lon")])
    if not _same_grid(clim, target, ("lat", "lon")):
        clim = regrid_latlon(clim, target["lat"].values, target["lon"].values)
    note = f"ACC against the climatology {name}"
    return clim.assign_coords(lat=target["lat"].values, lon=target["lon"].values), note


def _finish_rows(df: pd.DataFrame, run_id: str, reference: str, variable: str) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "run_id", run_id)
    out.insert(1, "reference", reference)
    out.insert(2, "variable", variable)
    if "region" not in out:
        out["region"] = None
    return out[["run_id", "reference", "variable", "lead_time", "metric", "threshold", "scale", "region", "value"]]
