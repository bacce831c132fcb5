"""Station references: forecasts matched to stations, scored per station and lead time; point forecasts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine.storage.catalog import Catalog, RunRecord
from verification.metrics import (
    crps_ensemble,
)
from verification.metrics.registry import METRIC_INFO, station_metrics
from verification.pipeline.options import VerificationError, VerifyOptions
from verification.pipeline.persistence import _baseline, baseline_run_id
from verification.pipeline.references import Reference
from verification.pipeline.results import VerificationResult
from verification.pipeline.runs import _init_time, _valid_times
from verification.pipeline.scoring import _finish_rows, _metrics_for, score_fields
from verification.pipeline.times import _fmt_times, _offset_note, _tolerance_hint, _within
from verification.stations import match_to_stations, match_to_times, nearest_time_indices, score_table


def _verify_stations(
    catalog: Catalog,
    rec: RunRecord,
    fc: xr.DataArray,
    ref: Reference,
    variable: str,
    options: VerifyOptions,
    write: bool,
) -> VerificationResult:
    """Forecasts matched to stations, scored per station and lead time; point forecasts written."""
    st = ref.stations
    assert st is not None
    ensemble = "member" in fc.dims and fc.sizes["member"] > 1
    metrics = _metrics_for("stations", options, ensemble)
    unsupported = [m for m in metrics if not METRIC_INFO[m].at_stations]
    if unsupported:
        raise VerificationError(
            f"metrics {', '.join(unsupported)} are not computed at stations ({', '.join(station_metrics())})"
        )
    valid = _valid_times(fc, rec)
    tolerance = options.time_tolerance
    assert isinstance(tolerance, pd.Timedelta)  # VerifyOptions normalises it
    obs_all = st[variable]
    report_times = _station_times(obs_all, ref)
    # the reference must cover every valid time (a report time of any station within the
    # tolerance, as the exact match always required); which report each station uses is decided
    # per station below, among its valid ones
    covered = nearest_time_indices(report_times, valid, tolerance) >= 0
    missing = [t for t, ok in zip(valid, covered, strict=True) if not ok]
    if missing:
        raise VerificationError(
            f"{ref.label}: no observation{_within(tolerance)} at {len(missing)} valid time(s) of run {rec.run_id}: "
            f"{_fmt_times(missing)}{_tolerance_hint(tolerance)}"
        )
    meta = pd.DataFrame(
        {
            "station": st["station"].values.astype(str),
            "lat": st["lat"].values.astype(float),
            "lon": st["lon"].values.astype(float),
        }
    )
    if "elevation" in st.coords:
        meta["elevation"] = st["elevation"].values.astype(float)
    meta = meta[np.isfinite(meta["lat"]) & np.isfinite(meta["lon"])]
    if meta.empty:
        raise VerificationError(f"{ref.label}: no station has coordinates")
    keep = {"lat", "lon", fc.attrs.get("grid_mapping")}
    grid_fc = fc.drop_vars([c for c in fc.coords if c not in fc.dims and c not in keep])
    if "member" in grid_fc.dims and not ensemble:
        grid_fc = grid_fc.isel(member=0, drop=True)
    with warnings.catch_warnings():
        # stations off the grid are expected (a station list covers more than one domain):
        # they come back NaN and are dropped below, counted in the notes instead of warned about
        warnings.filterwarnings("ignore", message="stations outside the grid")
        # matching indexes the lazy store, so only the grid cells around the stations are read
        matched_ds = match_to_stations(grid_fc.to_dataset(name=variable), meta, method=options.station_method)
    matched = matched_ds[variable].load()
    inside = matched.notnull().any([d for d in matched.dims if d != "station"])
    notes = []
    n_out = int((~inside).sum())
    if n_out:
        notes.append(f"{n_out} of {matched.sizes['station']} stations are outside the run grid")
    matched = matched.sel(station=inside)
    if matched.sizes["station"] == 0:
        raise VerificationError(f"{ref.label}: no station lies inside the grid of run {rec.run_id}")
    ids = matched["station"].values
    leads = fc["lead_time"].values
    # each station's nearest valid report within the tolerance (exactly at the valid time by default)
    station_obs = obs_all.sel(station=ids).load()
    observed = match_to_times(station_obs, valid, tolerance=tolerance).rename(time="lead_time")
    observed = observed.assign_coords(lead_time=leads, valid_time=("lead_time", np.array(valid, "datetime64[ns]")))
    observed = observed.drop_vars([c for c in observed.coords if c not in (*observed.dims, "valid_time", "obs_time")])
    observed = observed.transpose("lead_time", "station")
    used = [None if np.isnat(t) else t for t in np.ravel(observed["obs_time"].values)]
    offsets = _offset_note(ref.label, np.repeat(valid, len(ids)), used, "station-lead pairs")
    if offsets:
        notes.append(offsets)
    obs = observed.drop_vars([c for c in observed.coords if c not in observed.dims])
    matched = matched.drop_vars([c for c in matched.coords if c not in matched.dims])
    scores = _finish_rows(_station_scores(matched, obs, metrics, ensemble), rec.run_id, ref.label, variable)

    init = _init_time(fc, rec)
    baseline = None
    has_init = bool(nearest_time_indices(report_times, [init], tolerance)[0] >= 0)
    if options.persistence and has_init:
        # persistence at a station: its observation at the init time (matched as the valid
        # times are), held over every lead time
        held = match_to_times(station_obs, [init], tolerance=tolerance).isel(time=0, drop=True)
        held = held.drop_vars([c for c in held.coords if c != "station"])
        held = held.expand_dims(lead_time=leads).transpose(*obs.dims)
        baseline = baseline_run_id(rec.run_id)
        base = _station_scores(held, obs, [m for m in metrics if not METRIC_INFO[m].needs_ensemble], ensemble=False)
        scores = pd.concat([scores, _finish_rows(base, baseline, ref.label, variable)], ignore_index=True)
    elif options.persistence:
        notes.append(
            f"no persistence baseline: {ref.label} has no observation{_within(tolerance)} at the init time "
            f"{_fmt_times([init])}"
        )

    points = matched.to_dataframe(name="value").reset_index()
    points = points.rename(columns={"station": "station_id"})
    points["run_id"], points["variable"], points["init_time"] = rec.run_id, variable, pd.Timestamp(init)
    if "member" not in points:
        points["member"] = None
    points = points[["run_id", "station_id", "init_time", "lead_time", "variable", "value", "member"]]
    if write:
        known = set(catalog.stations()["station_id"].astype(str))
        new = meta[meta["station"].isin(ids) & ~meta["station"].isin(known)].rename(columns={"station": "station_id"})
        if len(new):
            catalog.upsert_stations(new.assign(source=ref.label))
        if baseline is not None:
            _baseline(catalog, rec, ref.label)
        catalog.insert_scores(scores)
        catalog.insert_point_forecasts(points)
    obs_time = observed["obs_time"].drop_vars("obs_time", errors="ignore")
    return VerificationResult(
        rec.run_id, ref.label, variable, "stations", scores, baseline, points, notes, obs_time, observed
    )


def _station_times(obs: xr.DataArray, ref: Reference) -> np.ndarray:
    """The report times of a station reference; an error naming the reference if one repeats."""
    times = np.asarray(obs["time"].values, dtype="datetime64[ns]")
    uniq, counts = np.unique(times, return_counts=True)
    if (counts > 1).any():
        source = ref.stations.attrs.get("source_files") if ref.stations is not None else None
        where = f"{ref.label} ({source})" if source and str(source) not in ref.label else ref.label
        reps = uniq[counts > 1]
        raise VerificationError(
            f"{where}: {len(reps)} report time(s) repeat, e.g. {_fmt_times(list(reps[:3]))}; "
            "keep one report per station and time"
        )
    if np.isnat(times).any():
        raise VerificationError(f"{ref.label}: report times hold NaT; drop those reports")
    return times


def _station_scores(fcst: xr.DataArray, obs: xr.DataArray, metrics: Sequence[str], ensemble: bool) -> pd.DataFrame:
    """Rows per station (``region = station:<id>``) and for all stations together (``region`` None).

    ``fcst`` is on ``(lead_time, [member,] station)``, ``obs`` on ``(lead_time, station)``.
    """
    det = fcst.mean("member") if ensemble else fcst
    name = str(obs.name or "value")
    table = score_table(det.rename(name), obs.rename(name), by=("station", "lead_time"))
    # a station that reported nothing at a lead time has no score there (not a NaN row)
    table = table[table["n"] > 0]
    rows: list[dict[str, Any]] = []
    for m in ("bias", "mae", "rmse"):
        if m in metrics:
            rows.extend(
                {"lead_time": r.lead_time, "metric": m, "region": f"station:{r.station}", "value": getattr(r, m)}
                for r in table.itertuples(index=False)
            )
    if ensemble and "crps" in metrics:
        per_station = crps_ensemble(fcst, obs, preserve_dims=["station", "lead_time"])
        rows.extend(
            {
                "lead_time": pd.Timedelta(lead),
                "metric": "crps",
                "region": f"station:{sid}",
                "value": float(per_station.sel(station=sid, lead_time=lead)),
            }
            for sid in per_station["station"].values
            for lead in per_station["lead_time"].values
            if np.isfinite(per_station.sel(station=sid, lead_time=lead))
        )
    per = pd.DataFrame(rows, columns=["lead_time", "metric", "region", "value"])
    per["threshold"] = np.nan
    per["scale"] = np.nan
    # all stations together: the same metric functions, reduced over the stations
    domain = score_fields(fcst, obs, metrics=list(metrics), thresholds=(), fss_thresholds=(), windows=())
    domain["region"] = None
    out = pd.concat([per, domain], ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out
