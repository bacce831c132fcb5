"""The verification of a run: gridded cases here, stations in :mod:`verification.pipeline.stations`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import CoordError
from engine.storage.catalog import Catalog
from verification._dims import latitude_weights
from verification.metrics.registry import METRIC_INFO
from verification.pipeline.grids import _case_of, _same_grid, regrid_latlon
from verification.pipeline.options import (
    DEFAULT_FSS_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOWS,
    VerificationError,
    VerifyOptions,
)
from verification.pipeline.persistence import _baseline, baseline_run_id
from verification.pipeline.references import open_reference
from verification.pipeline.results import VerificationResult
from verification.pipeline.runs import _init_time, _open_run, _pick_variable, _single_init, _valid_times
from verification.pipeline.scoring import _climatology, _finish_rows, _metrics_for, score_fields
from verification.pipeline.stations import _verify_stations
from verification.pipeline.times import _fmt_times, _offset_note, _require_times, _within


def verify_run(
    catalog: Catalog,
    run_id: str,
    against: str | Sequence[str],
    *,
    data_root: Path | None,
    options: VerifyOptions | None = None,
    write: bool = True,
) -> VerificationResult:
    """Verify a catalogued run against a reference and write the scores to the catalogue.

    Parameters
    ----------
    catalog : Catalog
        The catalogue holding the run; scores, baseline run and point forecasts go there.
    run_id : str
        A succeeded run with a store.
    against : str or sequence of str
        Sample dataset name, another run id, or files / globs / folders.
    data_root : Path or None
        The sample data folder (dataset names, default climatology).
    options : VerifyOptions, optional
        Metrics, thresholds, windows, variable, climatology, persistence, time tolerance.
    write : bool
        Write to the catalogue (``False``: compute only).

    Returns
    -------
    VerificationResult

    Raises
    ------
    UnknownRunError
        ``run_id`` is not catalogued.
    VerificationError
        The reference lacks valid times of the run (within the time tolerance), a station
        reference repeats a report time, or a metric cannot be computed for this case.
    CoordError
        The run and the reference grids differ (projected grids are never regridded).
    ReaderError
        The reference cannot be found or read.
    """
    options = options or VerifyOptions()
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    variable = _pick_variable(ds, options.variable, run_id)
    fc = _single_init(ds[variable], run_id)
    ref = open_reference(against, variable, catalog=catalog, data_root=data_root)
    if ref.stations is not None:
        gm = fc.attrs.get("grid_mapping")
        if gm in ds:
            # the CF grid mapping lets station matching use the exact projection
            fc = fc.assign_coords({gm: ds[gm]})
        return _verify_stations(catalog, rec, fc, ref, variable, options, write)
    assert ref.frames is not None
    case = _case_of(fc)
    ensemble = "member" in fc.dims and fc.sizes["member"] > 1
    metrics = _metrics_for(case, options, ensemble)
    valid = _valid_times(fc, rec)
    tolerance = options.time_tolerance
    assert isinstance(tolerance, pd.Timedelta)  # VerifyOptions normalises it
    notes: list[str] = []
    if ref.frames.repeated:
        notes.append(
            f"{len(ref.frames.repeated)} time(s) repeated in {ref.label} (e.g. {_fmt_times(ref.frames.repeated[:1])}):"
            " the first file's frame was used"
        )
    used = ref.frames.nearest(valid, tolerance)
    n_missing = sum(u is None for u in used)
    if case == "latlon" and 0 < n_missing < len(valid):
        # Analyses come at their own cadence (the ERA5 sample is 12-hourly) while a run writes
        # every output step: verify the leads that have an analysis and say which were left out.
        keep = [i for i, u in enumerate(used) if u is not None]
        notes.append(f"{n_missing} lead time(s) without an analysis{_within(tolerance)} in {ref.label} left out")
        fc = fc.isel(lead_time=keep)
        valid = [valid[i] for i in keep]
    frame_times = _require_times(ref.frames, valid, run_id, tolerance)
    offsets = _offset_note(ref.label, valid, frame_times)
    if offsets:
        notes.append(offsets)
    grid = ("y", "x") if case == "grid" else ("lat", "lon")
    template = ref.frames.template
    if case == "grid" and not _same_grid(template, fc, grid):
        raise CoordError(
            f"{ref.label}: grid {dict(template.sizes)} differs from run {run_id}'s "
            f"{ {d: fc.sizes[d] for d in grid} } (or its x/y coordinates differ); projected grids are not regridded"
        )
    if case == "latlon" and any(d not in template.dims for d in grid):
        raise CoordError(f"{ref.label}: not a latitude-longitude grid (dims {template.dims}); run {run_id} is")
    regrid = case == "latlon" and not _same_grid(template, fc, grid)
    if regrid:
        notes.append(f"{ref.label} interpolated bilinearly to the run grid")

    def on_run_grid(da: xr.DataArray) -> xr.DataArray:
        if regrid:
            da = regrid_latlon(da, fc["lat"].values, fc["lon"].values)
        # the reference takes the run's grid coordinates, so xarray aligns nothing away
        return da.assign_coords({d: fc[d].values for d in grid if d in fc.coords})

    leads = fc["lead_time"].values
    obs = on_run_grid(ref.frames.stack(frame_times, "lead_time", leads))
    obs_time = _obs_time_array(frame_times, leads, valid)
    fcst = fc.drop_vars([c for c in fc.coords if c not in fc.dims])
    weights = latitude_weights(fcst["lat"]) if case == "latlon" else None
    thresholds = options.thresholds or (DEFAULT_THRESHOLDS if variable == "precip_rate" else ())
    fss_thresholds = options.thresholds or (DEFAULT_FSS_THRESHOLDS if variable == "precip_rate" else ())
    windows = options.windows or DEFAULT_WINDOWS
    needs_thr = [m for m in metrics if METRIC_INFO[m].needs_threshold]
    if needs_thr and not thresholds:
        if options.metrics is not None:
            raise VerificationError(f"metrics {', '.join(needs_thr)} need --thresholds for {variable}")
        metrics = [m for m in metrics if m not in needs_thr]
    climatology = None
    if "acc" in metrics:
        climatology, note = _climatology(options.climatology, variable, valid, fcst, data_root)
        if climatology is None:
            if options.metrics is not None:
                raise VerificationError(f"acc: {note}")
            metrics = [m for m in metrics if m != "acc"]
        if note:
            notes.append(note)
    kw: dict[str, Any] = {
        "metrics": metrics,
        "thresholds": thresholds,
        "fss_thresholds": fss_thresholds,
        "windows": windows,
        "climatology": climatology,
        "weights": weights,
    }
    scores = _finish_rows(score_fields(fcst, obs, **kw), run_id, ref.label, variable)

    baseline = None
    if options.persistence:
        init = _init_time(fc, rec)
        (init_frame,) = ref.frames.nearest([init], tolerance)
        if init_frame is not None:
            held = on_run_grid(ref.frames.stack([init_frame] * len(leads), "lead_time", leads))
            baseline = baseline_run_id(run_id)
            kw["metrics"] = [m for m in metrics if not METRIC_INFO[m].needs_ensemble]
            base = score_fields(held, obs, **kw)
            scores = pd.concat([scores, _finish_rows(base, baseline, ref.label, variable)], ignore_index=True)
        else:
            notes.append(
                f"no persistence baseline: {ref.label} has no frame{_within(tolerance)} at the init time "
                f"{_fmt_times([init])}"
            )
    if write:
        if baseline is not None:
            _baseline(catalog, rec, ref.label)
        catalog.insert_scores(scores)
    return VerificationResult(run_id, ref.label, variable, case, scores, baseline, None, notes, obs_time)


def _obs_time_array(used: Sequence[Any], leads: np.ndarray, valid: Sequence[np.datetime64]) -> xr.DataArray:
    """The reference times used, on ``lead_time`` with the ``valid_time`` coordinate."""
    return xr.DataArray(
        np.array([np.datetime64("NaT") if u is None else u for u in used], dtype="datetime64[ns]"),
        dims=["lead_time"],
        coords={"lead_time": leads, "valid_time": ("lead_time", np.array(valid, dtype="datetime64[ns]"))},
        name="obs_time",
        attrs={"long_name": "time of the reference used"},
    )
